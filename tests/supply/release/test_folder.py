"""A staged folder's release.json and SHA256SUMS: names outside the folder and malformed sums."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests.supply.release.conftest import tiny_signer
from vmafx_saliency.errors import ReleaseError
from vmafx_saliency.supply import release


def test_release_json_cannot_name_files_outside(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    doc = json.loads((tiny / release.RELEASE_JSON).read_text())
    doc["license_file"] = "../../secret.txt"
    (tiny / release.RELEASE_JSON).write_text(json.dumps(doc))
    with pytest.raises(
        ReleaseError, match=r"release\.json is malformed: license_file '\.\./\.\./secret\.txt' "
    ):
        release.verify(tiny)


def test_malformed_sums_are_refused(tmp_path: Path, tiny: Path) -> None:
    release.stage("tiny", out=tiny, signer=tiny_signer(tmp_path))
    sums = tiny / release.SUMS
    original = sums.read_text()
    last = len(original.splitlines()) + 1
    for text, message in [
        (original + "0" * 64 + "  ..\n", rf"SHA256SUMS:{last}: not a sha256sum line"),
        (
            original + original.splitlines()[0] + "\n",
            rf"SHA256SUMS:{last}: lists 'LICENSE\.txt' twice",
        ),
    ]:
        sums.write_text(text)
        with pytest.raises(ReleaseError, match=message):
            release.verify(tiny)
