"""Constants and helpers shared by the signing tests (fixtures are in conftest.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

ISSUER = "https://token.actions.githubusercontent.com"


WORKFLOW = "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
