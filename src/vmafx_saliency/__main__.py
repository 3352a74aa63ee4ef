from __future__ import annotations

from vmafx_saliency.cli import entry

entry()
