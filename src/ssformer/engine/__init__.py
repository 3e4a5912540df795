"""Training and evaluation engine: the train loop, evaluation, checkpoints and resume,
distributed set-up, optimisers and learning-rate schedules (:mod:`ssformer.engine.optim`)."""
