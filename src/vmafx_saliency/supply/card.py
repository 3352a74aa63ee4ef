"""Model-card blocks rendered from the files that hold the figures, never typed by hand.

A card holds a block between ``<!-- figures:begin -->`` and
``<!-- figures:end -->`` that :func:`update_card` rewrites from the manifest
``vmafx-saliency export`` (or ``train``) wrote, and may hold a block between
``<!-- evaluation:begin -->`` and ``<!-- evaluation:end -->`` that
:func:`update_evaluation` rewrites from the ``summary.json`` of
``vmafx-saliency eval``. With ``check`` either tells whether the card is stale
instead. Each block names the command that produced it, with paths a user can
run it with from the repository root. Every value rendered from a file is one
line of plain text (no line break, backtick, ``|``, ``<`` or ``>``), so a
hostile file cannot write markers or HTML; a card whose markers are not exactly
one begin line and one end line, in order, is refused. Besides the package's
``_util``, ``errors``, ``schemas`` and the export's manifest id this module
imports the standard library only (``jsonschema`` lazily, to check a manifest or
summary against its schema).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import atomic_write_text, read_capped
from vmafx_saliency.errors import (
    InputFileError,
    StaleCardError,
    UsageError,
)
from vmafx_saliency.supply.export.mirror import MANIFEST_SCHEMA

BEGIN = "<!-- figures:begin -->"
END = "<!-- figures:end -->"
EVAL_BEGIN = "<!-- evaluation:begin -->"
EVAL_END = "<!-- evaluation:end -->"

_MANIFEST_ADVICE = "pass the manifest 'vmafx-saliency export' or 'train' wrote, or re-run it"
# What a rendered value may not hold: a line break or control character (a new
# line could be a marker), a backtick (ends a code span), '|' (ends a table
# cell), '<' or '>' (a marker or HTML). Ids, hashes, file names and versions
# never need them, so refusing is honest where escaping would show another value.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029`|<>]")
# Files that mark a repository root, where the recorded command is run from.
_ROOT_MARKERS = (".git", "pyproject.toml")

SUMMARY_SCHEMA = "vmafx-saliency/eval-summary/v1"
# The cap 'registry promote' puts on a comparison report; a summary is ~100 KB.
_MAX_SUMMARY_BYTES = 64 * 1024 * 1024
# Manifests and cards are kilobytes of text.
_MAX_TEXT_BYTES = 8 * 1024 * 1024
_EVAL_ADVICE = "write it with 'vmafx-saliency eval --report DIR' and pass DIR/summary.json"

# The summary's metrics a reader compares, in the order of the table: (key, label, form).
# ms_per_image is left out: it depends on a machine the summary does not name.
EVAL_METRICS: tuple[tuple[str, str, str], ...] = (
    ("max_f", "max F (i: P and R averaged over images, then F; the paper's) ↑", "unit"),
    ("mean_f", "mean F (i) ↑", "unit"),
    ("s_measure", "S-measure ↑", "unit"),
    ("weighted_f", "weighted F ↑", "unit"),
    ("max_e", "max E-measure ↑", "unit"),
    ("mae", "MAE (grey mask) ↓", "unit"),
    ("block_iou_16", "block IoU, 16x16 blocks ↑", "unit"),
    ("params", "parameters (ONNX initializers)", "count"),
    ("macs", "conv MACs at the inference size", "giga"),
)


@dataclass(frozen=True)
class CardUpdate:
    card: Path
    changed: bool


# --- values and commands ---------------------------------------------------------


class UnsafeTextError(ValueError):
    """A value would break out of its Markdown cell or the card's markers."""


def _plain(value: str, where: str) -> str:
    """``value``, refused unless it is one line of text that cannot leave its cell."""
    if _UNSAFE.search(value):
        raise UnsafeTextError(
            f"{where} {value[:80]!r} holds a line break, control character, '`', '|', "
            "'<' or '>', which a card cannot show"
        )
    return value


def _repository_root(card: Path) -> Path | None:
    """The nearest folder above the card holding ``.git`` or ``pyproject.toml``."""
    for folder in card.resolve().parents:
        if any((folder / name).exists() for name in _ROOT_MARKERS):
            return folder
    return None


