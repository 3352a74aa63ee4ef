"""Extra distillation images: synthetic views of the training split, and video frames.

The student learns whatever the teacher does on the images it is shown, so
the teacher's behaviour is only transferred where the training images reach.
MSRA-B holds single, centred objects on plain backgrounds; the scenes the
extractor meets are cluttered. These views widen that reach without a single
new label: each view is a new image, and ``vmafx-saliency train`` labels it by
running the teacher *on the view itself*, so the label follows the view's own
context (a mosaic of four images is labelled as a mosaic, not as four
pasted-together labels).

Recipes (every view is made from the training split only: validation images
and PASCAL-S never enter one):

- ``mix``: per image, a zoomed crop (20-60 % of the area), a 2-image mosaic, a
  2x2 mosaic and a picture-in-picture composite.
- ``clutter``: per image, two grids of crops (2x2 or 3x3) from different
  images, a small blown-up crop (5-20 % of the area: mostly background, which
  teaches the student not to fire on texture) and a scene of 2-3 images
  pasted onto a crop of another.

Views are PNG files under ``OUT/k<i>/<stem>_<kind>.png`` (i: the view's index
per image; a stem two source folders share gets a short digest of its content),
drawn from one seeded generator in a fixed order, so a recipe, seed and image
list always give the same bytes.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import (
    atomic_write_bytes,
    check_inputs_spared,
    check_out_folder,
    open_image,
    require,
    sha256_file,
)
from vmafx_saliency.errors import InputFileError, UsageError

Recipe = Literal["mix", "clutter"]
RECIPES: dict[str, tuple[str, ...]] = {
    "mix": ("crop", "mosaic2", "mosaic4", "pip"),
    "clutter": ("clutter", "texture", "scene", "clutter"),
}
DEFAULT_SEEDS = {"mix": 6, "clutter": 7}
SOURCE_MARKER = "source.sha256"  # in a clip's frames folder: which clip they are from
MARKER_BYTES = 4096  # what a marker is read to: ours are under 200 bytes
RECIPE_MARKER = "views.json"  # in a views folder: the recipe, seed and image list of its views


def _pil() -> Any:
    return require("PIL.Image", purpose="making training views", extra="views")


@dataclass(frozen=True)
class ViewsResult:
    out_dir: Path
    written: int
    skipped: int  # already there, same name: left as they were


class _Maker:
    """The view kinds, each drawing from the one generator in a fixed order."""

    def __init__(self, *, paths: Sequence[Path], rng: np.random.Generator) -> None:
        self.paths = paths
        self.rng = rng
        self.image = _pil()

    def load(self, path: Path) -> Any:
        # Views depend on the whole image list: once some are written, another list
        # (this image fixed or removed) is refused in the same --out.
        kept = "(a changed image list needs another --out once views are written)"
        try:
            # The header within the pixel cap, or one error naming the file.
            img = open_image(self.image, path)
        except InputFileError as exc:
            raise InputFileError(f"{exc}, then run again {kept}") from exc
        try:
            with img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:  # PIL: truncated pixel data
            raise InputFileError(
                f"cannot decode {path} ({exc}): fix or remove it, then run again {kept}"
            ) from exc

    def crop(self, img: Any, lo: float, hi: float, minimum: int) -> Any:
        rng = self.rng
        w, h = img.size
        area = rng.uniform(lo, hi)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = min(w, max(minimum, round(w * np.sqrt(area * aspect))))
        ch = min(h, max(minimum, round(h * np.sqrt(area / aspect))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        return img.crop((left, top, left + cw, top + ch))

    def others(self, count: int) -> list[Path]:
        picks = self.rng.choice(len(self.paths), count, replace=False)
        return [self.paths[int(j)] for j in picks]

    def paste_grid(self, cells: list[Any], cols: int, rows: int, cell: tuple[int, int]) -> Any:
        out = self.image.new("RGB", (cell[0] * cols, cell[1] * rows))
        for k, im in enumerate(cells):
            resized = im.resize(cell, self.image.BILINEAR)
            out.paste(resized, ((k % cols) * cell[0], (k // cols) * cell[1]))
        return out

    # -- recipe "mix": three other images are drawn first for every kind ------

    def view_crop(self, path: Path) -> Any:
        self.others(3)
        return self.crop(self.load(path), 0.2, 0.6, 32)

    def view_mosaic2(self, path: Path) -> Any:
        other = self.others(3)[0]
        side_by_side = self.rng.random() < 0.5
        cols, rows = (2, 1) if side_by_side else (1, 2)
        return self.paste_grid([self.load(path), self.load(other)], cols, rows, (200, 160))

    def view_mosaic4(self, path: Path) -> Any:
        others = self.others(3)
        cells = [self.load(path)] + [self.load(o) for o in others]
        return self.paste_grid(cells, 2, 2, (200, 160))

    def view_pip(self, path: Path) -> Any:
        rng = self.rng
        bg = self.load(self.others(3)[0])
        fg = self.load(path) if rng.random() < 0.5 else self.crop(self.load(path), 0.2, 0.6, 32)
        w, h = bg.size
        s = rng.uniform(0.3, 0.55)
        fw, fh = max(16, round(w * s)), max(16, round(h * s))
        fg = fg.resize((fw, fh), self.image.BILINEAR)
        bg.paste(fg, (int(rng.integers(0, w - fw + 1)), int(rng.integers(0, h - fh + 1))))
        return bg

    # -- recipe "clutter" -------------------------------------------------------

    def view_clutter(self, path: Path) -> Any:
        n = 2 if self.rng.random() < 0.5 else 3
        picks = [path, *self.others(n * n - 1)]
        cells = [self.crop(self.load(q), 0.25, 0.9, 24) for q in picks]
        return self.paste_grid(cells, n, n, (400 // n, 320 // n))

    def view_texture(self, path: Path) -> Any:
        return self.crop(self.load(path), 0.05, 0.2, 24)

    def view_scene(self, path: Path) -> Any:
        rng = self.rng
        picks = self.others(3)
        count = 2 if rng.random() < 0.5 else 3
        bg = self.crop(self.load(picks[0]), 0.3, 0.8, 24).resize((400, 300), self.image.BILINEAR)
        for fg in [self.load(path)] + [self.load(q) for q in picks[1:count]]:
            s = rng.uniform(0.2, 0.45)
            fw, fh = round(400 * s), round(300 * s * rng.uniform(0.8, 1.25))
            x, y = int(rng.integers(0, 400 - fw + 1)), int(rng.integers(0, 300 - fh + 1))
            bg.paste(fg.resize((fw, fh), self.image.BILINEAR), (x, y))
        return bg

    def kind(self, name: str) -> Callable[[Path], Any]:
        maker: Callable[[Path], Any] = getattr(self, f"view_{name}")
        return maker


def make_views(
    paths: Sequence[Path],
    out_dir: Path,
    *,
    recipe: str,
    seed: int | None = None,
    limit: int | None = None,
    progress: TextIO | None = None,
) -> ViewsResult:
    """Write ``len(RECIPES[recipe])`` views per image of ``paths`` (the training split).

    Existing files are kept (a re-run after an interruption redraws the same
    views and writes only the missing ones).
    """
    if recipe not in RECIPES:
        raise UsageError(f"recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    _pil()  # named before the folder and its views.json are made
    if len(paths) < 9:
        raise InputFileError(f"{len(paths)} image(s): a view recipe needs at least 9 to mix")
    # Views go apart from the images: mixed into a dataset they would be read back as
    # images by any command that walks it (--train-only does).
    folders = sorted({path.parent for path in paths})
    check_inputs_spared(
        [("the image folder", f) for f in folders], files=[("--out", out_dir)], has_force=False
    )
    check_out_folder(out_dir, purpose="the images")
    kinds = RECIPES[recipe]
    seed = DEFAULT_SEEDS[recipe] if seed is None else seed
    _claim_views(out_dir, recipe=recipe, seed=seed, paths=paths)
    rng = np.random.default_rng(seed)
    maker = _Maker(paths=paths, rng=rng)
    names = _view_stems(paths)
    written = skipped = 0
    for i, path in enumerate(paths[:limit]):
        for k, name in enumerate(kinds):
            view = maker.kind(name)(path)
            target = out_dir / f"k{k}" / f"{names[path]}_{name}.png"
            if target.is_file():
                skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, _png(view))
            written += 1
        if progress is not None and (i + 1) % 100 == 0:
            print(f"views: {i + 1}/{len(paths[:limit])} images", file=progress, flush=True)
    return ViewsResult(out_dir, written, skipped)


def _claim_views(out_dir: Path, *, recipe: str, seed: int, paths: Sequence[Path]) -> None:
    """Mark ``out_dir`` as the views of this recipe, seed and image list, or refuse another's.

    A re-run keeps the views already there: with another recipe, seed or image
    list (another split: validation images among them) it would mix two draws
    under one folder and report the old ones as done.
    """
    from vmafx_saliency.science.train.data import Sample, image_list_sha256

    marker = out_dir / RECIPE_MARKER
    # The digest train records of an image list, so the two can be compared.
    images = image_list_sha256(Sample(path, sha256_file(path)) for path in paths)
    ours = {"recipe": recipe, "seed": seed, "images": images}
    if marker.exists():
        try:
            theirs = json_loads(_read_marker(marker))
        except ValueError:
            theirs = None  # unreadable or not JSON: not this draw's mark
        if theirs == ours:
            return
        if any(out_dir.glob("k*/*.png")):
            raise UsageError(f"--out {out_dir} holds {_other_draw(theirs, ours)}")
        # No view yet (the last run stopped at its first image): nothing to mix with.
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, (json.dumps(ours) + "\n").encode())


def _other_draw(theirs: object, ours: dict[str, object]) -> str:
    """What a views folder holds instead of this run's draw, and what to do."""
    if not isinstance(theirs, dict):
        return f"views with an unreadable {RECIPE_MARKER}: give another --out"
    if (theirs.get("recipe"), theirs.get("seed")) != (ours["recipe"], ours["seed"]):
        return (
            f"views of recipe {theirs.get('recipe')!r}, seed {theirs.get('seed')!r}, not "
            f"recipe {ours['recipe']!r}, seed {ours['seed']}: give another --out, or the "
            "same recipe and seed to finish that run"
        )
    return (
        "views drawn from another list of training images (other --images, --seed or "
        "--val-fraction, or an image added or removed): give another --out, or the same "
        "images and split to finish that run"
    )


