"""The built-in ops: one record per op (:mod:`derive.ops.table`), in one file per family.

:mod:`~derive.ops.elementwise` (smooth, e.g. sigmoid), :mod:`~derive.ops.piecewise` (relu,
leaky_relu), :mod:`~derive.ops.reductions` (sum, mean, max, batch_mean, argmax) and
:mod:`~derive.ops.composite` (softmax, the losses, batch norm, as spec-language macros)
hold the records; the table, the call binding (:mod:`~derive.ops.signatures`) and these
files are SymPy-free.  :mod:`~derive.ops.functions` turns the records into SymPy functions
and finds the output forms of their derivatives (``σ' = h (1 - h)``).
"""