def _shown_path(path: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(path.resolve(), base)
    except ValueError:  # another drive (Windows): no relative path exists
        return path.resolve().as_posix()
    return Path(rel).as_posix()


def card_command(flag: str, source: Path, card: Path) -> str:
    """The ``card`` command that renders ``source`` into ``card``, and where to run it.

    Paths are relative to the card's repository root (its own folder when it has
    none), so the command runs as written, whoever ran it from wherever.
    """
    root = _repository_root(card)
    base, where = (root, "the repository root") if root else (card.resolve().parent, "its folder")
    words = ["vmafx-saliency", "card", flag, _shown_path(source, base)]
    words += ["--card", _shown_path(card, base)]
    line = shlex.join(words)
    if _UNSAFE.search(line):
        raise UsageError(
            f"{line!r}: a path holds a line break, '`', '|', '<' or '>', which a card "
            "cannot show: rename or move the file"
        )
    return f"`{line}` (run from {where})"


# --- the figures block (export manifest) ------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _load_manifest(path: Path) -> dict[str, Any]:
    return _load_document(
        path,
        what="manifest",
        cap=_MAX_TEXT_BYTES,
        schema=("export-manifest", MANIFEST_SCHEMA),
        kind=f"an export manifest (schema {MANIFEST_SCHEMA})",
        advice=_MANIFEST_ADVICE,
        missing="run 'vmafx-saliency export' first",
    )


def _load_document(
    path: Path,
    *,
    what: str,
    cap: int,
    schema: tuple[str, str],
    kind: str,
    advice: str,
    missing: str,
) -> dict[str, Any]:
    """A JSON document read capped, strict (no NaN), of its ``schema`` (the package's
    schema name, the document's id) and valid against it, or one InputFileError."""
    from vmafx_saliency import schemas

    raw = read_capped(path, cap=cap, what=what, missing=missing)
    try:
        doc = json_loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"{what} {path}: not valid JSON ({exc}): {advice}") from exc
    name, identifier = schema
    if not isinstance(doc, dict) or doc.get("schema") != identifier:
        raise InputFileError(f"{what} {path}: not {kind}: {advice}")
    problems = schemas.problems(name, doc)
    if problems:
        raise InputFileError(
            f"{what} {path}: breaks its schema ({'; '.join(problems[:3])}): {advice}"
        )
    return doc


def _upstream_rows(upstream: dict[str, Any]) -> list[str]:
    ckpt, licence = upstream["checkpoint"], upstream["licence"]
    repo = _plain(upstream["repo"], "upstream/repo")
    path = _plain(ckpt["path"], "upstream/checkpoint/path")
    licence_file = _plain(licence["file"], "upstream/licence/file")
    return [
        f"| upstream | {repo} @ `{upstream['commit']}` |",
        f"| checkpoint | `{path}`, sha256 `{ckpt['sha256']}` |",
        f"| licence file | `{licence_file}`, sha256 `{licence['sha256']}` |",
        f"| upstream NOTICE present | {'yes' if upstream['notice_present'] else 'no'} |",
    ]


def _versions_row(versions: dict[str, str]) -> str:
    shown = (
        f"{_plain(name, 'export/versions key')} {_plain(version, f'export/versions/{name}')}"
        for name, version in sorted(versions.items())
    )
    return "| exported with | " + ", ".join(shown) + " |"


def _op_rows(ops: dict[str, int]) -> list[str]:
    rows = [f"| {_plain(op, 'op_types key')} | {count} |" for op, count in sorted(ops.items())]
    return [*rows, f"| **total** | **{sum(ops.values())}** |"]


def _parity_rows(parity: list[dict[str, Any]]) -> list[str]:
    rows = []
    for n, fig in enumerate(parity):
        height, width = fig["size"]
        rows.append(
            f"| {height} x {width} | `{_plain(fig['image'], f'parity/{n}/image')}` | "
            f"{fig['max_abs_diff']:.2e} | {fig['tolerance']:.0e} |"
        )
    return rows


