"""The package as a new user gets it: a wheel built from the checkout, installed alone.

One module-scoped fixture builds the sdist and, from it, the wheel (``python -m
build``, the standard tooling), and installs the wheel without extras into a
fresh virtual environment. The checks then run outside the checkout, with a
fresh HOME and no variable of ours: the default model must come from the
package itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_api import FOREMAN, readme_example
from vmafx_saliency import extract_features, schemas

pytest.importorskip("build", reason="the packaging test builds with 'build' (the dev extra)")

SHIPPED = (
    "vmafx_saliency/models/registry.json",
    "vmafx_saliency/models/saliency_student_v2.onnx",
    "vmafx_saliency/models/saliency_student_v2.sidecar.json",
    "vmafx_saliency/models/saliency_student_v2.LICENSE.txt",
    "vmafx_saliency/models/saliency_student_v2.onnx.manifest.json",
    "vmafx_saliency/models/u2netp_mirror_v1.sidecar.json",
    "vmafx_saliency/models/Apache-2.0-u2netp.txt",
    "vmafx_saliency/schemas/features.schema.json",
    "vmafx_saliency/supply/allowlist.txt",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    bin: Path  # the fresh environment's bin/
    home: Path  # a fresh HOME
    outside: Path  # a folder outside the checkout

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        # Only what a user's shell has: none of our variables, no PYTHONPATH.
        env = {"PATH": f"{self.bin}:{os.environ.get('PATH', '')}", "HOME": str(self.home)}
        return subprocess.run(
            argv, cwd=self.outside, env=env, capture_output=True, text=True, timeout=600
        )


def _run(*argv: str | Path, cwd: Path = ROOT) -> None:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    dist = base / "dist"
    # An sdist, then the wheel built from that sdist: both are exercised.
    _run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("vmafx_saliency-*.whl")
    (sdist,) = dist.glob("vmafx_saliency-*.tar.gz")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    home, outside = base / "home", base / "elsewhere"
    home.mkdir()
    outside.mkdir()
    return Installed(wheel, sdist, venv / "bin", home, outside)


def test_the_wheel_and_the_sdist_carry_the_default_model(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    assert set(SHIPPED) <= names
    assert not [n for n in names if "u2netp_mirror_v1.onnx" in n]  # a release asset only
    with tarfile.open(installed.sdist) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {f"src/{name}" for name in SHIPPED} <= members
    # What the README points to, and what runs the tests, come with the sources.
    assert {"docs/output.md", "tests/conftest.py", "Makefile"} <= members


def test_extract_runs_on_the_default_model_outside_the_checkout(
    installed: Installed, videos_dir: Path
) -> None:
    clip = videos_dir / FOREMAN
    done = installed.run("vmafx-saliency", "extract", str(clip), "--frames", "0:24", "-o", "x.json")
    assert done.returncode == 0, done.stderr
    doc = json.loads((installed.outside / "x.json").read_text())
    assert schemas.problems("features", doc) == []
    assert doc["model"]["id"] == "saliency_student_v2_int8"
    here = extract_features(clip, frames=(0, 24))
    assert [f["frameNum"] for f in doc["frames"]] == list(range(24))
    for theirs, ours in zip(doc["frames"], here.frames, strict=True):
        assert theirs["metrics"]["saliency_mean"] == pytest.approx(round(ours.saliency_mean, 6))
        assert theirs["metrics"]["saliency_var"] == pytest.approx(round(ours.saliency_var, 6))


def test_every_committed_registry_entry_loads_from_the_installed_package(
    installed: Installed,
) -> None:
    # A file a registry entry names but package-data leaves out is found only here.
    script = (
        "from vmafx_saliency.supply.registry import Registry\n"
        "from vmafx_saliency.supply import loader\n"
        "reg = Registry.load()\n"
        "for e in reg.entries():\n"
        "    if e.release_asset:\n"
        "        continue\n"
        "    print(e.id, loader.load_entry(e).sha256 == e.sha256)\n"
    )
    done = installed.run(str(installed.bin / "python"), "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "saliency_student_v2", "True", "saliency_student_v2_int8", "True"
    ]  # fmt: skip


def test_the_readme_example_runs_there_with_the_same_values(
    installed: Installed, videos_dir: Path
) -> None:
    clip = videos_dir / FOREMAN
    script = readme_example().replace(f'"{FOREMAN}"', repr(str(clip)))
    there = installed.run(str(installed.bin / "python"), "-c", script)
    assert there.returncode == 0, there.stderr
    here = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert there.stdout == here.stdout
    assert len(there.stdout.splitlines()) == 14  # ten frames, the pooled line, three maps


def test_torch_is_not_installed_and_no_extra_came_along(
    installed: Installed, pascal_s_dir: Path
) -> None:
    probe = (
        "import importlib.util as u; "
        "print(sorted(m for m in ('torch', 'onnx', 'PIL', 'model_signing', 'matplotlib') "
        "if u.find_spec(m)))"
    )
    done = installed.run(str(installed.bin / "python"), "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    hint = installed.run(
        "vmafx-saliency", "eval", "--dataset", str(pascal_s_dir), "--models", "x", "--report", "r"
    )
    assert hint.returncode == 2
    assert "pip install 'vmafx-saliency[eval]'" in hint.stderr


def test_installed_no_default_lies_inside_site_packages(installed: Installed) -> None:
    # The checkout's ../shared and models/ defaults do not exist here: the commands
    # say what to pass, and no help text shows a path inside the environment.
    venv = str(installed.bin.parent)
    for argv in (("quantize", "--help"), ("train", "--help"), ("views", "synth", "--help")):
        done = installed.run("vmafx-saliency", *argv)
        assert done.returncode == 0, done.stderr
        assert venv not in done.stdout, argv
    done = installed.run("vmafx-saliency", "quantize", "--help")
    assert "(default: none outside a checkout)" in " ".join(done.stdout.split())  # unwrapped
    done = installed.run("vmafx-saliency", "views", "synth", "--recipe", "mix", "--out", "v")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "vmafx-saliency views synth: error: vmafx-saliency runs installed here, with no source "
        "checkout and ../shared beside it, so there are no default training images: give "
        "--images DIR (or --gt-root DIR)"
    ]
    assert not (installed.outside / "v").exists()
