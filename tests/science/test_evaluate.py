"""evaluate: our own metrics by hand, py_sod_metrics against direct numpy, the summary schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests._onnx_models import conv_sigmoid_model
from vmafx_saliency.errors import (
    ComparisonReportError,
    InputFileError,
    OutputExistsError,
    UsageError,
)
from vmafx_saliency.science import evaluate as ev
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.registry import Preprocessing

# --- the shared input checker ----------------------------------------------------------


def test_check_inputs_scales_and_binarises() -> None:
    pred = np.array([[0, 255], [128, 51]], dtype=np.uint8)
    gt = np.array([[0, 127], [128, 255]], dtype=np.uint8)
    data = ev.check_inputs(pred, gt)
    assert data.pred.dtype == np.float64
    np.testing.assert_allclose(data.pred, [[0.0, 1.0], [128 / 255, 0.2]])
    # > 127: 128 is salient (the data README); py_sod_metrics' > 128 would drop it.
    assert data.gt.tolist() == [[False, False], [True, True]]
    assert ev.check_inputs(pred, gt, gt_threshold=128).gt.tolist() == [
        [False, False],
        [False, True],
    ]
    np.testing.assert_allclose(data.gt_grey, gt / 255.0)


def test_check_inputs_accepts_float_and_bool() -> None:
    data = ev.check_inputs(np.full((2, 2), 0.25), np.eye(2, dtype=bool))
    assert data.gt.tolist() == [[True, False], [False, True]]
    np.testing.assert_allclose(data.gt_grey, np.eye(2))


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), r"prediction 3x2 and mask 2x3"),
        (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), r"must be 2-D"),
        (np.full((2, 2), 1.5), np.zeros((2, 2), np.uint8), r"finite and in \[0, 1\]"),
        (np.zeros((2, 2), np.int32), np.zeros((2, 2), np.uint8), r"uint8 or float"),
        (np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.float32), r"uint8 \(grey\) or bool"),
    ],
)
def test_check_inputs_refuses(pred: np.ndarray, gt: np.ndarray, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ev.check_inputs(pred, gt)


# --- our metrics, by hand ------------------------------------------------------------------


def test_iou_by_hand() -> None:
    p = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)
    g = np.array([[1, 0, 0], [1, 0, 0]], dtype=bool)
    assert ev.iou(p, g) == pytest.approx(1 / 3)  # 1 shared pixel, 3 in the union
    assert ev.iou(p, p) == 1.0
    assert ev.iou(p, np.zeros_like(p)) == 0.0
    assert ev.iou(np.zeros_like(p), np.zeros_like(p)) == 1.0  # both empty: they agree


def test_block_grid_by_hand() -> None:
    # 5 x 5 in 2 x 2 blocks: a 3 x 3 grid whose last row/column are partial.
    b = np.zeros((5, 5), dtype=bool)
    b[0, 0] = True  # block (0,0): 1 of 4  -> not salient
    b[0:2, 2] = True  # block (0,1): 2 of 4  -> salient (exactly half counts)
    b[4, 4] = True  # block (2,2): 1 of 1  -> salient (a partial corner block)
    b[2, 4] = True  # block (1,2): 1 of 2  -> salient (a partial edge block)
    b[4, 0] = True  # block (2,0): 1 of 2  -> salient
    expected = [
        [False, True, False],
        [False, False, True],
        [True, False, True],
    ]
    assert ev.block_grid(b, 2).tolist() == expected
    assert ev.block_grid(b, 5).tolist() == [[False]]  # 5 of 25
    assert ev.block_grid(b, 1).tolist() == b.tolist()


def test_block_iou_by_hand() -> None:
    p = np.zeros((4, 4), dtype=bool)
    g = np.zeros((4, 4), dtype=bool)
    p[0:2, 0:4] = True  # blocks (0,0) and (0,1)
    g[0:2, 0:2] = True  # block (0,0)
    g[2:4, 2:3] = True  # block (1,1): 2 of 4 pixels -> salient
    # salient blocks: P = {(0,0), (0,1)}, G = {(0,0), (1,1)} -> 1 / 3
    assert ev.block_iou(p, g, 2) == pytest.approx(1 / 3)
    # one 4 x 4 block: P has 8 of 16 (salient), G 6 of 16 (not) -> IoU 0
    assert ev.block_iou(p, g, 4) == 0.0
    with pytest.raises(UsageError, match="positive"):
        ev.block_grid(p, 0)


def test_iou_accumulators() -> None:
    pred = np.array([[255, 0], [0, 0]], dtype=np.uint8)
    gt = np.array([[255, 255], [0, 0]], dtype=np.uint8)
    mean_iou = ev.MeanIoU()
    assert mean_iou.step(pred, gt) == pytest.approx(0.5)
    assert mean_iou.step(gt, gt) == 1.0
    assert mean_iou.get_results() == {"iou": pytest.approx(0.75)}


def test_block_iou_accumulator_by_hand() -> None:
    pred = np.array([[255, 0], [0, 0]], dtype=np.uint8)  # 1 of 4 -> block not salient
    gt = np.array([[255, 255], [0, 0]], dtype=np.uint8)  # 2 of 4 -> salient
    blocks = ev.BlockIoU(2)
    assert blocks.step(pred, gt) == 0.0
    assert blocks.step(gt, gt) == 1.0
    assert blocks.get_results() == {"block_iou_2": 0.5}


def test_distribution_by_hand() -> None:
    d = ev.distribution([4.0, 1.0, 3.0, 2.0])
    assert (d.count, d.mean, d.min, d.median, d.max) == (4, 2.5, 1.0, 2.5, 4.0)
    assert d.std == pytest.approx(math.sqrt(1.25))  # population: (2.25 + .25 + .25 + 2.25) / 4
    assert ev.distribution([0.2]).std == 0.0
    assert ev.Distribution.from_json(d.to_json()) == d
    with pytest.raises(UsageError, match="empty"):
        ev.distribution([])
    with pytest.raises(UsageError, match="NaN"):
        ev.distribution([1.0, math.nan])


# --- py_sod_metrics-backed figures against a direct computation --------------------------


def _tiny_cases(count: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        gt = np.zeros((9, 11), dtype=np.uint8)
        y, x = rng.integers(0, 5, size=2)
        gt[y : y + 4, x : x + 5] = rng.choice([128, 200, 255])
        gt[0, 0] = 90  # a grey pixel below the threshold
        pred = rng.integers(0, 256, size=gt.shape).astype(np.uint8)
        pred[gt > 127] = np.maximum(pred[gt > 127], 120)
        cases.append((pred, gt))
    # Two images that disagree on the best threshold, so the conventions differ.
    gt = np.zeros((9, 11), dtype=np.uint8)
    gt[:3, :3] = 255
    cases.append((np.where(gt > 0, 255, 40).astype(np.uint8), gt))
    cases.append((np.where(gt > 0, 30, 200).astype(np.uint8), gt))
    return cases


def _brute_force(cases: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Precision, recall and F at every threshold by plain loops, both conventions."""
    precisions, recalls, fs = [], [], []
    for pred, gt in cases:
        g = gt > 127
        p_row, r_row, f_row = [], [], []
        for t in range(256):
            b = pred >= t
            tp = int(np.sum(b & g))
            p = tp / int(b.sum()) if b.sum() else 0.0
            r = tp / int(g.sum()) if g.sum() else 0.0
            f = 1.3 * p * r / (0.3 * p + r) if p + r else 0.0
            p_row.append(p)
            r_row.append(r)
            f_row.append(f)
        precisions.append(p_row)
        recalls.append(r_row)
        fs.append(f_row)
    pm, rm = np.mean(precisions, axis=0), np.mean(recalls, axis=0)
    f_pr = np.where(0.3 * pm + rm > 0, 1.3 * pm * rm / np.maximum(0.3 * pm + rm, 1e-300), 0.0)
    f_img = np.mean(fs, axis=0)
    maes = [np.mean(np.abs(pred / 255.0 - gt / 255.0)) for pred, gt in cases]
    maes_bin = [np.mean(np.abs(pred / 255.0 - (gt > 127))) for pred, gt in cases]
    return {
        "max_f": float(f_pr.max()),
        "mean_f": float(f_pr.mean()),
        "max_f_per_image": float(f_img.max()),
        "mean_f_per_image": float(f_img.mean()),
        "mae": float(np.mean(maes)),
        "mae_binary": float(np.mean(maes_bin)),
    }


