"""The built-in ops: names and call signatures (SymPy-free), and their SymPy definitions.

:mod:`~derive.ops.signatures` is read by the spec reader and the builder;
:mod:`~derive.ops.functions` holds the elementwise SymPy functions, their written-out
definitions and the output forms of their derivatives (``σ' = h (1 - h)``).
"""
