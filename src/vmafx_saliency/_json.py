"""JSON from files the product did not write: parsed with its nesting, integers and
strings bounded, so a hostile document ends in :class:`json.JSONDecodeError`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# Deeper than any document of ours (a registry, a sidecar, a bundle, a vmaf
# JSON nest a few levels); a deeper one is refused before anything walks it.
MAX_JSON_DEPTH = 64


def json_loads(
    text: str | bytes,
    *,
    parse_float: Callable[[str], Any] | None = None,
    parse_constant: Callable[[str], Any] | None = None,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """:func:`json.loads` for files the product did not write: nesting is capped.

    A document nested over :data:`MAX_JSON_DEPTH` levels (or deep enough to
    exhaust the parser's recursion), an integer over Python's 4,300 digits, or a
    string with a lone surrogate (which would fail when written back as UTF-8)
    raises :class:`json.JSONDecodeError`, as any other malformed JSON does, so
    every caller's one-line message covers it.
    """
    try:
        doc = json.loads(
            text,
            parse_float=parse_float,
            parse_int=_bounded_int,
            parse_constant=parse_constant,
            object_pairs_hook=object_pairs_hook,
        )
    except RecursionError:
        raise json.JSONDecodeError(
            f"nested deeper than {MAX_JSON_DEPTH} levels", _as_text(text), 0
        ) from None
    problem = _tree_problem(doc, MAX_JSON_DEPTH)
    if problem is not None:
        raise json.JSONDecodeError(problem, _as_text(text), 0)
    return doc


def _as_text(text: str | bytes) -> str:
    return text if isinstance(text, str) else text[:64].decode("utf-8", errors="replace")


# Python's own cap on int() of a decimal string (sys.get_int_max_str_digits' default).
_MAX_INT_DIGITS = 4300


def _bounded_int(digits: str) -> int:
    # Past the cap int() raises a bare ValueError, which callers would not expect of JSON.
    if len(digits.lstrip("-")) > _MAX_INT_DIGITS:
        raise json.JSONDecodeError(f"an integer of {len(digits):,} digits", digits, 0)
    return int(digits)


def _tree_problem(doc: Any, limit: int) -> str | None:
    """Nesting over ``limit``, or a string no UTF-8 writer can write back (a lone
    surrogate, ``"\\ud800"``), or None."""
    # An explicit stack, not recursion: the check must not fail as json.loads can.
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return f"nested deeper than {limit} levels"
        if isinstance(node, dict):
            stack.extend((key, depth + 1) for key in node)
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return f"a string holds a lone surrogate ({node[:40]!r})"
    return None
