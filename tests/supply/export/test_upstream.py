"""The upstream checkout route: the same numbers as our own net; NOTICE, licence, model file."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")


from tests.supply.export.conftest import (  # noqa: E402
    DEFAULT_IMAGES,
    FIXTURE_LICENSE,
    _ort_run,
    _probe_input,
)
from vmafx_saliency._util import sha256_file  # noqa: E402
from vmafx_saliency.errors import MissingDependencyError, UpstreamCheckoutError  # noqa: E402
from vmafx_saliency.nets import u2netp as nets_u2netp  # noqa: E402
from vmafx_saliency.supply import export  # noqa: E402


def _write_upstream(
    root: Path, *, model_source: str | None = None, licence: str | None = None
) -> Path:
    """A stand-in U-2-Net checkout: our own U2NETP source under upstream's file names."""
    (root / "model").mkdir(parents=True)
    source = model_source
    if source is None:
        # Upstream's file starts with an unused torchvision import; keep it so the
        # stand-in exercises the same import path.
        source = (
            Path(nets_u2netp.__file__)
            .read_text(encoding="utf-8")
            .replace(
                "from __future__ import annotations\n",
                "from __future__ import annotations\n\nfrom torchvision import models\n",
            )
        )
        assert "torchvision" in source
    (root / "model" / "u2net.py").write_text(source, encoding="utf-8")
    text = licence if licence is not None else FIXTURE_LICENSE.read_text(encoding="utf-8")
    (root / "LICENSE").write_text(text, encoding="utf-8")
    return root


def test_upstream_route_gives_the_same_numbers(
    mirror_onnx: Path, checkpoint_path: Path, tmp_path: Path
) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    saved = root / "saved_models" / "u2netp"
    saved.mkdir(parents=True)
    shutil.copyfile(checkpoint_path, saved / "u2netp.pth")
    out = tmp_path / "out" / "m.onnx"
    result = export.export_mirror(upstream_dir=root, output=out, images_dir=DEFAULT_IMAGES)
    for size in [(320, 320), (333, 517)]:
        x = _probe_input(size)
        diff = np.abs(_ort_run(out, x) - _ort_run(mirror_onnx, x)).max()
        assert float(diff) < 1e-6
    # The stand-in is our own source, so even the bytes agree.
    assert result.sha256 == sha256_file(mirror_onnx)
    doc = json.loads(result.manifest.read_text())
    up = doc["upstream"]
    assert up["checkpoint"] == {
        "path": "saved_models/u2netp/u2netp.pth",
        "sha256": sha256_file(checkpoint_path),
    }
    assert up["licence"]["sha256"] == sha256_file(root / "LICENSE")
    assert up["notice_present"] is False
    assert up["architecture"]["source"] == "upstream checkout"
    assert str(tmp_path) not in result.manifest.read_text()


def test_upstream_notice_is_recorded(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    assert export.audit_upstream_checkout(root).notice_present is False
    (root / "NOTICE").write_text("U-2-Net\n")
    checkout = export.audit_upstream_checkout(root)
    assert checkout.notice_present is True
    assert checkout.license_file == root / "LICENSE"


def test_upstream_licence_must_be_apache(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net", licence="MIT License\n\nPermission is hereby...\n")
    with pytest.raises(UpstreamCheckoutError, match=r"LICENSE is not the Apache License 2\.0"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    (root / "LICENSE").unlink()
    with pytest.raises(UpstreamCheckoutError, match="has no LICENSE"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_upstream_model_file_must_exist(tmp_path: Path) -> None:
    root = _write_upstream(tmp_path / "U-2-Net")
    (root / "model" / "u2net.py").unlink()
    with pytest.raises(UpstreamCheckoutError, match=r"has no model/u2net\.py"):
        export.export_mirror(upstream_dir=root, output=tmp_path / "m.onnx")
    with pytest.raises(UpstreamCheckoutError, match="not a directory"):
        export.export_mirror(upstream_dir=tmp_path / "absent", output=tmp_path / "m.onnx")


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("import torch\nclass Other(torch.nn.Module):\n    pass\n", UpstreamCheckoutError, "no"),
        ("import vmafx_no_such_module\n", MissingDependencyError, "vmafx_no_such_module"),
        ("def broken(:\n", UpstreamCheckoutError, "failed to import"),
    ],
    ids=["no-class", "missing-import", "syntax-error"],
)
def test_upstream_model_file_must_define_u2netp(
    tmp_path: Path, source: str, error: type[Exception], message: str
) -> None:
    root = _write_upstream(tmp_path / "U-2-Net", model_source=source)
    with pytest.raises(error, match=message):
        export.load_upstream_class(export.audit_upstream_checkout(root))
    assert "vmafx_no_such_module" not in sys.modules
