from __future__ import annotations

from vmafx_saliency.cli.main import entry

entry()
