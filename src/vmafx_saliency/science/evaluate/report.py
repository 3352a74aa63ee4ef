"""Report folders and the eval report: ``summary.json``, ``per_image.csv``, ``report.md``, plots.

Reports are folders built in a hidden temporary folder beside the target and
renamed into place, so a failed run leaves nothing behind, and ``--force``
only ever replaces an earlier report. ``report.md`` is rendered from the
summary alone, so a committed ``summary.json`` renders to the same text.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmafx_saliency._util import (
    check_can_write,
    check_inputs_spared,
    own_temporary_folder,
    refuse_dash,
    require,
)
from vmafx_saliency.errors import OutputExistsError, UsageError
from vmafx_saliency.science.evaluate.metrics import METRIC_NAMES, THRESHOLDS
from vmafx_saliency.science.evaluate.protocols import PROTOCOL_TEXT
from vmafx_saliency.science.evaluate.summary import EvalSummary, ModelResult

# --- report folders ------------------------------------------------------------------------------

# The file that marks a folder as an earlier report, the only kind --force replaces.
EVAL_MARKER = "summary.json"
COMPARE_MARKER = "compare.json"
# What each kind of report writes, by its marker: --force replaces a folder of these only.
REPORT_FILES = {
    EVAL_MARKER: frozenset(
        {
            EVAL_MARKER,
            "per_image.csv",
            "report.md",
            "pr_curves.png",
            "f_threshold.png",
            "mean_saliency_hist.png",
            "grid.png",
        }
    ),
    COMPARE_MARKER: frozenset({COMPARE_MARKER, "compare.md", "series.png"}),
}


def check_report_folder(
    folder: Path,
    *,
    marker: str,
    force: bool,
    reads: Sequence[tuple[str, Path | None]] = (),
) -> None:
    """Refuse a ``--report`` folder that this run may not replace.

    A new or empty folder is fine. An earlier report (it holds ``marker`` and
    only what such a report writes, :data:`REPORT_FILES`) is replaced with
    --force. Anything else, a file, a dataset, the folder we are in, is refused
    even with --force: replacing a report folder removes all of it.
    So is a report that holds one of the run's ``reads`` (a model, a clip copied
    into an earlier report), or lies inside one.
    """
    refuse_dash(folder, kind="folder", flag="--report")
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UsageError(
            f"--report {folder}: exists and is not a folder (or is a symlink): "
            "give a new or empty folder"
        )
    earlier = folder.exists() and _earlier_report(folder, marker)
    check_inputs_spared(reads, folders=[("--report", folder)])  # whatever --force says
    if earlier:
        _check_only_report_files(folder, marker)
        check_can_write(folder, force=force, folder=True)


def _earlier_report(folder: Path, marker: str) -> bool:
    """Whether the existing ``folder`` holds anything: only an earlier report may."""
    here = Path.cwd().resolve()
    if folder.resolve() in (here, *here.parents):
        raise UsageError(
            f"--report {folder}: that is the folder you are in (or holds it): "
            "give a new folder, e.g. --report report/"
        )
    if not any(folder.iterdir()):
        return False
    if not (folder / marker).is_file():
        raise OutputExistsError(
            f"{folder} exists and is not an earlier report (it has no {marker}), so even "
            "--force will not replace it: give a new or empty folder"
        )
    return True


def _check_only_report_files(folder: Path, marker: str) -> None:
    """Replacing the folder removes all of it: a file no report writes is someone's."""
    theirs = sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name not in REPORT_FILES[marker] or entry.is_symlink() or not entry.is_file()
    )
    if theirs:
        more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
        raise OutputExistsError(
            f"{folder} holds {theirs[0]}{more}, which no report writes, so even --force will "
            "not replace it: move it out, or give a new or empty folder"
        )


class _ReportDir:
    """A hidden folder beside the target, renamed into place by :meth:`commit`."""

    def __init__(self, target: Path, *, marker: str, force: bool) -> None:
        check_report_folder(target, marker=marker, force=force)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target, self.marker, self.force = target, marker, force
        self.tmp = own_temporary_folder(target.parent, target.name)

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> None:
        umask = os.umask(0)
        os.umask(umask)
        self.tmp.chmod(0o777 & ~umask)
        # Checked again: while this run worked, another may have written a report there,
        # or someone a file of their own, which the swap below would remove.
        check_report_folder(self.target, marker=self.marker, force=self.force)
        old: Path | None = None
        if self.target.exists() or self.target.is_symlink():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            self.target.replace(old)
        self.tmp.replace(self.target)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _figure(size: tuple[float, float]) -> Any:
    figure_mod = require("matplotlib.figure", purpose="eval plots", extra="eval")
    agg = require("matplotlib.backends.backend_agg", purpose="eval plots", extra="eval")
    # The object API, not pyplot: no global backend switch, no window.
    fig = figure_mod.Figure(figsize=size, dpi=100, layout="constrained")
    agg.FigureCanvasAgg(fig)
    return fig


# --- the eval report -----------------------------------------------------------------------------


