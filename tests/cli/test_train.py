"""``vmafx-saliency train`` and ``views``: options, counts, defaults, Ctrl-C."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from vmafx_saliency.cli import train as _cli_train
from vmafx_saliency.cli.main import main
from vmafx_saliency.errors import UsageError
from vmafx_saliency.science import train


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--out", "x", "--epochs", "0"],
        ["train", "--out", "x", "--batch-size", "0"],
        ["train", "--out", "x", "--crop", "0"],
        ["train", "--out", "x", "--steps-per-epoch", "0"],
        ["train", "--out", "x", "--limit", "0"],
        ["train", "--out", "x", "--threads", "0"],
        ["views", "synth", "--out", "x", "--recipe", "mix", "--limit", "0"],
        ["views", "frames", "clip.mp4", "--out", "x", "--every", "0"],
    ],
)
def test_cli_counts_are_whole_numbers_from_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    assert f"{argv[-2]}: '0': give 1 or more" in capsys.readouterr().err


def test_cli_registers_train() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli_train.register(sub)
    args = parser.parse_args(["train", "--out", "x", "--widths", "8,16,24", "--epochs", "2"])
    assert args.widths == (8, 16, 24) and args.epochs == 2 and args.handler is not None
    assert args.ema_decay == 0.0
    args = parser.parse_args(["train", "--out", "x", "--ema-decay", "0.999"])
    assert args.ema_decay == pytest.approx(0.999)
    assert parser.parse_args(["train", "--out", "x", "--stem-convs", "2"]).stem_convs == 2


def test_an_interrupted_train_says_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmafx_saliency.cli.main import main

    out = tmp_path / "run"

    def interrupted(**kwargs: Any) -> Any:
        # Ctrl-C after the first epoch's checkpoint was written.
        kwargs["out_dir"].mkdir()
        (kwargs["out_dir"] / "checkpoint.pt").write_bytes(b"epoch 1")
        # A file's mtime comes from a coarser clock than time.time(): this run's
        # checkpoint is known as new by its identity, not by its time.
        os.utime(kwargs["out_dir"] / "checkpoint.pt", (1_000_000_000, 1_000_000_000))
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run_training", interrupted)
    assert main(["train", "--out", str(out), "--epochs", "2"]) == 130
    err = capsys.readouterr().err
    assert f"the last finished epoch is in {out / 'checkpoint.pt'}: carry on with the same " in err
    assert "and --resume" in err and err.rstrip().endswith("vmafx-saliency: interrupted")


def test_an_interrupt_before_this_run_checkpointed_gives_no_resume_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmafx_saliency.cli.main import main

    out = tmp_path / "run"
    out.mkdir()
    old = out / "checkpoint.pt"
    old.write_bytes(b"an earlier run's")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # written long before this run

    def interrupted(**kwargs: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C while labelling, --force over the earlier run

    monkeypatch.setattr(train, "run_training", interrupted)
    assert main(["train", "--out", str(out), "--force"]) == 130
    assert "carry on" not in capsys.readouterr().err


def test_cli_train_rejects_a_stem_without_convolutions(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli_train.register(sub)
    with pytest.raises(SystemExit) as excinfo:
        parser.parse_args(["train", "--out", "x", "--stem-convs", "0"])
    assert excinfo.value.code == 2
    assert "--stem-convs: '0': give 1 or more" in capsys.readouterr().err


def test_cli_defaults_equal_the_library_defaults() -> None:
    # The parser takes its defaults and choices from the training config itself:
    # `train` without options must ask for TrainConfig(), and `views synth` split alike.
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _cli_train.register(sub)
    args = parser.parse_args(["train", "--out", "x"])
    assert _cli_train.train_config(args) == train.TrainConfig()
    assert args.teacher == str(train.DEFAULT_TEACHER)
    views = parser.parse_args(["views", "synth", "--out", "x", "--recipe", "mix"])
    lib = train.TrainConfig()
    assert (views.val_fraction, views.seed) == (lib.val_fraction, lib.seed)
    choices = {a.dest: a.choices for a in sub.choices["train"]._actions}
    assert choices["teacher_input"] == train.TEACHER_INPUTS
    assert choices["loss"] == train.LOSSES
    assert choices["precision"] == train.PRECISIONS


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--out", "x", "--no-default-images"],
        ["views", "synth", "--out", "x", "--recipe", "mix", "--no-default-images"],
    ],
)
def test_no_default_images_without_images_is_a_usage_error(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not ignored for MSRA-B: the split would have no folder the user asked for.
    def never(**kwargs: Any) -> Any:
        raise AssertionError("the run started")

    monkeypatch.setattr(train, "run_training", never)
    monkeypatch.setattr(train, "collect_samples", never)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "error: --no-default-images without --images: the split needs images" in err


def test_the_image_folders_train_splits() -> None:
    parser = argparse.ArgumentParser()
    _cli_train.register(parser.add_subparsers(dest="command"))

    def dirs(*extra: str) -> list[Path]:
        return _cli_train.train_image_dirs(parser.parse_args(["train", "--out", "x", *extra]))

    assert dirs() == [train.DEFAULT_IMAGES]
    assert dirs("--images", "a") == [train.DEFAULT_IMAGES, Path("a")]
    assert dirs("--images", "a", "--no-default-images") == [Path("a")]
    assert dirs("--gt-root", "g", "--no-default-images") == []  # the --gt-root pairs alone


def test_train_without_its_extra_names_it_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not the export extra nor Pillow alone: torch is what a core install lacks first.
    import sys

    for module in ("torch", "PIL", "PIL.Image"):  # a core install: import raises ImportError
        monkeypatch.setitem(sys.modules, module, None)
    (tmp_path / "images").mkdir()
    assert (
        main(["train", "--out", str(tmp_path / "run"), "--images", str(tmp_path / "images")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "vmafx-saliency train: error: training needs the Python package 'torch', which is not "
        "installed: run pip install 'vmafx-saliency[train]'"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_installed_the_image_folders_are_the_given_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # No checkout, no ../shared: MSRA-B is no default; nothing else changes.
    from vmafx_saliency.science.train import config

    monkeypatch.setattr(config, "DEFAULT_IMAGES", None)
    parser = argparse.ArgumentParser()
    _cli_train.register(parser.add_subparsers(dest="command"))

    def dirs(*extra: str) -> list[Path]:
        return _cli_train.train_image_dirs(parser.parse_args(["train", "--out", "x", *extra]))

    assert dirs("--images", "a") == [Path("a")]
    assert dirs("--images", "a", "--no-default-images") == [Path("a")]
    assert dirs("--gt-root", "g") == []  # the --gt-root pairs alone
    with pytest.raises(UsageError, match=r"no default training images: give --images DIR"):
        dirs()
    with pytest.raises(UsageError, match=r"the split needs images; give --images DIR \(or "
                       r"--gt-root DIR\)$"):  # fmt: skip
        dirs("--no-default-images")  # and no word of MSRA-B
    with pytest.raises(UsageError, match=r"no default training images"):
        train.run_training(out_dir=Path("x"))  # the library's default alike
