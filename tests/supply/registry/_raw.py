"""The raw entries of a registry file, as written, for tests that check what was written."""

from __future__ import annotations

import json
from pathlib import Path

from tests._trust import Json


def entries_of(path: Path) -> list[Json]:
    models: list[Json] = json.loads(path.read_text())["models"]
    return models
