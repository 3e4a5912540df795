"""The engine: where models meet data.

- :mod:`~ssformer.engine.execution`: device, loader workers, the precision policy, seeding;
- :mod:`~ssformer.engine.train`: :func:`~ssformer.engine.train.run_training`, one run read top
  to bottom as its steps (:mod:`~ssformer.engine.train_setup`, its set-up steps;
  :mod:`~ssformer.engine.run_folder`, its folder; :mod:`~ssformer.engine.train_log`, its log
  lines; :mod:`~ssformer.engine.selection`, model selection); :mod:`~ssformer.engine.epoch`:
  ``train_one_epoch``;
- :mod:`~ssformer.engine.training_state`: ``last.pth``, written and read there only;
- :mod:`~ssformer.engine.evaluate` / :mod:`~ssformer.engine.predict`: scoring and inference;
- :mod:`~ssformer.engine.optim`, :mod:`~ssformer.engine.distributed`,
  :mod:`~ssformer.engine.runlog`, :mod:`~ssformer.engine.compiled`: optimisers and schedules,
  DDP, the run's logs, compiled inference.
"""
