"""``ocrdet prepare``'s configuration: the data part of the training's, composed without the training's modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocrdet.data.config import compose_data


@pytest.mark.parametrize("experiment", ["demo", "receipts_cpu"])
def test_the_data_part_equals_the_trainings(experiment):
    from ocrdet.train.config import compose

    overrides = ["data=sroie", f"experiment={experiment}", "data.batch_size=3", "synth.train=5"]
    ours, ignored = compose_data([*overrides, "trainer.max_epochs=2", "seed=4", "optim.lr=0.1"])
    theirs = compose([*overrides, "trainer.max_epochs=2", "seed=4", "optim.lr=0.1"])
    assert ours.data == theirs.data and ours.synth == theirs.synth
    assert ignored == ["trainer.max_epochs=2", "seed=4", "optim.lr=0.1"]


def test_bad_data_keys_are_still_refused():
    with pytest.raises(Exception, match="dta"):
        compose_data(["data.dta=1"])
    with pytest.raises(ValueError, match="data.on_bad_sample"):
        compose_data(["data.on_bad_sample=maybe"])


def test_composing_the_data_loads_nothing_of_train():
    code = "import sys; from ocrdet.data.config import compose_data; compose_data(['experiment=demo']); " + (
        "print(sorted(m for m in sys.modules if m.startswith('ocrdet.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
