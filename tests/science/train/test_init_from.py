"""Starting from other weights (--init-from): an exported student or another run's checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")

from tests._train import (  # noqa: E402
    COMMITTED_STUDENT,
    TINY,
    _arrays,
    _assert_init_from_refused,
    _conv_graph,
    _exported_student,
)
from vmafx_saliency.errors import (  # noqa: E402
    InputFileError,
    UsageError,
)
from vmafx_saliency.nets.student import StudentUNet  # noqa: E402
from vmafx_saliency.science import train  # noqa: E402


def test_init_from_an_exported_student_starts_from_its_weights(tmp_path: Path) -> None:
    # Fine-tuning the shipped student: at a negligible rate the run ends with the
    # ONNX's own (folded) convolution weights, and the record names the file's sha256.
    onnx_path = _exported_student(tmp_path)
    cfg = dataclasses.replace(
        TINY, crop=32, epochs=1, lr=1e-12, min_lr=0.0, init_from=str(onnx_path)
    )
    outcome = train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "f.pt")
    net = StudentUNet(cfg.widths)
    net.load_state_dict(outcome.best_state)
    loaded = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    folded = [weight for weight, _ in train.folded_convs(onnx_path)]
    # Module order and graph order agree for this net (the head is last in both).
    assert len(loaded) == len(folded)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(loaded, folded, strict=True))
    fresh = train.train_student(
        dataclasses.replace(cfg, init_from=None), _arrays(4, 0), _arrays(2, 1),
        checkpoint=tmp_path / "g.pt",
    )  # fmt: skip
    assert not torch.allclose(fresh.best_state["head.weight"], folded[-1], atol=1e-3)


def test_init_from_onnx_gives_the_files_map_and_needs_same_shaped_convs(tmp_path: Path) -> None:
    onnx_path = _exported_student(tmp_path)
    net = StudentUNet()
    planes = _arrays(3, 0).luma
    train.init_from_onnx(train.TrainConfig(), net, onnx_path, planes)  # parity checked inside
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = train.deployment_input(torch.from_numpy(planes[2:3]))
    want = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(net.eval()(x).numpy() - want).max() < 1e-5


def test_the_shipped_student_is_a_net_of_the_train_defaults() -> None:
    # `train --init-from` the shipped saliency_student_v2.onnx (the README's fine-tune)
    # must need no architecture options: the defaults build the shipped net, and
    # the check counts its convolutions (19: a three-convolution stem).
    shipped = COMMITTED_STUDENT
    train.check_init_from(train.TrainConfig(init_from=str(shipped)))
    assert len(train.folded_convs(shipped)) == 19
    one_conv_stem = train.TrainConfig(init_from=str(shipped), stem_convs=1)
    with pytest.raises(UsageError, match="19 convolutions for a net of 17"):
        train.check_init_from(one_conv_stem)


def test_init_from_an_onnx_of_other_widths_is_refused_before_any_labelling(
    tmp_path: Path,
) -> None:
    onnx_path = _exported_student(tmp_path, widths=(8, 12, 16))
    empty = tmp_path / "empty"
    empty.mkdir()  # would be refused too, but only after the --init-from check
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(onnx_path))
    want = r"not a student of --widths 16,32,32,32,40,40, --stem-convs 3; give the options"
    with pytest.raises(UsageError, match=want):
        train.run_training(out_dir=tmp_path / "run", image_dirs=[empty], cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match=want):
        train.train_student(cfg, _arrays(4, 0), _arrays(2, 1), checkpoint=tmp_path / "h.pt")
    assert not (tmp_path / "h.pt").exists()


def test_init_from_a_missing_checkpoint_is_refused_before_any_labelling(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, init_from=str(tmp_path / "absent" / "checkpoint.pt"))
    with pytest.raises(InputFileError, match=r"checkpoint\.pt: no such file: give a run's"):
        train.run_training(out_dir=tmp_path / "run", cfg=cfg, progress=None)
    assert not (tmp_path / "run").exists()


def test_init_from_a_checkpoint_of_another_stem_is_refused(tmp_path: Path) -> None:
    # Widening would leave the extra stem convolutions at their random start: a
    # checkpoint from before --stem-convs 3 became the default must say so.
    old = dataclasses.replace(TINY, crop=32, epochs=1, widths=(4, 4, 8), stem_convs=1)
    checkpoint = tmp_path / "old.pt"
    train.train_student(old, _arrays(4, 0), _arrays(2, 1), checkpoint=checkpoint)
    cfg = dataclasses.replace(old, stem_convs=3, init_from=str(checkpoint))
    want = r"--stem-convs 1; this run builds 3 widths, --stem-convs 3: give the checkpoint's"
    _assert_init_from_refused(cfg, UsageError, want, tmp_path)
    # The same stem is taken, wider or not.
    train.check_init_from(dataclasses.replace(cfg, stem_convs=1, widths=(4, 6, 8)))
    # Narrower is refused: widen_from copies every old channel, so it cannot shrink.
    narrow = dataclasses.replace(cfg, stem_convs=1, widths=(4, 2, 8))
    want = r"--widths 4,4,8; this run's --widths 4,2,8 is narrower at stage 1: .* never narrowed"
    _assert_init_from_refused(narrow, UsageError, want, tmp_path)


def _relu_graph() -> bytes:
    from onnx import helper

    return _conv_graph([helper.make_node("Relu", ["x"], ["y"])], [])


@pytest.mark.parametrize(
    ("content", "said"),
    [
        # The scanner reads the file first: bytes that are no ModelProto stop there.
        (b"not a protobuf \xff\xfe", r"the scanner refuses it \(not an ONNX model"),
        (b"", r"the scanner refuses it \(not an ONNX model: the file is empty"),
        (_relu_graph(), "holds no Conv node: give a student exported by `train`"),
    ],
)
def test_init_from_a_file_that_is_not_a_student_is_refused(
    tmp_path: Path, content: bytes, said: str
) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(bad))
    with pytest.raises(InputFileError, match=f"model.onnx: {said}"):
        train.check_init_from(cfg)  # what run_training asks first
    if content.startswith(b"not"):  # the parser alone says so in its words
        with pytest.raises(InputFileError, match=r"model\.onnx: cannot read it as ONNX"):
            train.folded_convs(bad)


def _one_conv(tmp_path: Path, weight: object) -> Path:
    """A file of one Conv whose weight is the initialiser ``weight``."""
    from onnx import helper

    path = tmp_path / "one_conv.onnx"
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1, 1, 1, 1])
    path.write_bytes(_conv_graph([conv], [weight]))
    return path


def test_init_from_a_conv_weight_that_does_not_decode_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    from onnx import TensorProto

    # Dims of 432 floats, 4 bytes of data: numpy cannot reshape it.
    short = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[16, 3, 3, 3], raw_data=b"1234")
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(_one_conv(tmp_path, short)))
    with pytest.raises(InputFileError, match=r"one_conv\.onnx: Conv weight 'w' does not decode"):
        train.check_init_from(cfg)


def test_init_from_a_weight_in_an_external_file_is_refused_by_the_scanner(
    tmp_path: Path,
) -> None:
    from onnx import TensorProto

    outside = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 3, 3, 3])
    outside.data_location = TensorProto.EXTERNAL
    entry = outside.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    path = _one_conv(tmp_path, outside)
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(path))
    with pytest.raises(InputFileError, match=r"the scanner refuses it \(.*external file"):
        train.check_init_from(cfg)
    # The parser alone opens no file the tensor names either.
    with pytest.raises(InputFileError, match="Conv weight 'w' is kept in an external file"):
        train.folded_convs(path)


def test_init_from_is_scanned_before_it_is_parsed(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), name="w")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1, 1, 1, 1])
    path = tmp_path / "odd.onnx"
    path.write_bytes(_conv_graph([conv, helper.make_node("Tanh", ["c"], ["y"])], [weight]))
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(path))
    with pytest.raises(InputFileError, match=r"odd\.onnx: the scanner refuses it"):
        train.check_init_from(cfg)  # before: parsed, then refused as "not a student"


def test_init_from_an_onnx_over_the_model_cap_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.onnx"
    with big.open("wb") as f:
        f.truncate((50 << 20) + 1)  # sparse: costs no disk
    cfg = dataclasses.replace(TINY, crop=32, init_from=str(big))
    with pytest.raises(InputFileError, match=r"big\.onnx: 52,428,801 bytes, over the cap"):
        train.check_init_from(cfg)


def test_init_from_a_missing_onnx_is_refused(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, init_from=str(tmp_path / "absent.onnx"))
    with pytest.raises(InputFileError, match=r"absent\.onnx: no such file"):
        train.check_init_from(cfg)


def test_init_from_an_onnx_that_computes_another_map_is_refused(tmp_path: Path) -> None:
    # Same convolution shapes, other padding on the head: the shapes match, the map not.
    import onnx

    model = onnx.load(str(_exported_student(tmp_path)))
    head = [node for node in model.graph.node if node.op_type == "Conv"][-1]
    for attribute in head.attribute:
        if attribute.name == "pads":
            attribute.ints[:] = [0, 0, 0, 0]
    path = tmp_path / "repadded.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UsageError, match="differs from the file's own map by up to"):
        train.init_from_onnx(train.TrainConfig(), StudentUNet(), path, _arrays(2, 0).luma)


def test_init_from_an_onnx_the_scanner_refuses_is_refused(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    stored = [numpy_helper.from_array(np.ones((1, 3, 3, 3), np.float32), name="w")]
    path = tmp_path / "odd.onnx"
    path.write_bytes(
        _conv_graph(
            [
                helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1, 1, 1, 1]),
                helper.make_node("Tanh", ["c"], ["y"]),  # not on the allowlist
            ],
            stored,
        )
    )
    with pytest.raises(InputFileError, match=r"the scanner refuses it .*vmafx-saliency scan"):
        train.init_from_onnx(train.TrainConfig(), StudentUNet(), path, _arrays(2, 0).luma)
