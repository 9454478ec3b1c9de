"""Overrides that shrink a training run to seconds on a CPU: the end-to-end tests train with them."""

TINY_TRAINING = [
    "data.num_workers=0",
    "data.batch_size=2",
    "data.eval_size=256",
    "data.augment.size=128",
    "model.inner_channels=16",
    "model.neck_channels=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "eval_workers=0",
]