def render_figures(manifest: dict[str, Any], *, command: str) -> str:
    """The Markdown block of figures for one exported model.

    ``manifest`` must meet the export-manifest schema; ``command`` is what
    :func:`card_command` returns. Raises :class:`UnsafeTextError` for a value
    that could break out of the block.
    """
    out = manifest["output"]
    # A trained student's manifest is written by 'train' (source fork-trained).
    source = manifest.get("source")
    trained = isinstance(source, dict) and source.get("type") == "fork-trained"
    lines = [
        BEGIN,
        f"Generated by {command} from the manifest that "
        f"`vmafx-saliency {'train' if trained else 'export'}` wrote; do not edit by hand.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| model id | `{manifest['model_id']}` |",
        f"| ONNX sha256 | `{out['sha256']}` |",
        f"| ONNX size | {out['bytes']:,} bytes |",
        f"| parameters | {manifest['params']:,} |",
    ]
    if "macs_320x320" in manifest:
        lines.append(f"| conv MACs at 320x320 | {manifest['macs_320x320']:,} |")
    lines.append(f"| opset | {manifest['export']['opset']} |")
    if manifest.get("upstream"):
        lines += _upstream_rows(manifest["upstream"])
    lines.append(_versions_row(manifest["export"]["versions"]))
    lines += ["", "Op types in the exported graph (all on the allowlist):", ""]
    lines += ["| op | count |", "|---|---:|", *_op_rows(manifest["op_types"])]
    lines += ["", "Export parity, ONNX Runtime against PyTorch (max abs diff of the map):", ""]
    lines += ["| size (H x W) | image | max abs diff | tolerance |", "|---|---|---:|---:|"]
    lines += _parity_rows(manifest["parity"])
    lines.append(END)
    return "\n".join(lines)


def _rendered(render: Callable[[], str], source: str, advice: str) -> str:
    """``render()``, its refusal of a value turned into one line naming the file."""
    try:
        return render()
    except UnsafeTextError as exc:
        raise InputFileError(f"{source}: {exc}: {advice}") from exc


def update_card(*, manifest: Path, card: Path, check: bool = False) -> CardUpdate:
    """Rewrite the card's figures block; with ``check``, raise if it is stale instead."""
    doc = _load_manifest(manifest)
    command = card_command("--manifest", manifest, card)
    rendered = _rendered(
        lambda: render_figures(doc, command=command), f"manifest {manifest}", _MANIFEST_ADVICE
    )
    return _rewrite_block(
        card,
        markers=(BEGIN, END),
        rendered=rendered,
        check=check,
        missing=f"no figures block: add the lines '{BEGIN}' and '{END}' where the figures go",
        stale=f"figures differ from {manifest}: run 'vmafx-saliency card "
        f"--manifest {manifest} --card {card}'",
    )


# --- the evaluation block (eval summary) --------------------------------------------


def load_summary(path: Path) -> dict[str, Any]:
    """An eval ``summary.json``, read capped and checked against its schema."""
    return _load_document(
        path,
        what="evaluation summary",
        cap=_MAX_SUMMARY_BYTES,
        schema=("eval-summary", SUMMARY_SCHEMA),
        kind=f"a {SUMMARY_SCHEMA} document (the eval command's summary.json)",
        advice=_EVAL_ADVICE,
        missing=_EVAL_ADVICE,
    )


def _shown(value: float | None, form: str) -> str:
    if value is None:
        return "n/a"
    if form == "count":
        return f"{value:,.0f}"
    if form == "giga":
        return f"{value / 1e9:.3f} G"
    return f"{value:.4f}"


def _ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.3f}"


