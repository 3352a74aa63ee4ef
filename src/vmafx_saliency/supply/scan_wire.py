"""The protobuf wire format as the scanner reads it: fields, varints, and their errors.

A hand-written reader, so that the scanner never builds the message (protobuf
and onnx allocate what a hostile file declares): :func:`_fields` yields each
field's position and payload bounds, and every structural error unwinds the
walk as a :class:`_Stop` carrying one of the scanner's violation kinds
(``supply.scan.KINDS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from vmafx_saliency.supply.scan_report import Violation

# Wire types (protobuf encoding).
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_MAX_FIELD_NUMBER = (1 << 29) - 1
# Names longer than this are shown truncated; no allowlisted op is this long.
_MAX_NAME = 128


# --- wire format ------------------------------------------------------------


class _Stop(Exception):
    """Unwinds the walk at the first structural error, or at a count over its
    limit (``detail`` then says which), internal only."""

    def __init__(self, kind: str, offset: int, what: str, *, detail: str | None = None) -> None:
        super().__init__(what)
        self.kind = kind
        self.offset = offset
        self.what = what
        self.detail = detail

    def violation(self) -> Violation:
        detail = self.detail or (
            f"{self.what} at byte {self.offset}: the file is truncated or corrupt; "
            "export or download it again"
        )
        return Violation(self.kind, detail, self.offset)


def _over(kind: str, offset: int, what: str, limit: int) -> _Stop:
    return _Stop(
        kind,
        offset,
        what,
        detail=f"{what} at byte {offset} is over the limit of {limit:,}: the walk stopped "
        "there; this is not a saliency model of the size the product takes",
    )


def _wire_error(kind: str, offset: int, what: str) -> _Stop:
    return _Stop(kind, offset, what)


class _Field(NamedTuple):
    number: int
    wire_type: int
    tag_offset: int
    # VARINT: (value, unused); LEN: (start, end) of the payload; I32/I64: (start, end).
    a: int
    b: int


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (value, position after it)."""
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _wire_error("truncated-varint", start, "varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        # The 10th byte may only carry bit 63; anything more is over 64 bits
        # (or a continuation into an 11th byte).
        if shift == 63 and byte > 1:
            raise _wire_error("overlong-varint", start, "varint longer than 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes, pos: int, end: int) -> Iterator[_Field]:
    """The fields of the message in ``data[pos:end]``, in order; each consumes >= 1 byte."""
    while pos < end:
        tag_offset = pos
        tag, pos = _varint(data, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if wire_type in (_SGROUP, _EGROUP):
            raise _wire_error(
                "group-wire-type", tag_offset, f"deprecated group wire type {wire_type}"
            )
        if wire_type > _I32:
            raise _wire_error("bad-wire-type", tag_offset, f"invalid wire type {wire_type}")
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise _wire_error("bad-field-number", tag_offset, f"invalid field number {number}")
        if wire_type == _VARINT:
            value, pos = _varint(data, pos, end)
            yield _Field(number, wire_type, tag_offset, value, pos)
        elif wire_type == _LEN:
            length_offset = pos
            length, pos = _varint(data, pos, end)
            if length > end - pos:
                raise _wire_error(
                    "length-past-end",
                    length_offset,
                    f"length {length} runs past the end of its message ({end - pos} bytes left)",
                )
            yield _Field(number, wire_type, tag_offset, pos, pos + length)
            pos += length
        else:
            width = 8 if wire_type == _I64 else 4
            if width > end - pos:
                raise _wire_error(
                    "length-past-end",
                    pos,
                    f"{width}-byte fixed field runs past the end of its message",
                )
            yield _Field(number, wire_type, tag_offset, pos, pos + width)
            pos += width


def _expect(f: _Field, wire_type: int, what: str) -> None:
    # A known field with the wrong wire type is parsed as an unknown field by
    # protobuf, i.e. silently dropped; refuse instead of guessing.
    if f.wire_type != wire_type:
        raise _wire_error(
            "wrong-wire-type",
            f.tag_offset,
            f"{what} (field {f.number}) has wire type {f.wire_type}, onnx.proto says {wire_type}",
        )


def _show(raw: bytes) -> str:
    """A name for reports: decoded leniently, truncated and printable, never raising."""
    if len(raw) > _MAX_NAME:
        text = raw[: _MAX_NAME // 2].decode("utf-8", errors="replace")
        suffix = f"...(over {_MAX_NAME} bytes)"
    else:
        text = raw.decode("utf-8", errors="replace")
        suffix = ""
    if not text.isprintable():
        # Escape newlines and terminal control codes so that a hostile name
        # cannot forge lines (say, "ALLOWED") in the rendered report.
        text = text.encode("unicode_escape").decode("ascii")
    return text + suffix
