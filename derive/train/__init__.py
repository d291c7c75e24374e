"""Training a generated module: data (:mod:`~derive.train.data`), update rules
(:mod:`~derive.train.optim`) and the minibatch loop (:mod:`~derive.train.loop`).
"""
