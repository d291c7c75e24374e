"""Stage 4, emission: a derivation in, the text of a NumPy module out.

Printers (:mod:`~derive.emit.printers`) hold the math, templates hold the shape; every
template is rendered through the one environment of :mod:`~derive.emit.templating`.
"""
