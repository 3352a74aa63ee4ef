"""What moving the luma resize to swscale does to the features, per clip and model.

The extractor now scales raw luma with swscale (``video.scale.scale_luma``);
before issue 38 it used the numpy antialiased bilinear
(``video.resize.resize_plane``), which ``extract.preprocess`` still uses for
float planes. So the same frame through ``preprocess`` as raw samples and as
float32 samples gives the model input of each resize. This runs both over the
first ``--frames`` frames of each shared clip and prints, per model, the
Pearson correlation of the per-frame ``saliency_mean`` series of the two, the
mean and the largest |difference| of ``saliency_mean`` and of
``saliency_var``, and the largest |difference| of ``saliency_mean`` relative
to that clip's spread of it (max - min over the frames).

    .venv/bin/python benchmarks/luma_scale_effect.py
    .venv/bin/python benchmarks/luma_scale_effect.py --models saliency_student_v2_int8 --frames 60
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from vmafx_saliency.video.extract import preprocess, resolve_size
from vmafx_saliency.video.frames import select_frames
from vmafx_saliency.video.job import ModelChoice, VideoInput, load_model

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
# (file, raw geometry: width, height) for the clips the quantisation budget uses and the raw ones.
CLIPS = (
    ("foreman_cif.mp4", None),
    ("akiyo_cif.mp4", None),
    ("carphone_pristine.mp4", None),
    ("bigbuckbunny_720p.mp4", None),
    ("CiscoVT2people_320x192_12fps.yuv", (320, 192)),
)


def _features(session: object, tensor: np.ndarray) -> tuple[float, float]:
    (out,) = session.run(["saliency_map"], {"input": tensor})  # type: ignore[attr-defined]
    plane = np.asarray(out, dtype=np.float64)[0, 0]
    return float(plane.mean()), float(plane.var())


def _clip(name: str, geometry: tuple[int, int] | None) -> VideoInput:
    if geometry is None:
        return VideoInput(path=VIDEOS / name)
    return VideoInput(path=VIDEOS / name, width=geometry[0], height=geometry[1])


def compare(model_id: str, video: VideoInput, frames: int) -> dict[str, float]:
    loaded, pre = load_model(ModelChoice(model_id=model_id), threads=2)
    ours: list[tuple[float, float]] = []
    before: list[tuple[float, float]] = []
    with video.open() as source:
        info = source.info
        size = resolve_size(pre, None, (info.height, info.width))
        for frame in select_frames(source, end=frames):
            for luma, into in ((frame.luma, ours), (frame.luma.astype(np.float32), before)):
                tensor = preprocess(
                    luma,
                    bit_depth=frame.bit_depth,
                    color_range=info.color_range,
                    pre=pre,
                    size=size,
                )
                into.append(_features(loaded.session, tensor))
    now, then = np.asarray(ours), np.asarray(before)
    spread = float(then[:, 0].max() - then[:, 0].min())
    diff = np.abs(now - then)
    return {
        "frames": float(len(now)),
        "pearson": float(np.corrcoef(now[:, 0], then[:, 0])[0, 1]),
        "mean_abs_mean": float(diff[:, 0].mean()),
        "max_abs_mean": float(diff[:, 0].max()),
        "max_rel_spread": float(diff[:, 0].max() / spread) if spread > 0 else 0.0,
        "mean_abs_var": float(diff[:, 1].mean()),
        "max_abs_var": float(diff[:, 1].max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", default="saliency_student_v2_int8,saliency_student_v2", help="registry ids"
    )
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    present = [(n, g) for n, g in CLIPS if (VIDEOS / n).is_file()]
    if not present:
        print(f"skipped: no clips under {VIDEOS}")
        return 0
    for model_id in args.models.split(","):
        print(f"{model_id}: swscale against the numpy resize, first {args.frames} frames")
        print("  clip                              Pearson   |d mean| mean    max  max/spread"
              "   |d var| mean      max")  # fmt: skip
        for name, geometry in present:
            f = compare(model_id, _clip(name, geometry), args.frames)
            print(
                f"  {name:<32} {f['pearson']:.6f}  {f['mean_abs_mean']:.2e} {f['max_abs_mean']:.2e}"
                f"  {f['max_rel_spread']:10.4f}   {f['mean_abs_var']:.2e} {f['max_abs_var']:.2e}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
