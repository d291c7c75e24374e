"""Stage 5, verification: a generated module (and its graph) in, a report out.

Finite differences (:mod:`~derive.verify.finite_diff`), direct SymPy differentiation of the
written-out loss (:mod:`~derive.verify.symbolic`, on the concrete evaluator of
:mod:`~derive.verify.evaluate`), reports (:mod:`~derive.verify.report`), and the
end-to-end check of a spec (:mod:`~derive.verify.run`).
"""
