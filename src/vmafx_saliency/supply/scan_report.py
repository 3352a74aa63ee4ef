"""The scanner's report: each violation with its kind and byte offset, rendered or as JSON.

A :class:`ScanReport` is what :func:`vmafx_saliency.supply.scan.scan_bytes`
returns: the op counts and the reasons to refuse the file, in the order found.
Its text form escapes nothing itself (names are made printable by the scanner);
:meth:`ScanReport.raise_for_violations` turns the first violation into a
:class:`~vmafx_saliency.errors.ScanError` of its kind. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmafx_saliency.errors import ScanError


@dataclass(frozen=True)
class Violation:
    """One reason to refuse a file; ``offset`` is a byte offset, ``None`` for the whole file."""

    kind: str
    detail: str
    offset: int | None


@dataclass(frozen=True)
class ScanReport:
    path: str | None
    size: int
    ops: dict[str, int]
    violations: tuple[Violation, ...]
    # Policy violations beyond the scanner's MAX_VIOLATIONS, counted but not kept.
    omitted_violations: int = 0

    @property
    def allowed(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "size": self.size,
            "ops": dict(self.ops),
            "allowed": self.allowed,
            "violations": [
                {"kind": v.kind, "detail": v.detail, "offset": v.offset} for v in self.violations
            ],
            "omitted_violations": self.omitted_violations,
        }

    def render(self) -> str:
        name = self.path if self.path is not None else "<bytes>"
        lines = [f"{name} ({self.size:,} bytes)"]
        if self.ops:
            width = max(12, *(len(op) for op in self.ops))
            lines.append(f"  {'op':<{width}}  {'count':>6}")
            lines.extend(f"  {op:<{width}}  {count:>6}" for op, count in self.ops.items())
            lines.append(f"  {'total':<{width}}  {sum(self.ops.values()):>6}")
        if self.allowed:
            lines.append("ALLOWED")
            return "\n".join(lines)
        first = self.violations[0]
        lines.append(f"REJECTED: [{first.kind}] {first.detail}")
        if len(self.violations) > 1:  # the headline is the first; list them all
            lines.extend(f"  - [{v.kind}] {v.detail}" for v in self.violations)
        if self.omitted_violations:
            lines.append(f"  ... and {self.omitted_violations} more violations not listed")
        return "\n".join(lines)

    def raise_for_violations(self) -> None:
        """Raise a :class:`ScanError` of the first violation's kind; return quietly when allowed."""
        if not self.violations:
            return
        first = self.violations[0]
        more = len(self.violations) - 1 + self.omitted_violations
        suffix = f" (and {more} more violation{'s' if more != 1 else ''})" if more else ""
        name = self.path if self.path is not None else "<bytes>"
        raise ScanError(f"{name}: {first.detail}{suffix}", kind=first.kind, offset=first.offset)