def _read_marker(marker: Path) -> bytes:
    """A marker's first bytes; nothing for one that is not a readable regular file
    (a pipe would block the run, a huge file fill its memory)."""
    try:
        if not marker.is_file():
            return b""
        with marker.open("rb") as f:
            return f.read(MARKER_BYTES)
    except OSError:
        return b""


def _view_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """Each source's name in its views: its stem, made unique where two folders share one.

    A stem alone would let a second ``1.jpg`` find the first one's views "already
    there"; unique stems keep their plain names (and earlier runs' views).
    """
    counts = Counter(path.stem for path in paths)
    # By content, not location: moved data keeps its views' names.
    return {
        path: path.stem if counts[path.stem] == 1 else f"{path.stem}_{sha256_file(path)[:8]}"
        for path in paths
    }


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def video_frames(clip: Path, out_dir: Path, *, every: int) -> ViewsResult:
    """Every ``every``-th frame of ``clip`` as an RGB PNG, ``OUT/<stem>/<stem>_<i>.png``.

    The RGB comes from PyAV's ``to_image`` (swscale, the file's own matrix);
    the teacher sees RGB, the student the luma of it, as with any image.
    """
    if every < 1:
        raise UsageError(f"--every {every}: give a positive frame step")
    _pil()  # PyAV's to_image makes Pillow images: the views extra, named before any work
    from vmafx_saliency.video.frames import RAW_SUFFIXES

    if clip.suffix.lower() in RAW_SUFFIXES:
        raise UsageError(
            f"{clip}: raw YUV has no colour matrix or size to make RGB frames from; convert it "
            "first, e.g. ffmpeg -f rawvideo -pix_fmt yuv420p -s WxH -i CLIP.yuv CLIP.y4m"
        )
    av = require("av", purpose="reading video frames", extra=None)
    check_out_folder(out_dir, purpose="the images")
    from vmafx_saliency.video.frames import open_video
    from vmafx_saliency.video.frames.stdin import check_rereadable, is_stdin

    if is_stdin(clip):
        raise UsageError(
            "views frames names a clip's frames after its file: give the clip's path, not "
            "standard input (-)"
        )
    check_rereadable(clip, reads="views frames reads a clip twice (its digest, its frames)")
    # The extractor's checks of the file first (a video stream, a frame size within the
    # limit), in its words; then PyAV decodes it to RGB.
    with open_video(clip):
        pass
    try:
        container = av.open(str(clip))
    except (OSError, av.error.FFmpegError) as exc:
        raise InputFileError(f"cannot open video {clip}: {exc}") from exc
    with container:
        # Folders this run makes go again if it keeps no frame: nothing is left for nothing.
        made = [f for f in (out_dir, out_dir / clip.stem) if not f.exists()]
        _claim(out_dir / clip.stem, clip)
        try:
            written, skipped = _write_frames(container, clip, out_dir / clip.stem, every=every)
        except BaseException:
            _remove_if_bare(made)
            raise
    if written + skipped == 0:
        _remove_if_bare(made)
        raise InputFileError(f"{clip}: no frame could be decoded: check the file")
    return ViewsResult(out_dir / clip.stem, written, skipped)


