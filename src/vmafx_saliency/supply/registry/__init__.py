"""The model registry: pinned entries, sidecars, the operator overlay, promotion.

DESIGN section 5. Two files make one view:

* the **committed** registry, the package's ``models/registry.json`` (tracked in git;
  ``$VMAFX_SALIENCY_COMMITTED_REGISTRY`` overrides its location, for tests);
* the **overlay**, a file in a user location (``$VMAFX_SALIENCY_REGISTRY``, else
  ``$XDG_DATA_HOME/vmafx-saliency/registry.json``), where operators add models
  without editing tracked files. A missing overlay is an empty one.

Both follow ``schemas/registry.schema.json``. Every path in an entry is relative
to the folder of the file that defines it and must stay under that folder after
symlinks are resolved, so a registry cannot point the loader at arbitrary files.
The effective default of an extractor is the overlay's default if the overlay
has one, else the committed one.

Each model has a sidecar JSON (``schemas/sidecar.schema.json``) that declares its
pre-processing, so the extractor never switches on a model's name.

Adding a model (:func:`add_model`) writes only to the overlay and never makes the
model the default; :func:`promote` makes it the default only when a comparison
report shows it is strictly better than the default it replaces. Adding and
flipping the default are never one step.

The package, by concept: :mod:`.entries` (the records), :mod:`.schemas` (strict
JSON and schema checks), :mod:`.locations` (where the two files are),
:mod:`.documents` (one file parsed, checked and written), :mod:`.view` (the
merged :class:`Registry`), :mod:`.validate`, :mod:`.add`, :mod:`.compare`
(comparison reports) and :mod:`.promote`. This package imports the standard
library and ``jsonschema`` only: the scanner and the contract check (numpy,
ONNX Runtime) are imported when a model is checked, so listing and looking up
models works where they are not installed.
"""

from __future__ import annotations

from vmafx_saliency.supply.registry.add import add_model
from vmafx_saliency.supply.registry.compare import (
    COMPARISON_SCHEMAS,
    LOWER_IS_BETTER_NAMES,
    LOWER_IS_BETTER_PREFIXES,
    Comparison,
    higher_is_better,
    read_comparison_report,
)
from vmafx_saliency.supply.registry.entries import (
    Finding,
    ModelEntry,
    Preprocessing,
    Quantization,
    Sidecar,
    Source,
    ValidationReport,
    Verification,
)
from vmafx_saliency.supply.registry.locations import (
    ENV_COMMITTED,
    ENV_OVERLAY,
    committed_registry_path,
    overlay_registry_path,
    packaged_models,
    sidecar_beside,
)
from vmafx_saliency.supply.registry.manifests import (
    QUANTIZATION_MANIFEST_SCHEMA,
    model_id_from_manifest,
    quantization_from_manifest,
    source_from_manifest,
)
from vmafx_saliency.supply.registry.promote import promote
from vmafx_saliency.supply.registry.schemas import REGISTRY_SCHEMA, SIDECAR_SCHEMA
from vmafx_saliency.supply.registry.validate import sidecar_pin_problem, validate_registry
from vmafx_saliency.supply.registry.view import Registry

__all__ = [
    "COMPARISON_SCHEMAS",
    "ENV_COMMITTED",
    "ENV_OVERLAY",
    "LOWER_IS_BETTER_NAMES",
    "LOWER_IS_BETTER_PREFIXES",
    "QUANTIZATION_MANIFEST_SCHEMA",
    "REGISTRY_SCHEMA",
    "SIDECAR_SCHEMA",
    "Comparison",
    "Finding",
    "ModelEntry",
    "Preprocessing",
    "Quantization",
    "Registry",
    "Sidecar",
    "Source",
    "ValidationReport",
    "Verification",
    "add_model",
    "committed_registry_path",
    "higher_is_better",
    "model_id_from_manifest",
    "overlay_registry_path",
    "packaged_models",
    "promote",
    "quantization_from_manifest",
    "read_comparison_report",
    "sidecar_beside",
    "sidecar_pin_problem",
    "source_from_manifest",
    "validate_registry",
]
