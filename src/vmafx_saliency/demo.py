"""`make demo`: the main job on the embedded default, step by step.

For now (issue 3): export the u2netp mirror from the shared fixture (or from the
checkpoint named by ``VMAFX_U2NETP_CHECKPOINT``), scan it, check its contract and
print a short summary. The export is reused when it already exists and came from
the same checkpoint, so running the demo twice does no work twice and never
overwrites a different export.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vmafx_saliency.errors import OutputExistsError, VmafxSaliencyError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = ROOT.parent / "shared" / "fixtures" / "u2netp" / "u2netp_bnfold_fp16.pth"
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _checkpoint() -> Path:
    named = os.environ.get("VMAFX_U2NETP_CHECKPOINT")
    path = Path(named) if named else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise VmafxSaliencyError(
            f"no u2netp checkpoint at {path}: put ../shared beside the project or set "
            "VMAFX_U2NETP_CHECKPOINT=/path/to/u2netp.pth"
        )
    return path


def _export_mirror(checkpoint: Path, *, force: bool) -> Path:
    from vmafx_saliency._util import sha256_file
    from vmafx_saliency.export import export_mirror

    manifest_path = Path(f"{MIRROR}.manifest.json")
    if MIRROR.exists() and manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text())
        if manifest["upstream"]["checkpoint"]["sha256"] == sha256_file(checkpoint):
            print(f"reusing {MIRROR.relative_to(ROOT)} (exported from this checkpoint)")
            return MIRROR
        raise OutputExistsError(
            f"{MIRROR} was exported from another checkpoint: run 'make demo FORCE=1' to "
            "replace it, or move it away"
        )
    result = export_mirror(checkpoint=checkpoint, output=MIRROR, force=force)
    print(result.render())
    return MIRROR


def run(*, force: bool) -> None:
    from vmafx_saliency import contract, onnxscan

    _step("1. export the u2netp mirror")
    checkpoint = _checkpoint()
    print(f"checkpoint: {checkpoint}")
    model = _export_mirror(checkpoint, force=force)

    _step("2. scan it against the op allowlist")
    report = onnxscan.scan_file(model)
    print(report.render())
    report.raise_for_violations()

    _step("3. check the deployment contract")
    print(contract.check_contract_file(model).render())

    _step("summary")
    print(
        f"{model.relative_to(ROOT)}: {report.size:,} bytes, {sum(report.ops.values())} nodes "
        f"of {len(report.ops)} op types; scan ALLOWED; contract OK"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmafx_saliency.demo", description=__doc__)
    parser.add_argument("--force", action="store_true", help="re-export even if present")
    args = parser.parse_args(argv)
    try:
        run(force=args.force)
    except VmafxSaliencyError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
