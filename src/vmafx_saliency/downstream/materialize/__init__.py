"""The materializer: saliency columns for feature tables (JSONL or Parquet).

Every row of the table names a video in one column. The materializer adds four
columns to every row and changes nothing else:

- ``saliency_mean`` and ``saliency_var`` (float64): the per-frame features of
  the extractor (:func:`vmafx_saliency.video.extract.extract`) over the clip's first
  N frames, pooled with an aggregator (``mean``, ``ema`` or ``max``), each
  feature on its own;
- ``saliency_status`` (string): ``ok``, ``skipped-existing``,
  ``missing-source``, ``decode-failed`` or ``model-failed``;
- ``saliency_model`` (string): the model that computed the values.

Rows are never dropped or reordered, and every other column keeps its values
and type. Each distinct clip (the same file, and for raw YUV the same
geometry) is computed once; rows that share it share the result. Rows that
already hold both values keep them (``skipped-existing``) unless asked to
overwrite, so a second run over the output recomputes only what failed.

Clips are computed in this process, in a process pool (each worker loads the
model once through the loader gate) or on Ray actors (each holding one ONNX
Runtime session), with the same code and the same numbers on every path.
The output is written atomically once everything is computed.

The modules, in import order: ``records`` (statuses, columns, the values
passed around), ``tables`` (JSONL and Parquet in and out), ``work`` (one clip
-> two pooled numbers, the same code in every executor), ``plan`` (rows ->
distinct clips), ``executors`` (in process, process pool, Ray) and ``job``
(:func:`materialize`). This package re-exports their public API.
"""

from __future__ import annotations

from vmafx_saliency.downstream.materialize.job import materialize
from vmafx_saliency.downstream.materialize.records import (
    AGGREGATORS,
    EXECUTORS,
    OUR_COLUMNS,
    STATUSES,
    Clip,
    ClipResult,
    Geometry,
    Options,
    Settings,
    Summary,
)
from vmafx_saliency.downstream.materialize.tables import read_table, table_format
from vmafx_saliency.downstream.materialize.work import ClipWorker, aggregate

__all__ = [
    "AGGREGATORS",
    "EXECUTORS",
    "OUR_COLUMNS",
    "STATUSES",
    "Clip",
    "ClipResult",
    "ClipWorker",
    "Geometry",
    "Options",
    "Settings",
    "Summary",
    "aggregate",
    "materialize",
    "read_table",
    "table_format",
]