def _write_frames(container: Any, clip: Path, folder: Path, *, every: int) -> tuple[int, int]:
    """Every ``every``-th decoded frame as a PNG in ``folder``: (written, already there)."""
    import av

    written = skipped = 0
    try:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every:
                continue
            target = folder / f"{clip.stem}_{index:04d}.png"
            if target.is_file():
                skipped += 1
                continue
            atomic_write_bytes(target, _png(frame.to_image()))
            written += 1
    except av.error.FFmpegError as exc:
        kept = "the frames written so far are kept" if written + skipped else "none was kept"
        raise InputFileError(
            f"decoding {clip} failed after {written + skipped} kept frames ({exc}): {kept}; "
            "check the file"
        ) from exc
    return written, skipped


def _remove_if_bare(made: Sequence[Path]) -> None:
    """Remove the folders this run made, innermost first, where they hold nothing but the
    clip's mark (a frame written means the folder stays, for a re-run to skip it)."""
    for folder in reversed(made):
        try:
            if {entry.name for entry in folder.iterdir()} <= {SOURCE_MARKER}:
                (folder / SOURCE_MARKER).unlink(missing_ok=True)
                folder.rmdir()
        except OSError:  # gone, or filled meanwhile: what is there now is not ours to remove
            continue


def _claim(folder: Path, clip: Path) -> None:
    """Mark ``folder`` as the frames of ``clip`` (by content), or refuse another clip's.

    Frames are named after the clip's stem: a second ``carphone.mp4`` from
    elsewhere would otherwise find the first one's frames "already there".
    """
    digest = sha256_file(clip)
    marker = folder / SOURCE_MARKER
    if marker.exists():
        try:
            theirs = _read_marker(marker).decode("ascii").split()[0]
        except (UnicodeDecodeError, IndexError):
            theirs = "?"  # unreadable or empty: not this clip's mark
        if theirs != digest:
            raise UsageError(
                f"{folder} holds the frames of another clip named {clip.name} (sha256 "
                f"{theirs[:16]}…): give this one another --out"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, f"{digest}  {clip.name}\n".encode())


__all__ = ["RECIPES", "ViewsResult", "make_views", "video_frames"]
