"""The merged view: the committed registry plus the overlay, read as one.

A missing overlay is an empty one; an id defined in both files is an error. The
effective default of an extractor is the overlay's default if the overlay has
one, else the committed one. Unknown ids and missing defaults are refused with
the ids that do exist and the command that would fix it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path

from vmafx_saliency.errors import NoDefaultModelError, RegistryError, UnknownModelError
from vmafx_saliency.supply.registry.documents import _PROMOTE_HINT, _load_document
from vmafx_saliency.supply.registry.entries import ModelEntry
from vmafx_saliency.supply.registry.locations import (
    ENV_COMMITTED,
    ENV_OVERLAY,
    _same_file,
    committed_registry_path,
    overlay_registry_path,
)


class Registry:
    """The committed registry plus the overlay, as one read-only view."""

    def __init__(
        self,
        *,
        committed: Path,
        overlay: Path,
        committed_entries: Sequence[ModelEntry],
        overlay_entries: Sequence[ModelEntry],
    ) -> None:
        self.committed_path = committed
        self.overlay_path = overlay
        self._committed = tuple(committed_entries)
        self._overlay = tuple(overlay_entries)
        self._by_id = {entry.id: entry for entry in (*self._committed, *self._overlay)}

    @classmethod
    def load(cls, *, committed: Path | None = None, overlay: Path | None = None) -> Registry:
        """Load both files; ``None`` means the default location of each.

        A missing overlay is an empty overlay; a missing committed registry is
        an error (the package's data is missing, or the override names nothing).
        """
        committed_path = committed if committed is not None else committed_registry_path()
        overlay_path = overlay if overlay is not None else overlay_registry_path()
        if not committed_path.exists():
            advice = (
                f"unset {ENV_COMMITTED} or point it at a registry file"
                if os.environ.get(ENV_COMMITTED)
                else "the package's data is missing: reinstall vmafx-saliency"
            )
            raise RegistryError(f"committed registry {committed_path} does not exist: {advice}")
        base = _load_document(committed_path, committed=True)
        overlay_entries: tuple[ModelEntry, ...] = ()
        # Pointing the overlay at the committed file would double every entry.
        if not _same_file(overlay_path, committed_path):
            if os.path.lexists(overlay_path) and not overlay_path.exists():
                raise RegistryError(
                    f"overlay registry {overlay_path} is a broken symlink: fix the link, or "
                    f"remove it to start with an empty overlay (or set {ENV_OVERLAY})"
                )
            if overlay_path.exists():
                overlay_entries = _load_document(overlay_path, committed=False).entries
        committed_ids = {entry.id for entry in base.entries}
        clashes = sorted(e.id for e in overlay_entries if e.id in committed_ids)
        if clashes:
            raise RegistryError(
                f"model id{'s' if len(clashes) > 1 else ''} {', '.join(map(repr, clashes))} "
                f"defined in both the committed registry {committed_path} and the overlay "
                f"{overlay_path}: remove or rename the overlay's entry"
            )
        return cls(
            committed=committed_path,
            overlay=overlay_path,
            committed_entries=base.entries,
            overlay_entries=overlay_entries,
        )

    @classmethod
    def load_committed(cls) -> Registry:
        """The committed registry alone, for a check that an unrelated, broken overlay
        must not stop (an overlay that names the committed file is read as none)."""
        return cls.load(overlay=committed_registry_path())

    def entries(self) -> tuple[ModelEntry, ...]:
        """Committed entries first, then the overlay's, each in file order."""
        return (*self._committed, *self._overlay)

    def ids(self) -> tuple[str, ...]:
        return tuple(entry.id for entry in self.entries())

    def _files(self) -> str:
        return f"the committed registry {self.committed_path} and the overlay {self.overlay_path}"

    def get(self, model_id: str) -> ModelEntry:
        entry = self._by_id.get(model_id)
        if entry is not None:
            return entry
        from vmafx_saliency.supply.export.mirror import MODEL_ID as MIRROR_ID

        known = self.ids()
        if model_id == MIRROR_ID:
            # A release asset, never shipped in the package: say how to get it.
            raise UnknownModelError(
                f"no model {model_id!r} in {self._files()}: the u2netp mirror is a release "
                "asset, not shipped in the package: register it with 'make demo' in a source "
                "checkout, or 'vmafx-saliency export' then 'vmafx-saliency registry add' "
                "(docs/operator.md)"
            )
        if not known:
            raise UnknownModelError(
                f"no model {model_id!r}: {self._files()} list no models: add one with "
                "'vmafx-saliency registry add'"
            )
        close = difflib.get_close_matches(model_id, known, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownModelError(
            f"no model {model_id!r} in {self._files()}{guess}; known ids: {', '.join(known)}: "
            "run 'vmafx-saliency registry list' to see them"
        )

    def default_or_none(self, extractor: str) -> ModelEntry | None:
        """The effective default: the overlay's if it has one, else the committed one."""
        for group in (self._overlay, self._committed):
            for entry in group:
                if entry.extractor == extractor and entry.default:
                    return entry
        return None

    def default_for(self, extractor: str) -> ModelEntry:
        entry = self.default_or_none(extractor)
        if entry is not None:
            return entry
        candidates = [e.id for e in self.entries() if e.extractor == extractor]
        have = (
            f"; models for it: {', '.join(candidates)}"
            if candidates
            else "; no model for it is registered"
        )
        raise NoDefaultModelError(
            f"no default model for extractor {extractor!r} in {self._files()}{have}: "
            "pass --model ID, or add a model with 'vmafx-saliency registry add' and make it "
            f"the default with {_PROMOTE_HINT}"
        )
