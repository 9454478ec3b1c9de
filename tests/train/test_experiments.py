"""Every experiment in configs/experiment composes with the data it is meant for, and the receipt recipes' crops
zoom around the scale they are scored at (their stated reason)."""

from __future__ import annotations

import pytest

from ocrdet.compose import CONFIG_DIR
from ocrdet.train.config import compose

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name):
    config = compose(["data=sroie", f"experiment={name}"])
    assert config.data.eval_size % 32 == 0 and config.data.augment.size % 32 == 0


@pytest.mark.parametrize("name", ["receipts_cpu", "receipts_gpu"])
def test_receipt_crops_bracket_the_scoring_scale(name):
    data = compose(["data=sroie", f"experiment={name}"]).data
    low, high = data.augment.scale
    assert low <= data.eval_size / data.augment.size <= high
    assert data.targets.min_text_size < 8.0  # the default ignored most small print
