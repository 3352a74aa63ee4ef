"""Training views: deterministic, made from the training split only, and video frames."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from vmafx_saliency.cli import main as cli  # noqa: E402
from vmafx_saliency.errors import InputFileError, UsageError, VideoError  # noqa: E402
from vmafx_saliency.science import train, views  # noqa: E402

# Twelve solid-colour images, each its own colour: a view's pixels then say
# which source images went into it (bilinear resizing keeps solid colours exact).
COLOURS = [(20 * i + 10, 255 - 20 * i, (97 * i) % 256) for i in range(12)]


@pytest.fixture
def solid_images(tmp_path: Path) -> Path:
    folder = tmp_path / "solid"
    folder.mkdir()
    for i, colour in enumerate(COLOURS):
        size = (120 + 10 * i, 90 + 5 * i)
        Image.new("RGB", size, colour).save(folder / f"img{i:02d}.png")
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


@pytest.mark.parametrize("recipe", list(views.RECIPES))
def test_views_are_deterministic_and_named_by_kind(
    solid_images: Path, tmp_path: Path, recipe: str
) -> None:
    paths = train.list_images(solid_images)
    first = views.make_views(paths, tmp_path / "a", recipe=recipe, limit=3)
    views.make_views(paths, tmp_path / "b", recipe=recipe, limit=3)
    kinds = views.RECIPES[recipe]
    assert first.written == 3 * len(kinds) and first.skipped == 0
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    names = sorted(_digests(tmp_path / "a"))
    assert names == sorted(
        f"k{k}/img{i:02d}_{kind}.png" for i in range(3) for k, kind in enumerate(kinds)
    )
    other = views.make_views(paths, tmp_path / "c", recipe=recipe, seed=99, limit=3)
    assert other.written == first.written
    assert _digests(tmp_path / "c") != _digests(tmp_path / "a")


def test_a_rerun_keeps_existing_views(solid_images: Path, tmp_path: Path) -> None:
    paths = train.list_images(solid_images)
    views.make_views(paths, tmp_path, recipe="mix", limit=2)
    before = _digests(tmp_path)
    again = views.make_views(paths, tmp_path, recipe="mix", limit=3)
    assert again.skipped == 8 and again.written == 4
    assert {k: v for k, v in _digests(tmp_path).items() if k in before} == before


@pytest.mark.parametrize("recipe", list(views.RECIPES))
def test_cli_views_use_only_the_training_split(
    solid_images: Path, tmp_path: Path, recipe: str
) -> None:
    out = tmp_path / "views"
    argv = ["views", "synth", "--recipe", recipe, "--images", str(solid_images)]
    argv += ["--no-default-images"]
    assert cli.main([*argv, "--val-fraction", "0.25", "--out", str(out)]) == 0
    samples = train.collect_samples([solid_images])
    train_split, val_split = train.split_samples(samples, val_fraction=0.25, seed=0)
    colour_of = {f"img{i:02d}": c for i, c in enumerate(COLOURS)}
    train_colours = {colour_of[s.path.stem] for s in train_split}
    val_colours = {colour_of[s.path.stem] for s in val_split}
    assert len(val_colours) == 3
    seen: set[tuple[int, ...]] = set()
    for path in out.rglob("*.png"):
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
        seen |= {tuple(int(v) for v in row) for row in np.unique(pixels, axis=0)}
    assert seen <= train_colours, "a view holds pixels of a validation image"
    assert not seen & val_colours
    assert len(list(out.rglob("*.png"))) == 9 * len(views.RECIPES[recipe])


def test_unknown_recipe_and_too_few_images_are_refused(solid_images: Path, tmp_path: Path) -> None:
    paths = train.list_images(solid_images)
    out = tmp_path / "views"
    with pytest.raises(UsageError, match="recipe 'noise': choose one of mix, clutter"):
        views.make_views(paths, out, recipe="noise")
    with pytest.raises(InputFileError, match="4 image\\(s\\): a view recipe needs at least 9"):
        views.make_views(paths[:4], out, recipe="mix")
    assert not out.exists()


def test_video_frames_every_nth(videos_dir: Path, tmp_path: Path) -> None:
    clip = videos_dir / "carphone_pristine.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent (../shared/data/videos)")
    result = views.video_frames(clip, tmp_path, every=50)
    names = sorted(p.name for p in (tmp_path / "carphone_pristine").glob("*.png"))
    assert names == [f"carphone_pristine_{i:04d}.png" for i in (0, 50, 100)]
    marker = (tmp_path / "carphone_pristine" / views.SOURCE_MARKER).read_text()
    assert marker == f"{hashlib.sha256(clip.read_bytes()).hexdigest()}  carphone_pristine.mp4\n"
    assert result.written == 3
    with Image.open(tmp_path / "carphone_pristine" / names[0]) as img:
        assert img.mode == "RGB" and img.size == (176, 144)
    assert views.video_frames(clip, tmp_path, every=50).skipped == 3


def test_video_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--every 0: give a positive frame step"):
        views.video_frames(tmp_path / "x.mp4", tmp_path, every=0)
    bad = tmp_path / "not_a_video.mp4"
    bad.write_bytes(b"this is not a video")
    # The extractor's own check of the file, in its words.
    with pytest.raises(InputFileError, match=r"cannot open \S+not_a_video\.mp4: .*is it a video"):
        views.video_frames(bad, tmp_path / "out", every=5)
    assert not (tmp_path / "out").exists()


def test_video_frames_without_pillow_name_the_extra_first(
    videos_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A core install has PyAV but not Pillow, which to_image needs: one line, no folder.
    clip = videos_dir / "carphone_pristine.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent (../shared/data/videos)")
    from vmafx_saliency.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(
        MissingDependencyError,
        match=r"needs the Python package 'PIL' \(Pillow on PyPI\), .*pip install "
        r"'vmafx-saliency\[views\]'",
    ):
        views.video_frames(clip, tmp_path / "out", every=50)
    assert not (tmp_path / "out").exists()
    # views synth alike: no folder, no views.json claimed for views never made.
    folder = train.DEFAULT_IMAGES
    if folder is None or not folder.is_dir():
        pytest.skip("MSRA-B is absent (../shared/data/msra-b/images)")
    images = sorted(folder.iterdir())[:12]
    with pytest.raises(MissingDependencyError, match=r"vmafx-saliency\[views\]"):
        views.make_views(images, tmp_path / "views", recipe="mix")
    assert not (tmp_path / "views").exists()


def test_train_only_folders_are_listed_recursively_in_path_order(
    solid_images: Path, tmp_path: Path
) -> None:
    nested = tmp_path / "nested"
    for sub, names in (("k1", ["b", "a"]), ("k0", ["c"])):
        (nested / sub).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (8, 8), (len(name), ord(name[0]), 7)).save(
                nested / sub / f"{name}.png"
            )
    listed = train.list_images(nested, recursive=True)
    assert [str(p.relative_to(nested)) for p in listed] == ["k0/c.png", "k1/a.png", "k1/b.png"]
    with pytest.raises(InputFileError, match=r"nested holds no \.jpg/\.png images"):
        train.list_images(nested)  # not recursive: no images at the top


def test_views_synth_takes_its_folders_as_train_does() -> None:
    """views synth --images X splits MSRA-B + X, as train --images X does: one split."""
    import argparse

    from vmafx_saliency.cli import train as _cli_train

    def parsed(*argv: str) -> argparse.Namespace:
        return cli.build_parser().parse_args(list(argv))

    for extra in ([], ["--images", "a"], ["--images", "a", "--no-default-images"]):
        t = parsed("train", "--out", "x", *extra)
        v = parsed("views", "synth", "--recipe", "mix", "--out", "y", *extra)
        assert _cli_train.train_image_dirs(v) == _cli_train.train_image_dirs(t), extra
    assert _cli_train.train_image_dirs(parsed("train", "--out", "x", "--images", "a")) == [
        train.DEFAULT_IMAGES,
        Path("a"),
    ]


def test_sources_of_one_name_in_two_folders_get_views_of_their_own(
    solid_images: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    for i in range(3):  # img00..img02 again, other colours
        Image.new("RGB", (100, 80), (i, 200, 50)).save(twin / f"img{i:02d}.png")
    paths = [*train.list_images(solid_images), *train.list_images(twin)]
    result = views.make_views(paths, tmp_path / "v", recipe="mix")
    assert result.written == 4 * len(paths) and result.skipped == 0
    names = {p.name for p in (tmp_path / "v" / "k0").iterdir()}
    assert "img05_crop.png" in names  # a unique stem keeps its plain name
    assert sum(n.startswith("img00_") for n in names) == 2 and "img00_crop.png" not in names


def test_an_unreadable_source_image_is_named(solid_images: Path, tmp_path: Path) -> None:
    broken = solid_images / "img99.png"
    broken.write_bytes((solid_images / "img00.png").read_bytes()[:40])  # a cut-short PNG
    paths = train.list_images(solid_images)
    with pytest.raises(
        InputFileError,
        match=r"cannot decode .*img99\.png .*fix or remove it, then run again \(a changed image",
    ):
        views.make_views(paths, tmp_path / "v", recipe="mix")


def test_views_out_that_is_a_file_is_refused(solid_images: Path, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    with pytest.raises(UsageError, match=r"--out .*afile: a file, not a folder"):
        views.make_views(train.list_images(solid_images), afile, recipe="mix")
    with pytest.raises(UsageError, match=r"--out .*afile: a file, not a folder"):
        views.video_frames(tmp_path / "x.mp4", afile, every=5)
    assert afile.read_text() == "mine\n"


def test_frames_of_another_clip_of_the_same_name_are_refused(
    videos_dir: Path, tmp_path: Path
) -> None:
    clip = videos_dir / "carphone_pristine.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent (../shared/data/videos)")
    other = tmp_path / "elsewhere" / "carphone_pristine.mp4"
    other.parent.mkdir()
    other.write_bytes((videos_dir / "carphone_distorted.mp4").read_bytes())
    views.video_frames(clip, tmp_path / "frames", every=60)
    with pytest.raises(
        UsageError,
        match=r"frames/carphone_pristine holds the frames of another clip named "
        r"carphone_pristine\.mp4 .*give this one another --out",
    ):
        views.video_frames(other, tmp_path / "frames", every=60)
    # The same clip again is a re-run: it finds its frames there.
    assert views.video_frames(clip, tmp_path / "frames", every=60).skipped == 2
    # A mark that cannot be read is no clip's: refused, not a traceback.
    (tmp_path / "frames" / "carphone_pristine" / views.SOURCE_MARKER).write_bytes(b"")
    with pytest.raises(UsageError, match=r"holds the frames of another clip"):
        views.video_frames(clip, tmp_path / "frames", every=60)


def test_frames_of_raw_yuv_say_to_convert_first(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"raw YUV has no colour matrix .*convert it first"):
        views.video_frames(tmp_path / "clip.yuv", tmp_path / "frames", every=5)


def test_a_missing_image_folder_is_named_whatever_option_gave_it(tmp_path: Path) -> None:
    # --images, --train-only or --extra-val: the message names the folder, not one flag.
    with pytest.raises(InputFileError, match=r"image folder .*nope not found: check the path"):
        train.list_images(tmp_path / "nope", recursive=True)


def test_frames_of_a_clip_that_breaks_mid_stream_keep_what_was_written(
    videos_dir: Path, tmp_path: Path
) -> None:
    from tests._jobs import broken_foreman

    if not (videos_dir / "foreman_cif.mp4").is_file():
        pytest.skip("foreman_cif.mp4 is absent (../shared/data/videos)")
    clip = broken_foreman(videos_dir, tmp_path)
    with pytest.raises(InputFileError, match=r"decoding .*broken\.mp4 failed after \d+ kept"):
        views.video_frames(clip, tmp_path / "frames", every=50)
    # The frames before the break are whole PNGs, kept for a re-run to skip.
    for png in (tmp_path / "frames" / "broken").glob("*.png"):
        with Image.open(png) as img:
            img.load()


def test_an_image_over_the_pixel_cap_is_named_not_decoded(
    solid_images: Path, tmp_path: Path
) -> None:
    Image.new("1", (8000, 8000)).save(solid_images / "img00.png")  # 64 Mpx, a few kB
    with pytest.raises(InputFileError, match=r"img00\.png: 8000x8000 pixels, over the 50,000,000"):
        views.make_views(train.list_images(solid_images), tmp_path / "v", recipe="mix")


def test_views_into_an_image_folder_are_refused(solid_images: Path, tmp_path: Path) -> None:
    # There, the next run would read them back as training images.
    paths = train.list_images(solid_images)
    for out in (solid_images, solid_images / "views"):
        with pytest.raises(
            UsageError,
            match=r"--out \S+ (is|is in) the image folder \S+solid: give the outputs "
            r"paths apart from the inputs$",  # views synth has no --force to mention
        ):
            views.make_views(paths, out, recipe="mix", limit=1)
    assert sorted(p.name for p in solid_images.iterdir()) == [f"img{i:02d}.png" for i in range(12)]


def test_a_rerun_with_another_recipe_or_seed_is_refused(solid_images: Path, tmp_path: Path) -> None:
    paths = train.list_images(solid_images)
    out = tmp_path / "v"
    views.make_views(paths, out, recipe="mix", limit=1)
    listing = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths)
    images = hashlib.sha256(listing.encode()).hexdigest()
    marker = f'{{"recipe": "mix", "seed": 6, "images": "{images}"}}\n'
    assert (out / views.RECIPE_MARKER).read_text() == marker
    before = _digests(out)
    for recipe, seed, drawn in (
        ("mix", 99, "'mix', seed 99"),
        ("clutter", None, "'clutter', seed 7"),
    ):
        with pytest.raises(
            UsageError,
            match=rf"holds views of recipe 'mix', seed 6, not recipe {drawn}: give another --out",
        ):
            views.make_views(paths, out, recipe=recipe, seed=seed, limit=1)
    assert _digests(out) == before
    # The default seed given by number is the same draw: it finishes the run.
    assert views.make_views(paths, out, recipe="mix", seed=6, limit=2).written == 4
    # Another split (an image fewer): its draws differ, and validation images could be in it.
    with pytest.raises(UsageError, match=r"holds views drawn from another list of training"):
        views.make_views(paths[1:], out, recipe="mix", limit=1)
    (out / views.RECIPE_MARKER).write_bytes(b"\xff" * 10)
    with pytest.raises(UsageError, match=r"holds views with an unreadable views\.json: give"):
        views.make_views(paths, out, recipe="mix", limit=1)
    # Before any view is written (a run stopped at its first image) nothing can mix.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / views.RECIPE_MARKER).write_bytes(b"\xff" * 10)
    assert views.make_views(paths[1:], fresh, recipe="mix", limit=1).written == 4


def test_frames_of_a_clip_with_no_whole_frame_are_an_error(tmp_path: Path) -> None:
    from tests._video import write_y4m

    clip = tmp_path / "short.y4m"
    write_y4m(clip, "420jpeg", 64, 48, 1)
    clip.write_bytes(clip.read_bytes()[:-100])  # the one frame cut short
    with pytest.raises(InputFileError, match=r"short\.y4m: no frame could be decoded"):
        views.video_frames(clip, tmp_path / "frames", every=1)
    assert not (tmp_path / "frames").exists()  # made for it, gone with it
    # A folder that was there is kept, as are its other clips' frames.
    (tmp_path / "frames" / "other").mkdir(parents=True)
    with pytest.raises(InputFileError, match=r"short\.y4m: no frame could be decoded"):
        views.video_frames(clip, tmp_path / "frames", every=1)
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["other"]


def test_frames_of_a_clip_over_the_frame_size_limit_say_so(tmp_path: Path) -> None:
    clip = tmp_path / "huge.y4m"
    clip.write_bytes(b"YUV4MPEG2 W100000 H100000 F25:1 C420jpeg\nFRAME\n" + bytes(1000))
    with pytest.raises(VideoError, match=r"100000x100000 is over the 134,217,728-pixel limit"):
        views.video_frames(clip, tmp_path / "frames", every=1)
    assert not (tmp_path / "frames").exists()


def test_frames_of_a_stream_are_refused_up_front(tmp_path: Path) -> None:
    fifo = tmp_path / "live.y4m"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"reads a clip twice .*live\.y4m is a stream, read once"):
        views.video_frames(fifo, tmp_path / "frames", every=1)
    with pytest.raises(UsageError, match=r"give the clip's path, not standard input \(-\)"):
        views.video_frames(Path("-"), tmp_path / "frames", every=1)
    assert not (tmp_path / "frames").exists()


def test_frames_of_a_clip_whose_first_frame_breaks_leave_nothing(tmp_path: Path) -> None:
    from tests._video import write_y4m

    clip = tmp_path / "broken.y4m"
    write_y4m(clip, "420jpeg", 64, 48, 2)
    data = clip.read_bytes()
    at = data.index(b"FRAME")
    clip.write_bytes(data[:at] + b"FRAMX" + data[at + 5 :])  # the first frame's tag
    with pytest.raises(InputFileError, match=r"failed after 0 kept frames .*: none was kept"):
        views.video_frames(clip, tmp_path / "frames", every=1)
    assert not (tmp_path / "frames").exists()


def test_frames_of_a_file_with_no_video_stream_are_an_error(tmp_path: Path) -> None:
    from tests._video import write_audio_only

    audio = write_audio_only(tmp_path / "tone.wav")
    with pytest.raises(VideoError, match=r"tone\.wav.* has no video stream"):
        views.video_frames(audio, tmp_path / "frames", every=1)
    assert not (tmp_path / "frames").exists()
