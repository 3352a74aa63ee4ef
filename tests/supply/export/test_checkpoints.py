"""Checkpoints: wrappers loaded strictly, key and shape mismatches, unreadable or unsafe files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


from vmafx_saliency.errors import CheckpointError, InputFileError  # noqa: E402
from vmafx_saliency.nets import u2netp as nets_u2netp  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402


@pytest.fixture(scope="module")
def fixture_state(checkpoint_path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return state


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    ],
    ids=["plain", "state_dict", "module-prefix", "both"],
)
def test_checkpoint_wrappers_load_strictly(
    fixture_state: dict[str, Any], tmp_path: Path, wrap: Callable[[dict[str, Any]], Any]
) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(fixture_state), path)
    state = export.load_state_dict_file(path)
    assert list(state) == list(fixture_state)
    torch.testing.assert_close(state["outconv.weight"], fixture_state["outconv.weight"])
    net = nets_u2netp.U2NETP(3, 1)
    assert export.load_state_dict_into(net, state, strict=True) == ([], [])


def test_key_mismatch_names_first_missing_and_unexpected(fixture_state: dict[str, Any]) -> None:
    state = dict(fixture_state)
    del state["side3.bias"]
    del state["outconv.weight"]
    state["refconv.weight"] = torch.zeros(1)
    net = nets_u2netp.U2NETP(3, 1)
    pattern = (
        r"2 missing key\(s\), first 'side3\.bias'.*"
        r"1 unexpected key\(s\), first 'refconv\.weight'.*--non-strict"
    )
    with pytest.raises(CheckpointError, match=pattern):
        export.load_state_dict_into(net, state, strict=True)


def test_export_refuses_a_mismatched_checkpoint_before_exporting(
    fixture_state: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in fixture_state.items() if not k.startswith("side")}, path)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(CheckpointError, match=r"partial\.pth.*12 missing key\(s\), first 'side1\."):
        export.export_mirror(checkpoint=path, output=out)
    assert not out.parent.exists()


def test_non_strict_loads_a_partial_dict(fixture_state: dict[str, Any]) -> None:
    partial = {k: v for k, v in fixture_state.items() if k.startswith("stage1.")}
    net = nets_u2netp.U2NETP(3, 1)
    missing, unexpected = export.load_state_dict_into(net, partial, strict=False)
    assert unexpected == []
    assert len(missing) == len(fixture_state) - len(partial)
    loaded = net.state_dict()["stage1.rebnconvin.conv_s1.weight"]
    torch.testing.assert_close(loaded, fixture_state["stage1.rebnconvin.conv_s1.weight"])


def test_wrong_shapes_are_a_checkpoint_error(fixture_state: dict[str, Any]) -> None:
    state = dict(fixture_state)
    state["outconv.weight"] = torch.zeros(1, 7, 1, 1)
    with pytest.raises(CheckpointError, match="wrong shape"):
        export.load_state_dict_into(nets_u2netp.U2NETP(3, 1), state, strict=True)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.pth not found.*--checkpoint"):
        export.export_mirror(checkpoint=tmp_path / "nope.pth", output=tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not a checkpoint at all", r"cannot read .*junk\.pth"),
        (None, r"junk\.pth holds a list"),
    ],
)
def test_unreadable_checkpoint(tmp_path: Path, payload: bytes | None, message: str) -> None:
    path = tmp_path / "junk.pth"
    if payload is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=message):
        export.load_state_dict_file(path)


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    # weights_only=True must refuse arbitrary objects instead of unpickling them.
    path = tmp_path / "evil.pth"
    torch.save({"x": Path("/")}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pth.*weights_only"):
        export.load_state_dict_file(path)