def test_f_measures_and_mae_match_brute_force() -> None:
    cases = _tiny_cases()
    metrics = ev.DatasetMetrics()
    for pred, gt in cases:
        metrics.step(pred, gt)
    got, curves = metrics.get_results()
    want = _brute_force(cases)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # The two conventions really differ on these cases, so the test tells them apart.
    assert abs(got["max_f"] - got["max_f_per_image"]) > 1e-3
    assert len(curves.precision) == 256
    assert curves.recall[0] == 1.0  # t = 0: every pixel is predicted salient


def test_score_image_single_case() -> None:
    pred = np.array([[255, 200, 0], [0, 100, 0]], dtype=np.uint8)
    gt = np.array([[255, 255, 0], [0, 0, 0]], dtype=np.uint8)
    s = ev.score_image(pred, gt)
    assert s.mae == pytest.approx(np.mean(np.abs(pred / 255 - gt / 255)))
    assert s.iou == pytest.approx(1.0)  # 255 and 200 are >= 128; 100 is not
    assert s.max_f == pytest.approx(1.0)  # t in (100, 200]: exactly the mask
    assert s.mean_saliency == pytest.approx(pred.mean() / 255)
    assert 0.0 <= s.s_measure <= 1.0 and 0.0 <= s.weighted_f <= 1.0
    assert s.e_curve.shape == (256,) and s.precision[255] == 1.0


