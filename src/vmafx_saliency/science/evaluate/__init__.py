"""Dataset accuracy, model comparison over video, reports and plots (DESIGN job 5).

``eval`` (:mod:`.run`): run one or more models (:mod:`.models`) over a labelled
salient-object dataset (:mod:`.dataset`: ``images/`` and ``masks/`` paired by file
stem) under one of two protocols (:mod:`.protocols`: ``upstream`` reproduces
upstream ``u2net_test.py``, ``deployment`` is the extractor's own pipeline) and
score the 8-bit maps against the masks (:mod:`.metrics`: py_sod_metrics through one
input checker, IoU and block IoU in the same accumulator style). The figures go
into ``summary.json`` (:mod:`.summary`) and a report folder (:mod:`.report`) with
``report.md`` and plots; the conventions are written into every report
(:data:`CONVENTIONS`).

``compare`` (:mod:`.compare`): two models on the same clips through the extractor
itself, and how far their per-frame ``saliency_mean`` series and their block maps
agree.

Reports are folders built in a hidden temporary folder and renamed into place,
so a failed run leaves nothing behind. This package re-exports the names the
single ``evaluate`` module had, so ``from vmafx_saliency.science.evaluate import X``
keeps working.
"""

from __future__ import annotations

from vmafx_saliency.science.evaluate.compare import COMPARE_SCHEMA as COMPARE_SCHEMA
from vmafx_saliency.science.evaluate.compare import ClipComparison as ClipComparison
from vmafx_saliency.science.evaluate.compare import CompareOptions as CompareOptions
from vmafx_saliency.science.evaluate.compare import CompareResult as CompareResult
from vmafx_saliency.science.evaluate.compare import (
    render_compare_markdown as render_compare_markdown,
)
from vmafx_saliency.science.evaluate.compare import run_compare as run_compare
from vmafx_saliency.science.evaluate.dataset import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from vmafx_saliency.science.evaluate.dataset import LoadedPair as LoadedPair
from vmafx_saliency.science.evaluate.dataset import Pair as Pair
from vmafx_saliency.science.evaluate.dataset import check_sizes as check_sizes
from vmafx_saliency.science.evaluate.dataset import load_pair as load_pair
from vmafx_saliency.science.evaluate.dataset import pair_dataset as pair_dataset
from vmafx_saliency.science.evaluate.metrics import BETA2 as BETA2
from vmafx_saliency.science.evaluate.metrics import BLOCK_SIZES as BLOCK_SIZES
from vmafx_saliency.science.evaluate.metrics import CONVENTIONS as CONVENTIONS
from vmafx_saliency.science.evaluate.metrics import COST_METRICS as COST_METRICS
from vmafx_saliency.science.evaluate.metrics import ENHANCED_METRICS as ENHANCED_METRICS
from vmafx_saliency.science.evaluate.metrics import GT_THRESHOLD as GT_THRESHOLD
from vmafx_saliency.science.evaluate.metrics import MAP_THRESHOLD as MAP_THRESHOLD
from vmafx_saliency.science.evaluate.metrics import METRIC_NAMES as METRIC_NAMES
from vmafx_saliency.science.evaluate.metrics import THRESHOLDS as THRESHOLDS
from vmafx_saliency.science.evaluate.metrics import UNIT_METRICS as UNIT_METRICS
from vmafx_saliency.science.evaluate.metrics import BlockIoU as BlockIoU
from vmafx_saliency.science.evaluate.metrics import Curves as Curves
from vmafx_saliency.science.evaluate.metrics import DatasetMetrics as DatasetMetrics
from vmafx_saliency.science.evaluate.metrics import Distribution as Distribution
from vmafx_saliency.science.evaluate.metrics import ImageScores as ImageScores
from vmafx_saliency.science.evaluate.metrics import MeanIoU as MeanIoU
from vmafx_saliency.science.evaluate.metrics import MetricInput as MetricInput
from vmafx_saliency.science.evaluate.metrics import block_grid as block_grid
from vmafx_saliency.science.evaluate.metrics import block_iou as block_iou
from vmafx_saliency.science.evaluate.metrics import check_inputs as check_inputs
from vmafx_saliency.science.evaluate.metrics import distribution as distribution
from vmafx_saliency.science.evaluate.metrics import iou as iou
from vmafx_saliency.science.evaluate.metrics import score_image as score_image
from vmafx_saliency.science.evaluate.models import EvalModel as EvalModel
from vmafx_saliency.science.evaluate.models import ModelCost as ModelCost
from vmafx_saliency.science.evaluate.models import ModelSpec as ModelSpec
from vmafx_saliency.science.evaluate.models import count_cost as count_cost
from vmafx_saliency.science.evaluate.models import load_models as load_models
from vmafx_saliency.science.evaluate.models import parse_models as parse_models
from vmafx_saliency.science.evaluate.models import spec_inputs as spec_inputs
from vmafx_saliency.science.evaluate.protocols import PROTOCOL_TEXT as PROTOCOL_TEXT
from vmafx_saliency.science.evaluate.protocols import PROTOCOLS as PROTOCOLS
from vmafx_saliency.science.evaluate.protocols import Protocol as Protocol
from vmafx_saliency.science.evaluate.protocols import deployment_input as deployment_input
from vmafx_saliency.science.evaluate.protocols import deployment_output as deployment_output
from vmafx_saliency.science.evaluate.protocols import luma8 as luma8
from vmafx_saliency.science.evaluate.protocols import upstream_input as upstream_input
from vmafx_saliency.science.evaluate.protocols import upstream_output as upstream_output
from vmafx_saliency.science.evaluate.report import COMPARE_MARKER as COMPARE_MARKER
from vmafx_saliency.science.evaluate.report import EVAL_MARKER as EVAL_MARKER
from vmafx_saliency.science.evaluate.report import _ReportDir as _ReportDir
from vmafx_saliency.science.evaluate.report import check_report_folder as check_report_folder
from vmafx_saliency.science.evaluate.report import render_markdown as render_markdown
from vmafx_saliency.science.evaluate.run import EvalOptions as EvalOptions
from vmafx_saliency.science.evaluate.run import EvalResult as EvalResult
from vmafx_saliency.science.evaluate.run import _check_map as _check_map
from vmafx_saliency.science.evaluate.run import run_eval as run_eval
from vmafx_saliency.science.evaluate.summary import SUMMARY_SCHEMA as SUMMARY_SCHEMA
from vmafx_saliency.science.evaluate.summary import DatasetInfo as DatasetInfo
from vmafx_saliency.science.evaluate.summary import EvalSummary as EvalSummary
from vmafx_saliency.science.evaluate.summary import ModelResult as ModelResult
from vmafx_saliency.science.evaluate.summary import validate_summary as validate_summary

__all__ = [
    "BLOCK_SIZES",
    "COMPARE_SCHEMA",
    "CONVENTIONS",
    "GT_THRESHOLD",
    "SUMMARY_SCHEMA",
    "BlockIoU",
    "ClipComparison",
    "CompareOptions",
    "CompareResult",
    "DatasetInfo",
    "DatasetMetrics",
    "Distribution",
    "EvalOptions",
    "EvalResult",
    "EvalSummary",
    "ImageScores",
    "MeanIoU",
    "MetricInput",
    "ModelCost",
    "ModelResult",
    "ModelSpec",
    "Pair",
    "block_grid",
    "block_iou",
    "check_inputs",
    "count_cost",
    "distribution",
    "iou",
    "pair_dataset",
    "parse_models",
    "run_compare",
    "run_eval",
    "score_image",
    "spec_inputs",
    "validate_summary",
]