_LABELS = {
    "mae": "MAE (grey mask)",
    "mae_binary": "MAE (binarised mask)",
    "max_f": "max F (i: dataset P/R, paper)",
    "mean_f": "mean F (i: dataset P/R)",
    "adp_f": "adaptive F",
    "max_f_per_image": "max F (ii: per-image F)",
    "mean_f_per_image": "mean F (ii: per-image F)",
    "s_measure": "S-measure",
    "max_e": "max E-measure",
    "mean_e": "mean E-measure",
    "adp_e": "adaptive E-measure",
    "weighted_f": "weighted F",
    "iou": "IoU @0.5",
    "block_iou_16": "block IoU 16x16",
    "block_iou_64": "block IoU 64x64",
    "params": "parameters",
    "macs": "MACs",
    "ms_per_image": "ms / image (median)",
}


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name == "params":
        return f"{value:,.0f}"
    if name == "macs":
        return f"{value / 1e9:.3f} G"
    if name == "ms_per_image":
        return f"{value:.1f}"
    return f"{value:.4f}"


def render_markdown(summary: EvalSummary, *, grid: bool = True) -> str:
    """report.md: the side-by-side table (best value in bold, differences to the first
    model), the conventions and the command line; ``grid``: the report has a grid.png."""
    models = summary.models
    lines = [
        *_heading(summary),
        *_metric_table(models),
        "",
        "↑ higher is better, ↓ lower is better; with several models the best value is in bold.",
        "",
        *_saliency_table(models),
        "",
        "Models:",
        "",
        *_model_lines(models),
        "",
        *_closing(summary, grid=grid),
    ]
    return "\n".join(lines)


def _heading(summary: EvalSummary) -> list[str]:
    """The title (dataset, pairs, protocol), the command line and the protocol's text."""
    ds = summary.dataset
    return [
        f"# Saliency evaluation: {ds.name} ({ds.count} of {ds.pairs} pairs), "
        f"protocol `{summary.protocol}`",
        "",
        f"Command: `{summary.command}`" if summary.command else "Command: (library call)",
        "",
        f"Protocol `{summary.protocol}`: {PROTOCOL_TEXT[summary.protocol]}.",
        "",
    ]


def _metric_table(models: Sequence[ModelResult]) -> list[str]:
    """One row per metric, one column per model, then one column per model after the first
    with its difference to the first (a ratio for the costs)."""
    header = ["metric", *(f"`{m.id}`" for m in models)]
    if len(models) > 1:
        header += [f"Δ `{m.id}` − `{models[0].id}`" for m in models[1:]]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in METRIC_NAMES:
        lines.append("| " + " | ".join(_metric_row(name, models)) + " |")
    return lines


def _metric_row(name: str, models: Sequence[ModelResult]) -> list[str]:
    """The cells of one metric's row: its label and direction, the values (the best one in
    bold when there are several models), the differences to the first model."""
    # registry.higher_is_better is the one place that knows each metric's direction.
    from vmafx_saliency.supply.registry import higher_is_better

    values = [m.metrics.get(name) for m in models]
    known = [v for v in values if v is not None]
    best = None
    if len(models) > 1 and known:
        best = max(known) if higher_is_better(name) else min(known)
    cells = []
    for v in values:
        text = _fmt(name, v)
        cells.append(f"**{text}**" if best is not None and v == best else text)
    arrow = "↑" if higher_is_better(name) else "↓"
    row = [f"{_LABELS.get(name, name)} {arrow}", *cells]
    row += [_difference(name, v, values[0]) for v in values[1:]]
    return row


def _difference(name: str, value: float | None, base: float | None) -> str:
    """A model's value against the first model's: a ratio for the costs, a signed
    difference for the scores, n/a where either is unknown."""
    if value is None or base is None:
        return "n/a"
    if name in ("params", "macs", "ms_per_image"):
        return f"{value / base:.2f}x" if base else "n/a"
    return f"{value - base:+.4f}"


def _saliency_table(models: Sequence[ModelResult]) -> list[str]:
    """Each model's per-image mean saliency, pooled."""
    lines = [
        "Per-image mean saliency (the quantity `saliency_mean` pools per frame):",
        "",
        "| model | mean | std | min | median | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        d = m.mean_saliency
        lines.append(
            f"| `{m.id}` | {d.mean:.4f} | {d.std:.4f} | {d.min:.4f} | {d.median:.4f} | "
            f"{d.max:.4f} |"
        )
    return lines


def _model_lines(models: Sequence[ModelResult]) -> list[str]:
    """One line per model: where it came from, its file and hash, its size, its notes."""
    lines = []
    for m in models:
        size = "native" if m.inference_size is None else "x".join(map(str, m.inference_size[::-1]))
        lines.append(
            f"- `{m.id}` ({m.source}): `{m.path}`, sha256 `{m.sha256[:16]}…`, inference {size}"
            + ("".join(f"; {n}" for n in m.notes))
        )
    return lines


def _closing(summary: EvalSummary, *, grid: bool) -> list[str]:
    """The dataset's masks, the conventions, the files of the folder and the versions."""
    ds = summary.dataset
    return [
        f"Dataset: `{ds.path}`; {ds.grey_masks} of {ds.count} masks are grey (not binary), "
        f"{ds.empty_masks} have no salient pixel, {ds.pixels_at_threshold_plus_one:,} mask "
        f"pixels equal {summary.gt_threshold + 1} (salient here; background under > "
        f"{summary.gt_threshold + 1}).",
        "",
        "## Conventions",
        "",
        *(f"- **{k}**: {v}." for k, v in summary.conventions.items()),
        "",
        "## Files",
        "",
        "- `summary.json` (schema `" + summary.schema + "`; `registry promote --report "
        "summary.json --metric NAME` reads it)",
        "- `per_image.csv`: one row per image per model; its `max_f` and `max_e` are each "
        "image's own best over the thresholds, so their mean is neither summary figure of "
        "that name (those take the best threshold of the mean curves)",
        "- `pr_curves.png`, `f_threshold.png`, `mean_saliency_hist.png`"
        + (", `grid.png`" if grid else ""),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in summary.versions.items()) + ".",
        "",
    ]


