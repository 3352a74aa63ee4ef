"""`make demo`: the main job on the embedded default, step by step.

First the extractor runs on a generated clip with the registry's default model
(the shipped student, no checkpoint needed). Then, when the u2netp checkpoint
is available, the mirror's supply chain runs and the mirror is shown beside the
default on the same clip.

The supply chain of the u2netp mirror: export it from the shared fixture (or
from the checkpoint named by ``VMAFX_U2NETP_CHECKPOINT``), scan it, check its
contract, make a signing key once (in the user's config folder), sign the
model, verify the bundle, register it in the user's overlay registry (never a
tracked file), load it through the loader gate and run one inference.

Every step reuses what an earlier run made when it is still valid, so running
the demo twice does no work twice and never overwrites something different.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vmafx_saliency._util import PROJECT_ROOT, SHARED_DIR
from vmafx_saliency.errors import OutputExistsError, VmafxSaliencyError
from vmafx_saliency.supply.registry.locations import packaged_models
from vmafx_saliency.video.job import JobResult

# Where the checkout would be: main() refuses to run anywhere else (never site-packages).
ROOT = PROJECT_ROOT if PROJECT_ROOT is not None else Path(__file__).resolve().parents[3]
SHARED = SHARED_DIR if SHARED_DIR is not None else ROOT.parent / "shared"
DEFAULT_CHECKPOINT = SHARED / "fixtures" / "u2netp" / "u2netp_bnfold_fp16.pth"
MIRROR = ROOT / "models" / "u2netp_mirror_v1.onnx"
MIRROR_SIDECAR = packaged_models() / "u2netp_mirror_v1.sidecar.json"
MIRROR_LICENCE = packaged_models() / "Apache-2.0-u2netp.txt"
DEMO_DIR = ROOT / ".demo"
RELEASE_DIR = DEMO_DIR / "release" / "u2netp_mirror_v1"
DEMO_IMAGE = SHARED / "data" / "images" / "bike.jpg"


def signing_key_path() -> Path:
    """The demo's key: ``$XDG_CONFIG_HOME/vmafx-saliency/signing.key`` (~/.config)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "vmafx-saliency" / "signing.key"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _checkpoint_available() -> bool:
    named = os.environ.get("VMAFX_U2NETP_CHECKPOINT")
    return Path(named).is_file() if named else DEFAULT_CHECKPOINT.is_file()


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
    from vmafx_saliency.supply.export import export_mirror

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


def _key_pair() -> tuple[Path, Path]:
    from vmafx_saliency.supply.signing import generate_key_pair

    private = signing_key_path()
    public = Path(f"{private}.pub")
    if private.exists() and public.exists():
        print(f"reusing the key pair {private} (+ .pub)")
    else:
        pair = generate_key_pair(private, public_key=public)
        print(f"made an EC P-256 key pair: {pair.private_key} (0600) and {pair.public_key}")
    return private, public


def _signed_bundle(model: Path, private: Path, public: Path) -> Path:
    from vmafx_saliency.supply.signing import Verifier, bundle_path_for, sign_model, verify_model

    bundle = bundle_path_for(model)
    verifier = Verifier.from_public_key(public)
    if bundle.exists():
        try:
            verify_model(model, bundle=bundle, verifier=verifier, sidecar=MIRROR_SIDECAR)
            print(f"reusing {bundle.relative_to(ROOT)} (verifies with {public.name})")
            return bundle
        except VmafxSaliencyError as exc:
            # The bundle belongs to an earlier export or key: the demo owns both, re-sign.
            print(f"re-signing: the existing bundle does not verify ({exc})")
    sign_model(model, private_key=private, sidecar=MIRROR_SIDECAR, bundle=bundle, force=True)
    print(f"signed {model.relative_to(ROOT)} with its sidecar -> {bundle.relative_to(ROOT)}")
    return bundle


def _register(model: Path, bundle: Path, public: Path) -> str:
    from vmafx_saliency._util import sha256_file
    from vmafx_saliency.supply import registry

    manifest = Path(f"{model}.manifest.json")
    model_id = str(json.loads(manifest.read_text())["model_id"])
    reg = registry.Registry.load()
    again = False
    if model_id in reg.ids():
        entry = reg.get(model_id)
        if entry.sha256 != sha256_file(model):
            raise OutputExistsError(
                f"{model_id} is registered in {entry.registry} with another sha256: remove it "
                f"from that file, or run 'vmafx-saliency registry add ... --force'"
            )
        same_bundle = entry.sigstore_bundle is not None and (
            sha256_file(entry.sigstore_bundle) == sha256_file(bundle)
        )
        if entry.sidecar_sha256 is not None and same_bundle:
            print(f"{model_id} is already registered in {entry.registry} with this sha256")
            return model_id
        # Registered by an earlier version, before sidecars were pinned and signed
        # with the model, or with a bundle since re-signed: again, with this bundle.
        print(f"{model_id} is registered without a sidecar pin or with another bundle: again")
        again = True
    entry = registry.add_model(
        onnx=model,
        model_id=model_id,
        sidecar=MIRROR_SIDECAR,
        status="alternative",
        license="Apache-2.0",
        license_file=MIRROR_LICENCE,
        source=registry.source_from_manifest(manifest),
        sigstore_bundle=bundle,
        verification=registry.Verification(
            public_key=public,
            certificate_chain=(),
            identity=None,
            identity_regexp=None,
            oidc_issuer=None,
        ),
        release_asset=True,
        manifest=manifest,
        force=again,
    )
    print(f"registered {entry.id} as {entry.status} (release asset) in {entry.registry}")
    return model_id


