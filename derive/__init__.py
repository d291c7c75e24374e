"""derive: symbolic gradients for neural networks.

A network is declared as staged equations (a TOML spec or Python calls), parsed
into a graph of SymPy index expressions, differentiated in reverse mode with
SymPy, rewritten into the forms lecturers teach, emitted as NumPy code through
Jinja2 templates, and checked numerically.
"""

__version__ = "0.1.0"