def _metric_rows(models: list[dict[str, Any]]) -> list[str]:
    """One row per metric: each model's value, then each later model's over the first's."""
    base = models[0]["metrics"]
    lines = []
    for key, label, form in EVAL_METRICS:
        values = [m["metrics"].get(key) for m in models]
        cells = [_shown(v, form) for v in values]
        cells += [_ratio(v, base.get(key)) for v in values[1:]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _dataset_line(summary: Mapping[str, Any]) -> str:
    data = summary["dataset"]
    protocol = summary["protocol"]
    description = _plain(protocol["description"], "protocol/description")
    return (
        f"Dataset `{_plain(data['name'], 'dataset/name')}`: {data['count']:,} of "
        f"{data['pairs']:,} pairs ({data['grey_masks']:,} grey masks, "
        f"{data['empty_masks']:,} with no salient pixel; a mask pixel is salient when "
        f"> {summary['gt_threshold']}). Protocol `{protocol['name']}`: {description}."
    )


def _model_ids(models: list[dict[str, Any]]) -> list[str]:
    return [_plain(m["id"], f"models/{n}/id") for n, m in enumerate(models)]


def _models_line(ids: list[str], models: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"`{i}` ({m['source']}), sha256 `{m['sha256'][:16]}…`"
        for i, m in zip(ids, models, strict=True)
    )


_EVAL_COMMAND = "`vmafx-saliency card --report <that file> --card <this file>`"


def render_evaluation(
    summary: Mapping[str, Any], *, summary_link: str, command: str = _EVAL_COMMAND
) -> str:
    """The Markdown evaluation block of an eval summary: one column per model.

    ``summary`` must meet the eval-summary schema; ``command`` is what
    :func:`card_command` returns. Raises :class:`UnsafeTextError` for a value
    that could break out of the block.
    """
    models: list[dict[str, Any]] = list(summary["models"])
    ids = _model_ids(models)
    header = ["metric"] + [f"`{i}`" for i in ids]
    header += [f"`{i}` / `{ids[0]}`" for i in ids[1:]]
    recorded = _plain(summary["command"], "command") or "a library call (no command line recorded)"
    tool = _plain(summary["tool"], "tool")
    lines = [
        EVAL_BEGIN,
        f"Generated from [`{summary_link}`]({summary_link}), the summary that "
        f"`vmafx-saliency eval` wrote, by {command}; do not edit by hand.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *_metric_rows(models),
        "",
        "- ↑ higher is better, ↓ lower is better; a ratio is the model's value over the "
        f"first model's (`{ids[0]}`).",
        f"- {_dataset_line(summary)}",
        f"- Models: {_models_line(ids, models)}.",
        f"- Produced by `{recorded}` (vmafx-saliency {tool}).",
        EVAL_END,
    ]
    return "\n".join(lines)


def _link(target: Path, card: Path) -> str:
    """``target`` as a path relative to the card's folder, as a Markdown link needs."""
    try:
        rel = os.path.relpath(target.resolve(), card.resolve().parent)
    except ValueError:  # another drive (Windows): no relative path exists
        return target.name
    return Path(rel).as_posix()


def update_evaluation(*, report: Path, card: Path, check: bool = False) -> CardUpdate:
    """Rewrite the card's evaluation block; with ``check``, raise if it is stale instead."""
    doc = load_summary(report)
    command = card_command("--report", report, card)
    rendered = _rendered(
        lambda: render_evaluation(doc, summary_link=_link(report, card), command=command),
        f"evaluation summary {report}",
        _EVAL_ADVICE,
    )
    return _rewrite_block(
        card,
        markers=(EVAL_BEGIN, EVAL_END),
        rendered=rendered,
        check=check,
        missing=f"no evaluation block: add the lines '{EVAL_BEGIN}' and '{EVAL_END}' "
        "where the evaluation table goes",
        stale=f"evaluation differs from {report}: run 'vmafx-saliency card "
        f"--report {report} --card {card}'",
    )


# --- rewriting a block ------------------------------------------------------------


def _block_span(text: str, begin: str, end: str) -> tuple[int, int] | None:
    """Where the block lies: from its begin line to its end line; ``None``: no markers.

    A marker is a line of its own, so a card may mention one in prose. Anything
    but exactly one begin line before exactly one end line is refused: a stray
    marker (from a hand edit or an old hostile file) would leave text outside
    the block that no re-render removes and no check sees.
    """
    begins = list(re.finditer(rf"(?m)^{re.escape(begin)}[ \t\r]*$", text))
    ends = list(re.finditer(rf"(?m)^{re.escape(end)}[ \t\r]*$", text))
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0].start() < begins[0].start():
        raise ValueError(
            f"{len(begins)} '{begin}' and {len(ends)} '{end}' lines, not one of each "
            "in that order: remove the stray markers (and what they enclose)"
        )
    return begins[0].start(), ends[0].start() + len(end)


def _rewrite_block(
    card: Path,
    *,
    markers: tuple[str, str],
    rendered: str,
    check: bool,
    missing: str,
    stale: str,
) -> CardUpdate:
    """Put ``rendered`` in place of the card's block; ``check``: refuse a change instead."""
    raw = read_capped(card, cap=_MAX_TEXT_BYTES, what="model card", missing="check the path")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{card}: not UTF-8 text ({exc.reason}): pass a Markdown card"
        ) from exc
    try:
        span = _block_span(text, *markers)
    except ValueError as exc:
        raise InputFileError(f"model card {card}: {exc}") from exc
    if span is None:
        raise InputFileError(f"{card}: {missing}")
    new = text[: span[0]] + rendered + text[span[1] :]
    changed = new != text
    if check:
        if changed:
            raise StaleCardError(f"{card}: {stale}")
        return CardUpdate(card, changed=False)
    if changed:
        atomic_write_text(card, new)
    return CardUpdate(card, changed=changed)
