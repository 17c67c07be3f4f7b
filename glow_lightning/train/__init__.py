"""Training glue around the pure flows (Lightning): the ``LightningModule`` (:mod:`.module`),
its optimiser and schedule (:mod:`.optim`), the non-finite guard, the EMA, the time budget,
checkpointing and safe loading, the launch's processes, W&B, and the assembly of a run
(:mod:`.run`: data, module, logger, callbacks, trainer)."""
