"""Per-frame agreement of students with the mirror on the shared videos.

Runs the extractor (``job.run_job``, the deployment path) over every
frame of each clip with the mirror and with each ``--model``, and prints, per
clip and model, the Pearson correlation and mean absolute difference of the
per-frame ``saliency_mean`` against the mirror's: the feature a VMAF-style
model consumes, so the figure that matters on video beside PASCAL-S's maps.

    .venv/bin/python benchmarks/video_agreement.py \\
        --model src/vmafx_saliency/models/saliency_student_v2.onnx

Frames of akiyo, Big Buck Bunny and carphone are in the student's training
data (``views frames``); foreman is held out.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, run_job

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("foreman_cif.mp4", "akiyo_cif.mp4", "carphone_pristine.mp4", "bigbuckbunny_720p.mp4")
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"


def _means(clip: Path, model: Path, scratch: Path) -> np.ndarray:
    job = run_job(
        VideoInput(path=clip),
        ModelChoice(model_path=model),
        Outputs(output=scratch / "out.json", fmt="json", force=True),
    )
    return np.array([r.metrics["saliency_mean"] for r in job.records])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    args = parser.parse_args()
    if not args.mirror.is_file():
        print(f"skipped: {args.mirror} not found (run `make demo` to export it)")
        return 0
    clips = [VIDEOS / name for name in CLIPS if (VIDEOS / name).is_file()]
    if not clips:
        print(f"skipped: no clips in {VIDEOS}")
        return 0
    print(f"{'clip':<24} {'model':<48} {'frames':>6} {'Pearson':>8} {'mean |diff|':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for clip in clips:
            reference = _means(clip, args.mirror, scratch)
            for model in args.model:
                means = _means(clip, model, scratch)
                pearson = float(np.corrcoef(means, reference)[0, 1])
                diff = float(np.abs(means - reference).mean())
                print(
                    f"{clip.name:<24} {model!s:<48} {len(means):>6} {pearson:>8.3f} {diff:>11.4f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