# --- protocols -----------------------------------------------------------------------------


PRE = Preprocessing(
    colour_mode="luma_tile",
    inference_size=(4, 4),
    scaling="divide_by_max",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    luma_range="auto",
)


def test_upstream_input_grey_uses_channel_zero_statistics() -> None:
    grey = np.full((4, 4), 100, dtype=np.uint8)
    x = ev.upstream_input(grey, PRE)
    assert x.shape == (1, 3, 4, 4)
    # divided by its own max -> 1.0 everywhere; every channel (1 - 0.485) / 0.229
    np.testing.assert_allclose(x, (1.0 - 0.485) / 0.229, rtol=1e-6)
    rgb = np.stack([grey] * 3, axis=-1)
    y = ev.upstream_input(rgb, PRE)
    np.testing.assert_allclose(y[0, 2], (1.0 - 0.406) / 0.225, rtol=1e-6)


def test_luma_and_deployment_input() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    assert ev.luma8(rgb).tolist() == [[76, 150, 29, 18]]  # rint(0.299 R + 0.587 G + 0.114 B)
    x = ev.deployment_input(np.repeat(rgb, 4, axis=0), PRE)
    assert x.shape == (1, 3, 4, 4)
    # luma_tile: one plane (luma / 255, then / its max 150/255) under each channel's mean/std
    planes = [x[0, c] * PRE.std[c] + PRE.mean[c] for c in range(3)]
    np.testing.assert_allclose(planes[0], planes[2], atol=1e-6)
    np.testing.assert_allclose(planes[0][0], np.array([76, 150, 29, 18]) / 150, atol=1e-6)


def test_upstream_output_min_max_and_truncation() -> None:
    sal = np.array([[0.2, 0.6], [0.4, 0.2 + 0.4 * (200.7 / 255)]], dtype=np.float32)
    out = ev.upstream_output(sal, (2, 2))
    # (x - 0.2) / 0.4 * 255, truncated: 0, 255, 127 (127.5), 200 (200.7)
    assert out.tolist() == [[0, 255], [127, 200]]
    assert ev.upstream_output(np.full((2, 2), 0.3, np.float32), (2, 2)).tolist() == [[0, 0], [0, 0]]
    assert ev.upstream_output(sal, (4, 6)).shape == (4, 6)