@dataclass(frozen=True)
class _Sample:
    """An image kept for the grid figure, with each model's map."""

    stem: str
    image: np.ndarray
    mask: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


def _write_eval_report(
    folder: Path,
    *,
    force: bool,
    summary: EvalSummary,
    rows: Sequence[Mapping[str, Any]],
    saliency: Sequence[Sequence[float]],
    samples: Sequence[_Sample],
) -> None:
    """The eval report folder, all or nothing.

    ``rows``: per_image.csv's rows in order; ``saliency``: each model's per-image mean
    saliency (the histogram); ``samples``: the images of the grid figure.
    """
    out = _ReportDir(folder, marker=EVAL_MARKER, force=force)
    try:
        out.path(EVAL_MARKER).write_text(summary.dumps(), encoding="utf-8")
        with out.path("per_image.csv").open("w", newline="", encoding="utf-8") as fh:
            fields = list(rows[0]) if rows else ["model", "stem"]
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()}
                )
        markdown = render_markdown(summary, grid=bool(samples))
        out.path("report.md").write_text(markdown, encoding="utf-8")
        _plot_curves(summary, out.path("pr_curves.png"), out.path("f_threshold.png"))
        _plot_hist(summary, saliency, out.path("mean_saliency_hist.png"))
        if samples:  # --grid 0: no grid figure
            _plot_grid(samples, [m.id for m in summary.models], out.path("grid.png"))
        out.commit()
    except BaseException:
        out.discard()
        raise


def _plot_curves(summary: EvalSummary, pr_path: Path, f_path: Path) -> None:
    fig = _figure((5.5, 5.0))
    ax = fig.add_subplot()
    for m in summary.models:
        ax.plot(
            m.curves.recall, m.curves.precision, label=f"{m.id} (max F {m.metrics['max_f']:.3f})"
        )
    ax.set_xlabel("recall (averaged over images)")
    ax.set_ylabel("precision (averaged over images)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: precision-recall ({summary.protocol})")
    fig.savefig(pr_path, format="png")

    fig = _figure((7.0, 4.0))
    ax = fig.add_subplot()
    thresholds = np.arange(THRESHOLDS) / 255.0
    for m in summary.models:
        (line,) = ax.plot(thresholds, m.curves.f_pr, label=f"{m.id}: F of mean P, R (i)")
        ax.plot(
            thresholds,
            m.curves.f_per_image,
            linestyle="--",
            color=line.get_color(),
            label=f"{m.id}: mean per-image F (ii)",
        )
    ax.set_xlabel("threshold (map >= t)")
    ax.set_ylabel("F-measure (beta^2 = 0.3)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower center", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: F-measure over threshold ({summary.protocol})")
    fig.savefig(f_path, format="png")


def _plot_hist(summary: EvalSummary, saliency: Sequence[Sequence[float]], path: Path) -> None:
    fig = _figure((6.5, 4.0))
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41)
    for i, m in enumerate(summary.models):
        ax.hist(saliency[i], bins=bins, histtype="step", linewidth=1.5, label=m.id)
    ax.set_xlabel("per-image mean saliency")
    ax.set_ylabel("images")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{summary.dataset.name}: mean saliency per image ({summary.protocol})")
    fig.savefig(path, format="png")


def _plot_grid(samples: Sequence[_Sample], model_ids: Sequence[str], path: Path) -> None:
    cols = 2 + len(model_ids)
    rows = max(len(samples), 1)
    fig = _figure((2.2 * cols, 2.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        for c in range(cols):
            axes[r][c].axis("off")
    for r, sample in enumerate(samples):
        panels: list[tuple[str, np.ndarray | None]] = [
            ("image " + sample.stem, sample.image),
            ("mask", sample.mask),
        ]
        panels += [(mid, sample.maps.get(mid)) for mid in model_ids]
        for c, (title, picture) in enumerate(panels):
            if picture is None:
                continue
            ax = axes[r][c]
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize="small")
    fig.savefig(path, format="png")
