"""ROI maps: block reduction, offset mapping, encoder inputs, error paths, one real encode."""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests._onnx_models import conv_sigmoid_model
from tests._trust import sidecar_doc, write_json
from vmafx_saliency.cli import main as cli
from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import (
    MissingDependencyError,
    OutputExistsError,
    RoiError,
    UsageError,
)

# --- block reduction --------------------------------------------------------------


def test_block_means_hand_worked_with_partial_edge_blocks() -> None:
    plane = np.arange(15, dtype=np.float32).reshape(3, 5)
    # [[ 0  1 |  2  3 |  4]
    #  [ 5  6 |  7  8 |  9]
    #  [10 11 | 12 13 | 14]]  blocks of 2: edge blocks average only the pixels they have
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2], [10.5, 12.5, 14.0]]
    np.testing.assert_allclose(roi.block_means(plane, 2), expected)


def test_block_areas_and_grid_shape() -> None:
    assert roi.grid_shape((288, 352), 16) == (18, 22)
    assert roi.grid_shape((288, 352), 64) == (5, 6)  # 288 = 4*64 + 32: a half-height last row
    areas = roi.block_areas((288, 352), 64)
    assert areas[0, 0] == 64 * 64
    assert areas[-1, -1] == 32 * 32  # 352 = 5*64 + 32 as well
    assert areas.sum() == 288 * 352


