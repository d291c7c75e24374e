"""Training a generated module and looking into it.

Update rules written once in SymPy (:mod:`~derive.train.rules`), run with explicit state
(:mod:`~derive.train.optim`) under a learning-rate schedule (:mod:`~derive.train.schedules`);
data sets checked against the spec (:mod:`~derive.train.datasets`, the demo's blobs in
:mod:`~derive.train.data`); the loops (:mod:`~derive.train.fit` with validation and early
stopping, :mod:`~derive.train.loop` for the demo); ``derive train`` and ``derive analyze``
(:mod:`~derive.train.command`, :mod:`~derive.train.analyze`, :mod:`~derive.train.plots`).
"""