def _probe_input() -> tuple[str, np.ndarray]:
    if DEMO_IMAGE.is_file():
        from PIL import Image

        from vmafx_saliency.supply.export import preprocess_upstream

        with Image.open(DEMO_IMAGE) as image:
            return DEMO_IMAGE.name, preprocess_upstream(image.convert("RGB"), (320, 320))
    rng = np.random.default_rng(0)
    return "synthetic noise", rng.normal(size=(1, 3, 320, 320)).astype(np.float32)


def _demo_video(video: Path | None) -> Path:
    from vmafx_saliency.video.democlip import write_demo_clip

    if video is not None:
        return video
    clip = write_demo_clip(DEMO_DIR / "demo_clip.y4m")
    print(f"generated the embedded demo clip {clip.relative_to(ROOT)} (synthetic, ours)")
    return clip


def _extract(video: Path, model_id: str | None, out: Path) -> JobResult:
    """Run the extractor (the registry default when ``model_id`` is None) and print a table."""
    from vmafx_saliency.video.job import ModelChoice, Outputs, VideoInput, run_job
    from vmafx_saliency.video.output import pool_metrics

    job = run_job(
        VideoInput(path=video),
        ModelChoice(model_id=model_id),
        Outputs(output=out, fmt="json", force=True),
        progress=sys.stderr.isatty(),
    )
    records = job.records
    step = max(1, len(records) // 12)
    print(f"{'frame':>6} {'saliency_mean':>14} {'saliency_var':>13}")
    for record in records[::step]:
        m = record.metrics
        print(f"{record.frame_num:>6} {m['saliency_mean']:>14.6f} {m['saliency_var']:>13.6f}")
    print("pooled:")
    for name, stats in pool_metrics(records).items():
        print(
            f"  {name:<14} min {stats.min:.6f}  max {stats.max:.6f}  mean {stats.mean:.6f}  "
            f"harmonic_mean {stats.harmonic_mean:.6f}"
        )
    infer_h, infer_w = job.extraction.infer_size
    print(
        f"{len(records)} frames with {job.run.model_id} at {infer_w}x{infer_h}, "
        f"{job.extraction.fps:.1f} frames/s; vmaf-format JSON in {out.relative_to(ROOT)}"
    )
    return job


def _side_by_side(student: JobResult, mirror: JobResult) -> None:
    a = np.array([r.metrics["saliency_mean"] for r in student.records])
    b = np.array([r.metrics["saliency_mean"] for r in mirror.records])
    name_a, name_b = student.run.model_id, mirror.run.model_id
    print(f"{'frame':>6} {name_a:>22} {name_b:>22}")
    step = max(1, len(a) // 12)
    for index in range(0, len(a), step):
        frame = student.records[index].frame_num
        print(f"{frame:>6} {a[index]:>22.6f} {b[index]:>22.6f}")
    pearson = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    speed = student.extraction.fps / mirror.extraction.fps if mirror.extraction.fps else 0.0
    print(
        f"saliency_mean agreement: Pearson {pearson:.3f}, mean |difference| "
        f"{float(np.abs(a - b).mean()):.4f}; {name_a} ran {speed:.1f}x the frames/s of {name_b}"
    )


def _mirror_chain(*, force: bool) -> tuple[str, str]:
    """Export, scan, contract, key, sign, verify, register, load, release: the supply chain."""
    from vmafx_saliency.supply import contract, loader, release, runs, scan
    from vmafx_saliency.supply.registry import Registry
    from vmafx_saliency.supply.signing import Verifier, verify_model

    _step("2. export the u2netp mirror")
    checkpoint = _checkpoint()
    print(f"checkpoint: {checkpoint}")
    model = _export_mirror(checkpoint, force=force)

    _step("3. scan it against the op allowlist")
    report = scan.scan_file(model)
    print(report.render())
    report.raise_for_violations()

    _step("4. check the deployment contract")
    print(contract.check_contract_file(model).render())

    _step("5. signing key (made once, in your config folder)")
    private, public = _key_pair()

    _step("6. sign the model")
    bundle = _signed_bundle(model, private, public)

    _step("7. verify the bundle")
    sig = verify_model(
        model, bundle=bundle, verifier=Verifier.from_public_key(public), sidecar=MIRROR_SIDECAR
    )
    print(
        f"signature OK ({sig.method}; signer {sig.signer}; sha256 {sig.sha256[:16]}..., "
        f"sidecar {str(sig.sidecar_sha256)[:16]}...)"
    )

    _step("8. register it in the overlay registry (not a tracked file)")
    model_id = _register(model, bundle, public)

    _step("9. load it through the loader gate and run one inference")
    entry = Registry.load().get(model_id)
    loaded = loader.load_entry(entry)
    layers = "path, identity, " + ("signature, " if loaded.signature else "") + "content, contract"
    print(f"{model_id}: loaded from {loaded.path} ({loaded.policy.value}; passed {layers})")
    name, tensor = _probe_input()
    saliency = runs.run_map(
        loaded.session, tensor, what=model_id, advice="the demo's model is broken"
    )
    print(
        f"one inference on {name} at 320x320: saliency_map {list(saliency.shape)}, "
        f"mean {float(saliency.mean()):.4f}, max {float(saliency.max()):.4f}"
    )

    _step("10. stage the release assets and verify the staged folder")
    staged = release.stage(
        # The demo's own folder: each run stages it again.
        model_id,
        out=RELEASE_DIR,
        signer=release.ReleaseSigner(private_key=private),
        force=True,
    )
    print(staged.render())
    verified = release.verify(RELEASE_DIR)
    print(verified.render())
    if not verified.ok:
        raise VmafxSaliencyError(f"{RELEASE_DIR}: the staged release does not verify")
    summary = (
        f"{model.relative_to(ROOT)}: {report.size:,} bytes; scan ALLOWED; contract OK; "
        f"signed and verified; registered as {model_id}; loaded through the gate; release verified"
    )
    return model_id, summary


def run(*, force: bool, video: Path | None = None) -> None:
    _step("1. the main job: per-frame saliency with the registry's default model")
    clip = _demo_video(video)
    student = _extract(clip, None, DEMO_DIR / "saliency.json")

    if not _checkpoint_available():
        _step("the u2netp mirror")
        print(
            "skipped: no u2netp checkpoint (put ../shared beside the project or set "
            "VMAFX_U2NETP_CHECKPOINT) - the default model above needs none"
        )
        _next_steps(mirror=None)
        return
    model_id, summary = _mirror_chain(force=force)

    _step("11. the mirror beside the default on the same clip")
    mirror = _extract(clip, model_id, DEMO_DIR / "saliency_mirror.json")
    _side_by_side(student, mirror)

    _step("summary")
    print(f"default model: {student.run.model_id}, {len(student.records)} frames")
    print(summary)
    _next_steps(mirror=model_id)


def _next_steps(*, mirror: str | None) -> None:
    """What a user runs next, on a clip of their own."""
    cli = ".venv/bin/vmafx-saliency"
    _step("next: your own clip")
    lines = [
        f"{cli} extract clip.mp4 --output clip.json                # vmaf's JSON layout",
        f"{cli} extract clip.mp4 --merge-into vmaf.json --merge-output both.json",
        f"ffmpeg -i clip.mkv -f yuv4mpegpipe - | {cli} extract - --format csv --output -",
        f"{cli} extract in.yuv --width 1920 --height 1080 --pixel-format yuv420p10le "
        "--output in.xml",
    ]
    if mirror is not None:
        lines.append(f"{cli} extract clip.mp4 --model {mirror} --output clip.mirror.json")
    lines.append(
        '.venv/bin/python -c "from vmafx_saliency import extract_features as f; '
        "print(f('clip.mp4').pooled)\"   # the API: README.md"
    )
    lines.append("make demo VIDEO=clip.mp4                          # this demo on your clip")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmafx_saliency.cli.demo", description=__doc__)
    parser.add_argument("--force", action="store_true", help="re-export even if present")
    parser.add_argument("--video", type=Path, help="run the extractor on this video instead")
    args = parser.parse_args(argv)
    if PROJECT_ROOT is None:
        # Installed from a wheel, ROOT is inside site-packages: never write there.
        print(
            f"demo: error: {ROOT} is not a source checkout: the demo ('make demo') writes "
            ".demo/ and models/ in one; from an installed package run 'vmafx-saliency "
            "extract VIDEO' instead",
            file=sys.stderr,
        )
        return 2
    try:
        run(force=args.force, video=args.video)
    except VmafxSaliencyError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