def test_map_to_blocks_resizes_to_the_frame_first() -> None:
    saliency = np.zeros((40, 40), dtype=np.float32)
    saliency[:, 20:] = 1.0  # right half salient, at the inference size
    blocks = roi.map_to_blocks(saliency, (32, 64), 16)
    assert blocks.shape == (2, 4)
    np.testing.assert_allclose(blocks[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(blocks[:, 3], 1.0, atol=1e-6)
    assert np.all(np.diff(blocks[0]) >= 0)


def test_block_means_refuses_bad_input() -> None:
    with pytest.raises(UsageError, match="non-empty 2-D plane"):
        roi.block_means(np.zeros((0, 4)), 16)
    with pytest.raises(UsageError, match="block size 0"):
        roi.block_means(np.zeros((4, 4)), 0)


# --- the offset mapping -----------------------------------------------------------


def test_raw_offsets_hand_worked() -> None:
    blocks = np.array([[0.0, 0.0], [0.0, 1.0]])
    # mean 0.25, std sqrt(0.1875) = 0.4330; strength 2: 0 -> +1.1547, 1 -> -3.4641 -> clamp -3
    out = roi.raw_offsets(blocks, strength=2.0, clamp=3.0)
    np.testing.assert_allclose(out, [[1.1547, 1.1547], [1.1547, -3.0]], atol=1e-4)


def test_raw_offsets_salient_is_negative_and_flat_maps_stay_near_zero() -> None:
    flat = np.full((3, 3), 0.5)
    np.testing.assert_allclose(roi.raw_offsets(flat, strength=4.0, clamp=8.0), 0.0)
    # A spread below SIGMA_FLOOR (0.05) is divided by the floor, not by its own std.
    tiny = np.array([[0.495, 0.505]])
    np.testing.assert_allclose(
        roi.raw_offsets(tiny, strength=4.0, clamp=8.0), [[0.4, -0.4]], atol=1e-9
    )


def test_raw_offsets_weights_blocks_by_area() -> None:
    blocks = np.array([[0.0, 1.0]])
    even = roi.raw_offsets(blocks, strength=1.0, clamp=10.0)
    skewed = roi.raw_offsets(blocks, strength=1.0, clamp=10.0, areas=np.array([[3.0, 1.0]]))
    np.testing.assert_allclose(even, [[1.0, -1.0]])
    # mean 0.25, std 0.4330: the small salient block now stands out more.
    np.testing.assert_allclose(skewed, [[0.57735, -1.73205]], atol=1e-5)


@pytest.mark.parametrize(
    ("clamp", "levels", "expected"),
    [
        (8, 8, [-8, -5, -3, 0, 3, 5, 8]),  # 8 levels: an odd 7, symmetric about 0
        (6, 3, [-6, 0, 6]),
        (2, 8, [-2, -1, 0, 1, 2]),  # no more levels than integers in range
        (1, 8, [-1, 0, 1]),
    ],
)
def test_offset_levels(clamp: int, levels: int, expected: list[int]) -> None:
    assert roi.offset_levels(clamp, levels).tolist() == expected


def test_quantise_offsets_hand_worked_ties_go_towards_zero() -> None:
    values = np.array([-4.0, -1.5, 1.5, 4.1, 7.0, -9.0])
    # levels -8 -5 -3 0 3 5 8: -4 is as far from -5 as from -3 -> -3; -1.5 -> 0
    out = roi.quantise_offsets(values, clamp=8, levels=8)
    assert out.tolist() == [-3, 0, 0, 5, 8, -8]


@pytest.mark.parametrize("levels", [3, 4, 5, 6, 7, 8])
def test_quantised_offsets_never_exceed_svt_av1s_eight_segments(levels: int) -> None:
    rng = np.random.default_rng(levels)
    values = rng.normal(scale=20.0, size=(40, 40))
    out = roi.quantise_offsets(values, clamp=30, levels=levels)
    assert len(np.unique(out)) <= min(levels, 8)
    assert np.abs(out).max() <= 30


def test_temporal_aggregation_modes() -> None:
    first = np.zeros((32, 32), dtype=np.float32)
    second = np.ones((32, 32), dtype=np.float32)
    second[:16] = 0.0  # bottom half salient in the second frame only

    def feed(mode: roi.Aggregate) -> roi.TemporalAggregator:
        # strength 4: the second frame's z-scores of +-1 give -+4 QP, nearest level +-6
        settings = roi.RoiSettings(aggregate=mode, ema_alpha=0.5, strength=4.0)
        acc = roi.TemporalAggregator(settings, (32, 32), start=10)
        acc(10, first)
        acc(12, second)
        return acc

    np.testing.assert_allclose(feed("mean").static_blocks(), [[0.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(feed("max").static_blocks(), [[0.0, 0.0], [1.0, 1.0]])
    assert feed("mean").pictures == [] and feed("max").pictures == []
    per_frame = feed("per-frame")
    assert [p for p, _ in per_frame.pictures] == [0, 2]  # numbered from the range start
    assert per_frame.pictures[0][1].tolist() == [[0, 0], [0, 0]]  # a flat map: no offsets
    assert per_frame.pictures[1][1].tolist() == [[6, 6], [-6, -6]]
    assert feed("per-frame").frame_means == [0.0, 0.5]
    ema = feed("ema")  # 0.5 * second + 0.5 * first: the same pattern, half as strong
    assert ema.pictures[1][1].tolist() == [[6, 6], [-6, -6]]


def test_settings_validate() -> None:
    assert roi.RoiSettings().validate().block_size == 16
    assert roi.RoiSettings(codec="av1", clamp=63).validate().block_size == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codec": "vp9"}, "unknown codec 'vp9': --codec takes one of h264, hevc, av1"),
        ({"strength": 0.0}, r"--strength 0.0: give a positive number"),
        ({"strength": -2.0}, r"--strength -2.0: give a positive number"),
        ({"strength": math.nan}, r"--strength nan: give a positive number"),
        ({"clamp": 52}, "--clamp 52: give a whole number of QP from 1 to 51 for h264"),
        ({"clamp": 0, "codec": "av1"}, "from 1 to 63 for av1"),
        ({"levels": 9}, "--levels 9: give 3 to 8"),
        ({"aggregate": "median"}, "unknown aggregate 'median'"),
        ({"ema_alpha": 0.0}, r"--ema-alpha 0.0"),
        ({"max_regions": 0}, "--max-regions 0"),
        ({"zone_frames": 0}, "--zone-frames 0"),
    ],
)
def test_settings_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        roi.RoiSettings(**kwargs).validate()  # type: ignore[arg-type]


# --- SVT-AV1 ROI map ---------------------------------------------------------------


def test_svtav1_roi_map_format_hand_worked() -> None:
    pictures = [(0, np.array([[-2, 0], [1, 0]])), (5, np.array([[0, 0], [3, -3]]))]
    # One line per event: picture number, then qindex offsets (4 x AV1 QP) in raster order.
    assert roi.svtav1_roi_map(pictures) == "0 -8 0 4 0\n5 0 0 12 -12\n"


def test_svtav1_roi_map_refusals() -> None:
    with pytest.raises(RoiError, match="must increase: 3 after 3"):
        roi.svtav1_roi_map([(3, np.zeros((1, 1))), (3, np.zeros((1, 1)))])
    with pytest.raises(RoiError, match=r"outside -255\.\.255"):
        roi.svtav1_roi_map([(0, np.array([[64]]))])
    with pytest.raises(RoiError, match="more than 8 distinct offsets"):
        roi.svtav1_roi_map([(0, np.arange(-4, 5).reshape(1, 9))])


# --- addroi regions ----------------------------------------------------------------


def test_region_filter_string_keeps_the_qp_exact() -> None:
    region = roi.Region(16, 32, 48, 16, -6)
    assert region.to_filter() == "addroi=x=16:y=32:w=48:h=16:qoffset=-6/51"
    assert region.qoffset * 51 == -6  # libx264.c: qoffset * (51 + 6 * (bit_depth - 8))
    both = roi.addroi_filter([region, roi.Region(0, 0, 64, 64, 3)])
    assert both == (
        "addroi=x=16:y=32:w=48:h=16:qoffset=-6/51,addroi=x=0:y=0:w=64:h=64:qoffset=3/51"
    )


def test_regions_hand_worked_most_important_first() -> None:
    # 50x60 frame, 16px blocks: a 4x4 grid (partial last row and column).
    target = np.full((4, 4), 3)
    target[1, 1] = -6
    regions = roi.regions_from_offsets(
        target, frame_hw=(50, 60), block=16, clamp=6, levels=5, max_regions=8
    )
    # Painter: the whole frame at +3 first (largest error cut), then the block at -6.
    # ffmpeg order is precedence order (the first region wins), so the block comes first,
    # and the frame-wide region is clipped to the frame (60x50, not 64x64).
    assert roi.addroi_filter(regions) == (
        "addroi=x=16:y=16:w=16:h=16:qoffset=-6/51,addroi=x=0:y=0:w=60:h=50:qoffset=3/51"
    )
    rendered = roi.render_regions(regions, frame_hw=(50, 60), block=16)
    np.testing.assert_array_equal(rendered, target)


def test_render_regions_first_region_wins_like_libx264() -> None:
    small, whole = roi.Region(0, 0, 16, 16, -6), roi.Region(0, 0, 32, 32, 3)
    np.testing.assert_array_equal(
        roi.render_regions([small, whole], frame_hw=(32, 32), block=16), [[-6, 3], [3, 3]]
    )
    np.testing.assert_array_equal(
        roi.render_regions([whole, small], frame_hw=(32, 32), block=16), [[3, 3], [3, 3]]
    )


def test_regions_are_bounded_and_approximate_the_map() -> None:
    rng = np.random.default_rng(1)
    blocks = rng.random((18, 22))
    blocks[5:12, 7:14] += 2.0  # a salient blob
    target = roi.quantise_offsets(roi.raw_offsets(blocks, strength=3, clamp=6), clamp=6, levels=5)
    regions = roi.regions_from_offsets(
        target, frame_hw=(288, 352), block=16, clamp=6, levels=5, max_regions=6
    )
    assert 1 <= len(regions) <= 6
    rendered = roi.render_regions(regions, frame_hw=(288, 352), block=16)
    before = float(((target - 0) ** 2).sum())
    after = float(((target - rendered) ** 2).sum())
    assert after < 0.5 * before
    assert rendered[8, 10] < 0  # the blob is boosted


def test_an_all_zero_map_needs_no_region() -> None:
    assert roi.plan_regions(np.zeros((3, 3)), clamp=6, levels=3, max_regions=4) == ()
    assert roi.addroi_filter(()) == ""


# --- x265 zones --------------------------------------------------------------------


def test_zones_hand_worked() -> None:
    means = [(0, 0.2), (1, 0.2), (2, 0.8), (3, 0.8), (4, 0.5), (5, 0.5)]
    # clip mean 0.5: segment 0 -> sqrt(0.4) = 0.63 -> 0.80 (floor); segment 1 -> sqrt(1.6)
    # = 1.26 -> 1.25 (cap); segment 2 -> 1.00, left out
    zones = roi.plan_zones(means, frame_count=6, zone_frames=2)
    assert roi.zones_string(zones) == "0,2,b=0.80/2,4,b=1.25"
    assert roi.plan_zones([], frame_count=6, zone_frames=2) == ()
    assert roi.plan_zones([(0, 0.0)], frame_count=1, zone_frames=2) == ()


def test_zones_merge_equal_neighbours() -> None:
    means = [(i, 0.9 if i < 4 else 0.1) for i in range(8)]
    assert roi.zones_string(roi.plan_zones(means, frame_count=8, zone_frames=2)) == (
        "0,4,b=1.25/4,8,b=0.80"
    )


# --- PSNR, bitrate ----------------------------------------------------------------


def test_masked_mse_hand_worked() -> None:
    mask = np.array([[True, True], [False, False]])
    meter = roi.MaskedMse(mask)
    meter.add(np.zeros((2, 2), np.uint8), np.array([[1, 1], [3, 3]], np.uint8))
    result = meter.result(255.0)
    assert (result.mse_inside, result.mse_outside, result.mse_overall) == (1.0, 9.0, 5.0)
    assert result.inside == pytest.approx(10 * math.log10(255**2 / 1))
    assert result.outside == pytest.approx(10 * math.log10(255**2 / 9))
    assert result.to_json()["inside"] == pytest.approx(48.1308, abs=1e-4)
    same = roi.MaskedMse(mask)
    same.add(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    assert same.result(255.0).to_json()["overall"] is None  # identical: infinite PSNR


@pytest.mark.parametrize(
    ("text", "bps"), [("300k", 300_000), ("1.5M", 1_500_000), ("250000", 250_000)]
)
def test_parse_bitrate(text: str, bps: int) -> None:
    assert roi.parse_bitrate(text) == bps


@pytest.mark.parametrize("text", ["fast", "300kb", "-3k", "0.5k"])
def test_parse_bitrate_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--bitrate"):
        roi.parse_bitrate(text)


def test_encode_settings_refuse_unknown_encoder() -> None:
    bad = roi.EncodeSettings(encoder="libsvtav1", bitrate=300_000)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"unknown encoder 'libsvtav1'.*libx264, libx265"):
        bad.validate()


def test_encode_commands_two_passes_same_settings(tmp_path: Path) -> None:
    from vmafx_saliency.video.frames import VideoInfo

    info = VideoInfo(tmp_path / "in.mp4", "av", 64, 48, "yuv420p", 8, 25.0, 10, None)
    for encoder in ("libx264", "libx265"):
        settings = roi.EncodeSettings(encoder=encoder, bitrate=300_000, threads=1)
        first, second = roi.encode_commands(
            ffmpeg="ffmpeg",
            info=info,
            settings=settings,
            start=2,
            frame_count=8,
            roi_chain="addroi=x=0:y=0:w=16:h=16:qoffset=-6/51",
            stats=tmp_path / "stats",
            output=tmp_path / "out.mp4",
        )
        assert first[-3:] == ("-f", "null", "-") and second[-1] == str(tmp_path / "out.mp4")
        chain = "trim=start_frame=2,setpts=PTS-STARTPTS,addroi=x=0:y=0:w=16:h=16:qoffset=-6/51"
        for command in (first, second):
            assert command[command.index("-vf") + 1] == chain
            assert command[command.index("-b:v") + 1] == "300000"
            assert command[command.index("-frames:v") + 1] == "8"
    assert "pass=2" in second[second.index("-x265-params") + 1]


# --- error paths: ffmpeg ----------------------------------------------------------


def test_missing_ffmpeg_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg anywhere
    with pytest.raises(MissingDependencyError, match=r"apt-get install ffmpeg"):
        roi.find_ffmpeg()


def _fake_ffmpeg(folder: Path, encoders: str) -> None:
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "-encoders" ]; then printf "%s\\n" '
        f"'{encoders}'; fi\n"
        'if [ "$2" = "-filters" ]; then echo " ... addroi V->V Add region of interest"; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_missing_encoder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_ffmpeg(tmp_path, " V....D libx264  libx264 H.264")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert roi.check_ffmpeg("ffmpeg", "libx264") == str(tmp_path / "ffmpeg")
    with pytest.raises(MissingDependencyError, match=r"no libx265 encoder \(see '.*-encoders'\)"):
        roi.check_ffmpeg("ffmpeg", "libx265")


def test_cli_encode_without_ffmpeg_fails_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the ffmpeg check comes first")
    code = cli.main(
        ["roi", "encode", str(video), "--codec", "libx264", "--bitrate", "300k",
         "--model-path", str(tmp_path / "absent.onnx")]
    )  # fmt: skip
    assert code == 2
    assert "apt-get install ffmpeg" in capsys.readouterr().err


def test_cli_map_bad_strength_and_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["roi", "map", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out")]
    assert cli.main([*args, "--strength", "-1"]) == 2
    assert "--strength -1.0: give a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "--codec", "vp9"])
    assert exc.value.code == 2
    assert "invalid choice: 'vp9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_map_refuses_to_overwrite_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / roi.FILE_OFFSETS).write_text("{}")
    from vmafx_saliency.video.job import ModelChoice, VideoInput

    with pytest.raises(OutputExistsError, match="already exists: pass --force"):
        roi.run_map(
            VideoInput(path=tmp_path / "absent.mp4"),
            ModelChoice(model_path=tmp_path / "absent.onnx"),
            roi.RoiSettings(),
            out,
        )


# --- end to end: a tiny model, 20 frames, libx264 ----------------------------------


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(conv_sigmoid_model())
    doc = sidecar_doc("tiny")
    doc["preprocessing"]["inference_size"] = [72, 88]
    write_json(tmp_path / "tiny.sidecar.json", doc)
    return model


def _need_ffmpeg_with(encoder: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian: apt-get install ffmpeg)")
    try:
        roi.check_ffmpeg("ffmpeg", encoder)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def test_roi_map_end_to_end(tiny_model: Path, videos_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "map"
    code = cli.main(
        ["roi", "map", str(videos_dir / "foreman_cif.mp4"), "--out", str(out), "--codec", "av1",
         "--frames", "0:6", "--aggregate", "per-frame", "--levels", "8", "--model-path",
         str(tiny_model), "--threads", "1", "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "roi_offsets.json",
        "svtav1_roi.txt",
        "x265_zones.txt",
    ]
    doc = json.loads((out / "roi_offsets.json").read_text())
    assert doc["grid"] == {"cols": 6, "rows": 5} and doc["block_size"] == 64
    assert len(doc["pictures"]) == 6
    lines = (out / "svtav1_roi.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == list(range(6))
    for line in lines:
        values = [int(v) for v in line.split()[1:]]
        assert len(values) == 30 and len(set(values)) <= 8


def test_roi_encode_end_to_end_libx264(
    tiny_model: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need_ffmpeg_with("libx264")
    # Relative paths on purpose: ffmpeg runs in a work folder, not in the caller's.
    monkeypatch.chdir(tmp_path)
    video = os.path.relpath(videos_dir / "foreman_cif.mp4", tmp_path)
    out = tmp_path / "enc"
    code = cli.main(
        ["roi", "encode", video, "--codec", "libx264",
         "--bitrate", "200k", "--preset", "veryfast", "--frames", "0:20", "--subsample", "4",
         "--encode-threads", "1", "--threads", "1", "--model-path", str(tiny_model),
         "--out", "enc", "--json", "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "vmafx-saliency/roi-encode/v1"
    assert report["frames"] == {"start": 0, "count": 20}
    assert report["encoder"] == "libx264" and report["target_bitrate_kbps"] == 200
    assert report["roi"]["computed_frames"] == 5 and report["roi"]["block_size"] == 16
    for name in ("plain", "roi"):
        encode = report["encodes"][name]
        assert encode["frames"] == 20
        assert encode["stream_bytes"] > 0 and encode["bitrate_kbps"] > 0
        assert set(encode["psnr_y"]) >= {"inside", "outside", "overall"}
        assert 20 < encode["psnr_y"]["overall"] < 60
        assert (tmp_path / encode["path"]).is_file()
    assert set(report["comparison"]) >= {"size_delta_pct", "bitrate_match", "psnr_gain_db"}
    assert len(report["commands"]) == 4  # two passes of two encodes
    assert {p.name for p in out.iterdir()} == {
        "roi_offsets.json", "addroi.txt", "x265_zones.txt", "plain.mp4", "roi.mp4",
        "report.json", "report.txt",
    }  # fmt: skip
    assert "PSNR-Y in" in (out / "report.txt").read_text()


def test_roi_encode_fps_reaches_the_encoder(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--fps overrides the file's rate in the encodes, not only in the kb/s arithmetic."""
    _need_ffmpeg_with("libx264")
    av = pytest.importorskip("av")
    out = tmp_path / "enc"
    code = cli.main(
        ["roi", "encode", str(videos_dir / "foreman_cif.mp4"), "--fps", "50", "--codec", "libx264",
         "--bitrate", "200k", "--preset", "ultrafast", "--frames", "0:10", "--passes", "1",
         "--encode-threads", "1", "--threads", "1", "--model-path", str(tiny_model),
         "--out", str(out), "--json", "--quiet"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("plain", "roi"):
        encode = report["encodes"][name]
        with av.open(str(tmp_path / encode["path"])) as container:
            stream = container.streams.video[0]
            assert stream.average_rate == 50, (name, stream.average_rate)  # foreman is 25 fps
            seconds = float(stream.frames / stream.average_rate)
        # The report's kb/s is the stream's bits over the time the file itself lasts.
        assert encode["bitrate_kbps"] == pytest.approx(
            encode["stream_bytes"] * 8 / seconds / 1000, rel=1e-3
        )
    # The commands are recorded as they run again: writing into --out, not a removed folder.
    outputs = [shlex.split(command)[-1] for command in report["commands"]]
    assert outputs == [str(out.resolve() / "plain.mp4"), str(out.resolve() / "roi.mp4")]
    assert all(Path(path).is_file() for path in outputs)


def test_roi_encode_of_raw_yuv_without_fps_warns(
    tiny_model: Path,
    videos_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _need_ffmpeg_with("libx264")
    clip = videos_dir / "CiscoVT2people_160x96_6fps.yuv"
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency.downstream.roi"):
        code = cli.main(
            ["roi", "encode", str(clip), "--width", "160", "--height", "96", "--codec", "libx264",
             "--bitrate", "100k", "--preset", "ultrafast", "--passes", "1", "--encode-threads",
             "1", "--threads", "1", "--model-path", str(tiny_model), "--json", "--quiet"]
        )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    assert (
        "raw YUV has no frame rate: the encodes and their kb/s assume 25 fps; pass --fps"
        in caplog.text
    )


def _map(tiny_model: Path, video: Path, out: Path, *extra: str) -> int:
    return cli.main(
        ["roi", "map", str(video), "--out", str(out), "--frames", "0:6", "--model-path",
         str(tiny_model), "--threads", "1", "--quiet", *extra]
    )  # fmt: skip


def test_roi_map_again_for_another_codec_leaves_no_stale_map(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """foreman's addroi chain must not survive beside carphone's AV1 offsets."""
    out = tmp_path / "map"
    assert _map(tiny_model, videos_dir / "foreman_cif.mp4", out) == 0
    assert (out / "addroi.txt").is_file()
    carphone = videos_dir / "carphone_pristine.mp4"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _map(tiny_model, carphone, out, "--codec", "av1") == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _map(tiny_model, carphone, out, "--codec", "av1", "--force") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["roi_offsets.json", "svtav1_roi.txt", "x265_zones.txt"]


def test_zones_without_a_zone_are_one_no_op_zone_that_x265_takes(
    tiny_model: Path, videos_dir: Path, tmp_path: Path
) -> None:
    """Six frames are under one zone length: no zone differs, yet the file stays usable."""
    out = tmp_path / "map"
    assert _map(tiny_model, videos_dir / "foreman_cif.mp4", out) == 0
    assert json.loads((out / "roi_offsets.json").read_text())["zones"] == []
    zones = (out / "x265_zones.txt").read_text().strip()
    assert zones == "0,6,b=1.00"
    _need_ffmpeg_with("libx265")
    # The command of docs/roi.md, as a user runs it.
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i",
         str(videos_dir / "foreman_cif.mp4"), "-frames:v", "6", "-c:v", "libx265", "-b:v", "300k",
         "-x265-params", f"zones={zones}:log-level=error", str(tmp_path / "z.mp4")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_parse_bitrate_refuses_a_lowercase_m() -> None:
    with pytest.raises(
        UsageError, match=r"--bitrate '300m'.*\(M is mega; ffmpeg reads m as milli\)"
    ):
        roi.parse_bitrate("300m")


def test_roi_encode_that_ffmpeg_refuses_leaves_no_out_folder(
    tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_ffmpeg_with("libx264")
    out = tmp_path / "enc"
    code = cli.main(
        ["roi", "encode", str(videos_dir / "carphone_pristine.mp4"), "--frames", "0:4",
         "--codec", "libx264", "--bitrate", "100k", "--preset", "bogus", "--passes", "1",
         "--threads", "1", "--model-path", str(tiny_model), "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 2
    assert "plain encode pass 1 (libx264): ffmpeg exited with status" in capsys.readouterr().err
    assert not out.exists()


def test_roi_map_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    with pytest.raises(UsageError, match=r"--out .*afile: a file, not a folder: give a folder"):
        roi._check_out_dir(afile)
    assert afile.read_text() == "mine\n"
