"""Re-measure a committed INT8 variant against its float parent, as ``quantize`` does.

``vmafx-saliency quantize`` measures the budget once, when it writes the
model. This measures it again for two registry entries with the code as it
is now (for example after a change to the pre-processing): max F and
S-measure on the labelled set (deployment protocol) and per-frame
saliency_mean Pearson on the clips, with the same code
(``science.quantize.measure``) and the default budget.

    .venv/bin/python benchmarks/quantized_budget.py
    .venv/bin/python benchmarks/quantized_budget.py --limit 100 --frames 60
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vmafx_saliency.science.quantize import BudgetCheck, figures_table, measure
from vmafx_saliency.video.job import ModelChoice, load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("foreman_cif.mp4", "akiyo_cif.mp4", "carphone_pristine.mp4", "bigbuckbunny_720p.mp4")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", default="saliency_student_v2")
    parser.add_argument("--candidate", default="saliency_student_v2_int8")
    parser.add_argument("--limit", type=int, help="labelled pairs (default: all)")
    parser.add_argument("--frames", type=int, default=120, help="frames of each clip")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    dataset = DATA / "pascal-s"
    clips = tuple(DATA / "videos" / c for c in CLIPS if (DATA / "videos" / c).is_file())
    if not dataset.is_dir() or not clips:
        print(f"skipped: {dataset} or the clips under {DATA / 'videos'} are absent")
        return 0
    logging.disable(logging.WARNING)
    parent, pre = load_model(ModelChoice(model_id=args.parent), threads=args.threads)
    candidate, _ = load_model(ModelChoice(model_id=args.candidate), threads=args.threads)
    check = BudgetCheck(dataset=dataset, clips=clips, limit=args.limit, video_frames=args.frames)
    report = measure(parent.session, candidate.session, pre, check)
    print(f"{args.candidate} against {args.parent}:")
    for line in figures_table(report):
        print("  " + line)
    problems = report.problems()
    print("within the budget" if not problems else "beyond the budget: " + "; ".join(problems))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