def test_deployment_output_rounds_raw_map() -> None:
    sal = np.array([[0.0, 0.5], [1.0, 0.2]], dtype=np.float32)
    assert ev.deployment_output(sal, (2, 2)).tolist() == [[0, 128], [255, 51]]


# --- costs ------------------------------------------------------------------------------------


def test_count_cost_conv() -> None:
    cost = ev.count_cost(conv_sigmoid_model(), (8, 10))
    # 1 output channel x 8 x 10 outputs, each 3 (C_in) x 3 x 3 multiplies
    assert cost.macs == 8 * 10 * 27
    assert cost.params == 28 and cost.note is None


def test_count_cost_grouped_conv() -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["input", "w"], ["y"], group=3, pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cost = ev.count_cost(model.SerializeToString(), (5, 7))
    assert cost.macs == 3 * 5 * 7 * 9  # C_in / groups = 1
    assert cost.params == 27


# --- dataset pairing ---------------------------------------------------------------------------


def _dataset(root: Path, stems: list[str], *, size: tuple[int, int] = (12, 10)) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for stem in stems:
        w, h = size
        img = rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        mask = np.zeros((h, w), np.uint8)
        mask[2:7, 3:9] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def test_pair_dataset_sorted_and_limited(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["b", "a", "10", "2"])
    assert [p.stem for p in ev.pair_dataset(root)] == ["10", "2", "a", "b"]
    assert [p.stem for p in ev.pair_dataset(root, limit=2)] == ["10", "2"]


@pytest.mark.parametrize("missing", ["images", "masks"])
def test_dataset_without_a_folder(tmp_path: Path, missing: str) -> None:
    root = tmp_path / "ds"
    (root / ({"images", "masks"} - {missing}).pop()).mkdir(parents=True)
    with pytest.raises(InputFileError, match=rf"dataset .*ds has no {missing}/ folder"):
        ev.pair_dataset(root)


