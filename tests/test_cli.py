"""What a user sees from the ``ocrdet`` command: help with defaults, argument checks before any model loads,
a message (file, problem, what to do) instead of a traceback."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io

import pytest
import torch

import ocrdet.cli
import ocrdet.train.checkpointing
from ocrdet.cli import build_parser, main
from ocrdet.train.checkpointing import AtomicCheckpointIO
from ocrdet.train.help import COMMON_KEYS, config_groups

NOT_A_CHECKPOINT = "no-such-model.ckpt"
"""Predict's output checks must fire before the model loads: with this checkpoint, loading would fail first."""


def run(argv: list[str], capsys) -> tuple[str | int | None, str, str]:
    """(exit code or message, stdout, stderr) of ``ocrdet ARGV``."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"\xff\xd8 not read before the arguments are checked")
    return path


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("preds.txt", "--out {out}: name a .csv or .json file"),
        ("folder.csv", "--out {out} is a folder"),
    ],
)
def test_predict_checks_out_before_the_model_loads(tmp_path, image, capsys, out, message):
    (tmp_path / "folder.csv").mkdir()
    out = tmp_path / out
    code, _, _ = run(["predict", NOT_A_CHECKPOINT, str(image), "--out", str(out)], capsys)
    assert code.startswith("ocrdet predict: " + message.format(out=out))
    assert not list(tmp_path.glob("*.tmp*"))


def test_predict_refuses_an_overlay_path_that_is_a_file(tmp_path, image, capsys):
    overlay = tmp_path / "ov.png"
    overlay.write_bytes(b"mine")
    code, _, _ = run(
        ["predict", NOT_A_CHECKPOINT, str(image), "--out", str(tmp_path / "p.csv"), "--overlay", str(overlay)], capsys
    )
    assert code == f"ocrdet predict: --overlay {overlay} is a file; name a folder for the overlay PNGs"
    assert overlay.read_bytes() == b"mine" and not (tmp_path / "p.csv").exists()


def test_two_inputs_with_one_name_are_refused_before_the_model_loads(tmp_path, capsys):
    for folder in ("dupA", "dupB"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jpg").write_bytes(b"\xff\xd8")
    a, b = tmp_path / "dupA" / "x.jpg", tmp_path / "dupB" / "x.jpg"
    code, _, _ = run(["predict", NOT_A_CHECKPOINT, str(a), str(b), "--out", str(tmp_path / "p.csv")], capsys)
    assert code.startswith("ocrdet predict: inputs with the same file name would share one prediction row")
    assert code.endswith(f"\n  x.jpg: {a}, {b}")


def test_a_port_out_of_range_is_an_argument_error(capsys):
    code, _, err = run(["serve", "--port", "99999"], capsys)
    assert code == 2 and "argument --port: '99999' is not a port number (1-65535)" in err


@pytest.mark.parametrize(
    ("number", "advice"),
    [(errno.ENOSPC, "the disk is full: free space there"), (errno.EROFS, "that file system is read-only")],
)
def test_a_full_or_read_only_disk_is_a_message(monkeypatch, capsys, number, advice):
    def write(args):
        raise OSError(number, "as the OS says", "/data/.ocrdet-cache/abc/images.u8")

    monkeypatch.setattr(ocrdet.cli, "cmd_synth", write)
    code, _, _ = run(["synth", "--out", "x"], capsys)
    assert code.startswith(f"ocrdet: /data/.ocrdet-cache/abc/images.u8: as the OS says; {advice}")
    assert "write elsewhere (--out, run_dir=, data.cache_dir=)" in code


def test_a_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    """torch turns the failed write into "inline_container.cc ... unexpected pos"; the OSError under it is raised."""

    class Full(io.RawIOBase):
        """A disk with room for 1000 bytes."""

        written = 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

    monkeypatch.setattr(ocrdet.train.checkpointing, "atomic_open", lambda path: contextlib.nullcontext(Full()))
    path = tmp_path / "last.ckpt"
    with pytest.raises(OSError) as info:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, path)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(path))
    assert "unexpected pos" not in str(info.value)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("name", ["synth", "predict", "tune", "evaluate", "demo", "serve", "bench", "train", "config"])
def test_every_option_has_a_help_line_with_its_default(name):
    parser = subcommands()[name]
    text = parser.format_help()
    for action in parser._actions:
        assert action.help, f"{name} {action.dest}: no help"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS, []):
            assert f"(default: {action.default})" in text, f"{name} {action.option_strings}: default not shown"


def test_train_help_lists_groups_keys_with_defaults_and_an_example(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    groups = config_groups()
    assert {"data", "model", "trainer", "experiment"} <= set(groups) and "sroie" in groups["data"]
    assert "  data=" + "|".join(groups["data"]) in out
    for key in COMMON_KEYS:
        assert f"  {key} " in out
    assert "trainer.max_epochs" in out and "(default: 10)" in out
    assert "examples:\n  ocrdet train data=synth trainer.max_epochs=3" in out


def test_config_show_prints_the_composed_config(capsys):
    main(["config", "show", "trainer.max_epochs=3", "data=sroie"])
    out = capsys.readouterr().out
    assert "  max_epochs: 3\n" in out and "root: ../shared/data/sroie" in out and "backbone: resnet18" in out
    assert "  on_bad_sample: error\n" in out  # as an override writes it


def test_quiet_by_default_and_chatty_with_v(capsys):
    import logging

    import lightning.pytorch  # noqa: F401 - sets its logger to INFO, as in a training run

    lightning_log = logging.getLogger("lightning.pytorch")
    lightning_log.setLevel(logging.INFO)
    main(["-v", "config", "show"])
    assert lightning_log.level == logging.INFO
    main(["config", "show"])
    assert lightning_log.level == logging.WARNING


def test_the_demo_ends_with_its_cache_and_the_next_commands(tmp_path, monkeypatch, capsys):
    """Training replaced by a tiny untrained checkpoint: what is checked is what the demo prints at its end."""
    from dataclasses import asdict

    import ocrdet.train.run
    from ocrdet.data.io.synth import generate_dataset
    from ocrdet.model.dbnet import DBNet, ModelConfig

    model = ModelConfig(backbone="resnet10t", inner_channels=16, neck_channels=16)
    checkpoint = tmp_path / "best.ckpt"
    state = {f"model.{k}": v for k, v in DBNet(model).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"model": asdict(model), "input_size": 128}}, checkpoint)

    def fit(config):
        generate_dataset(tmp_path / config.data.root, 0, 2, seed=0)
        (tmp_path / config.data.cache_dir).mkdir()
        (tmp_path / config.data.cache_dir / "images.u8").write_bytes(bytes(3 * 2**20))
        return checkpoint

    monkeypatch.setattr(ocrdet.train.run, "fit", fit)
    monkeypatch.chdir(tmp_path)
    main(["demo", "--out", "d"])
    out = capsys.readouterr().out
    assert f"decoded-image cache: {tmp_path / '.ocrdet-cache'}/ (3 MiB; delete it to free the space)" in out
    assert out.endswith(
        "next:\n  ocrdet serve --run d/run    # browse the data, the evaluation and the curves; upload images\n"
        f"  ocrdet predict {checkpoint} YOUR_IMAGES/ --out preds.csv --overlay overlays/\n"
    )