def test_dataset_unpaired_files_are_counted_and_named(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2", "3", "4"])
    for stem in ("2", "3"):
        (root / "masks" / f"{stem}.png").unlink()
    (root / "images" / "4.png").unlink()
    with pytest.raises(
        InputFileError,
        match=r"2 image\(s\) without a mask \(first: 2, 3\); 1 mask\(s\) without an image "
        r"\(first: 4\): pair them by file stem",
    ):
        ev.pair_dataset(root)


def test_dataset_duplicate_stem(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1"])
    Image.new("RGB", (12, 10)).save(root / "images" / "1.jpg")
    with pytest.raises(InputFileError, match=r"two images share the stem '1'"):
        ev.pair_dataset(root)


def test_mask_of_another_size_is_refused(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", ["1", "2"])
    Image.new("L", (6, 5)).save(root / "masks" / "2.png")
    with pytest.raises(
        InputFileError, match=r"pair '2': mask .*2\.png is 6x5 but its image 2\.png is 12x10"
    ):
        ev.check_sizes(ev.pair_dataset(root))


# --- the summary: schema round trip, promote reads it ---------------------------------------------


def _summary(
    ids: tuple[str, ...] = ("a",), *, values: tuple[float, ...] = (0.5,)
) -> ev.EvalSummary:
    curves = ev.Curves(*(tuple(float(i) / 255 for i in range(256)) for _ in range(5)))
    models = []
    for model_id, value in zip(ids, values, strict=True):
        metrics: dict[str, float | None] = {name: value for name in ev.UNIT_METRICS}
        metrics.update({"params": 28.0, "macs": None, "ms_per_image": 1.5})
        models.append(
            ev.ModelResult(
                id=model_id,
                source="ad-hoc",
                path=f"/m/{model_id}.onnx",
                sha256="0" * 64,
                inference_size=(320, 320),
                metrics=metrics,
                mean_saliency=ev.distribution([0.1, 0.2]),
                curves=curves,
                notes=("a note",),
            )
        )
    return ev.EvalSummary(
        tool="0.1.0",
        command="vmafx-saliency eval ...",
        dataset=ev.DatasetInfo("/d", "d", 2, 3, 2, 1, 0, 5),
        protocol="upstream",
        gt_threshold=127,
        conventions=dict(ev.CONVENTIONS),
        versions={"numpy": "2"},
        models=tuple(models),
    )


def test_summary_round_trips_through_its_schema() -> None:
    summary = _summary(("a", "b"), values=(0.25, 0.75))
    doc = json.loads(summary.dumps())
    assert doc["schema"] == ev.SUMMARY_SCHEMA == "vmafx-saliency/eval-summary/v1"
    assert ev.validate_summary(doc) == []
    assert ev.EvalSummary.from_json(doc) == summary


def test_summary_schema_refuses_bad_documents() -> None:
    doc = json.loads(_summary().dumps())
    doc["models"][0]["metrics"]["max_f"] = 1.5
    doc["models"][0]["sha256"] = "xyz"
    del doc["dataset"]["count"]
    problems = " | ".join(ev.validate_summary(doc))
    assert "1.5 is greater than the maximum of 1" in problems
    assert "'xyz' does not match" in problems
    assert "'count' is a required property" in problems


def test_registry_reads_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(_summary(("old", "new"), values=(0.6, 0.7)).dumps())
    assert "vmafx-saliency/eval-summary/v1" in reg.COMPARISON_SCHEMAS
    cmp = reg.read_comparison_report(path, candidate="new", baseline="old", metric="max_f")
    assert (cmp.candidate_value, cmp.baseline_value, cmp.improves) == (0.7, 0.6, True)
    cmp = reg.read_comparison_report(path, candidate="new", baseline="old", metric="mae")
    assert not cmp.improves  # lower is better for mae
    with pytest.raises(ComparisonReportError, match=r"'macs' of 'new' is None|no metric"):
        reg.read_comparison_report(path, candidate="new", baseline="old", metric="macs")


def test_report_folder_is_atomic_and_needs_force(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    (target / "summary.json").write_text("{}")  # an earlier report
    (target / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match=r"report already exists: pass --force"):
        ev._ReportDir(target, marker="summary.json", force=False)
    out = ev._ReportDir(target, marker="summary.json", force=True)
    out.path("new.txt").write_text("new")
    assert (target / "old.txt").exists()  # nothing changes before the commit
    out.commit()
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_new_or_empty_report_folder_needs_no_force(tmp_path: Path) -> None:
    ev.check_report_folder(tmp_path / "new", marker="summary.json", force=False)
    (tmp_path / "empty").mkdir()
    out = ev._ReportDir(tmp_path / "empty", marker="summary.json", force=False)
    out.path("summary.json").write_text("{}")
    out.commit()
    assert [p.name for p in (tmp_path / "empty").iterdir()] == ["summary.json"]


@pytest.mark.parametrize("marker", ["summary.json", "compare.json"])
def test_force_never_replaces_a_folder_that_is_not_a_report(tmp_path: Path, marker: str) -> None:
    """`--report dataset --force` must not swap a dataset (or notes) for a report."""
    data = tmp_path / "pascal-s"
    (data / "images").mkdir(parents=True)
    (data / "images" / "1.jpg").write_bytes(b"jpeg")
    with pytest.raises(
        OutputExistsError,
        match=rf"pascal-s exists and is not an earlier report \(it has no {marker}\), so even "
        r"--force will not replace it: give a new or empty folder",
    ):
        ev.check_report_folder(data, marker=marker, force=True)
    assert (data / "images" / "1.jpg").read_bytes() == b"jpeg"


def test_a_report_path_that_is_a_file_or_the_working_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(UsageError, match=r"--report .*notes\.txt: exists and is not a folder"):
        ev.check_report_folder(notes, marker="summary.json", force=True)
    assert notes.read_text() == "mine"
    report = tmp_path / "report"
    report.mkdir()
    (report / "summary.json").write_text("{}")
    monkeypatch.chdir(report)
    for here in (Path(), Path(".."), report):
        with pytest.raises(UsageError, match=r"that is the folder you are in \(or holds it\)"):
            ev.check_report_folder(here, marker="summary.json", force=True)
