"""Op-allowlist scanner for ONNX files that reads the protobuf wire format itself.

It imports only the standard library, so it runs where neither ``onnx`` nor
``protobuf`` is installed, and it never hands attacker-controlled bytes to a
C++ parser before they have been checked (DESIGN section 4, "Content").

The walk follows exactly the fields that decide what ONNX Runtime executes::

    ModelProto.graph (7) -> GraphProto.node (1) -> NodeProto.op_type (4), .domain (7)
                                                 -> .attribute (5) -> AttributeProto.g (6),
                                                    .graphs (11): If / Loop bodies
    ModelProto.opset_import (8), .functions (25), .training_info (20)
    TensorProto.external_data (13), .data_location (14) wherever tensors live:
    GraphProto.initializer (5), .sparse_initializer (15), AttributeProto.t (5),
    .tensors (10), .sparse_tensor (22), .sparse_tensors (23)

Every other field is skipped by its length without being interpreted. The
field numbers are those of ``onnx/onnx.proto`` (onnx 1.16 to 1.23).

Safety properties:

* only :class:`ScanError` escapes (wrapped in a :class:`ScanReport`
  by :func:`scan_bytes`; raised by :meth:`ScanReport.raise_for_violations`);
* no allocation is sized by a length read from the file; strings are sliced
  only for op and domain names and tensor names, and long ones are truncated;
* recursion follows subgraph nesting, which stops at :data:`MAX_NESTING`;
* every loop consumes at least one byte per iteration.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import Counter
from importlib import resources
from pathlib import Path

from vmafx_saliency._util import open_regular, read_opened
from vmafx_saliency.errors import InputFileError, UsageError
from vmafx_saliency.supply.scan_qdq import (
    QDQ_PARAMETERS,
    Initializer,
    QdqInput,
    qdq_input,
    qdq_problems,
)
from vmafx_saliency.supply.scan_report import ScanReport, Violation
from vmafx_saliency.supply.scan_wire import (
    _LEN,
    _MAX_NAME,
    _VARINT,
    _expect,
    _Field,
    _fields,
    _over,
    _show,
    _Stop,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "KINDS",
    "MAX_LOOPS",
    "MAX_NESTING",
    "ScanReport",
    "Violation",
    "check_bytes",
    "load_allowlist",
    "over_budget",
    "scan_bounded",
    "scan_bytes",
    "scan_file",
]

DEFAULT_MAX_BYTES: int = 50 * 1024 * 1024
# Subgraph levels below the main graph (an If inside an If is level 2).
MAX_NESTING = 8
# Loop nodes in the whole model, subgraphs and functions included.
MAX_LOOPS = 16
# Counts a model of ours stays far below (u2netp: 1,025 nodes, 13 op types,
# 4 attributes a node at most); past one, the walk stops: a hostile file must
# not make the scanner's memory or time grow with its element count.
MAX_NODES = 100_000  # in the whole model, subgraphs and functions included
MAX_ATTRIBUTES = 1_000  # of one node
MAX_INITIALIZERS = 100_000  # of one graph
MAX_OP_TYPES = 1_000  # distinct op types, domains included
MAX_OPSET_IMPORTS = 64  # in the whole model
# Policy violations kept in a report; the rest are only counted, so a hostile
# file cannot make the report grow with the number of its nodes.
MAX_VIOLATIONS = 1000
_DEFAULT_DOMAINS = (b"", b"ai.onnx")
# ONNX Runtime loads bytes with this flatbuffers identifier at offset 4 as an
# ORT-format model instead of a ModelProto, whatever else the file contains.
_ORT_IDENTIFIER = b"ORTM"


# Field numbers, from onnx.proto.
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_OPSET_IMPORT = 1, 7, 8
_MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 20, 25
_OPSET_DOMAIN = 1
_TRAINING_INITIALIZATION, _TRAINING_ALGORITHM = 1, 2
_FUNCTION_NODE, _FUNCTION_OPSET_IMPORT, _FUNCTION_ATTRIBUTE_PROTO = 7, 9, 11
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_SPARSE_INITIALIZER = 1, 5, 11, 15
_VALUE_INFO_NAME = 1
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 2, 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 2, 8, 13, 14
_DATA_LOCATION_EXTERNAL = 1

# --- violation kinds -------------------------------------------------------

# Every reason the scanner refuses a file: the ``kind`` of a :class:`Violation`
# and of the :class:`ScanError` that :meth:`ScanReport.raise_for_violations`
# raises. Stable identifiers: scripts match on them.
KINDS: dict[str, str] = {
    "disallowed-op": "a node's op type is not on the allowlist",
    "custom-domain": "a node or an opset import names an op domain other than the ONNX default",
    "external-data": "a tensor keeps its data in a file outside the model",
    "sparse-tensor": "a sparse tensor, which ONNX Runtime expands to its full dense size at load",
    "duplicate-initializer": "two initializers of one graph share a name, or a node's output "
    "takes an initializer's name; readers disagree on which value runs",
    "empty-subgraph": "a subgraph without nodes: a Loop over it cannot be stopped",
    "nesting-too-deep": f"subgraphs nested deeper than {MAX_NESTING} levels",
    "too-many-loops": f"more than {MAX_LOOPS} Loop nodes",
    "file-too-large": "the file is over the size cap; it was not read",
    "not-onnx": "the file is empty or is not an ONNX ModelProto",
    "ort-format": "the bytes carry the ORT-format identifier, not a ModelProto",
    # The protobuf encoding itself is broken; the walk stopped there.
    "truncated-varint": "a varint runs past the end of its message",
    "overlong-varint": "a varint longer than 64 bits",
    "length-past-end": "a length runs past the end of its message",
    "group-wire-type": "a deprecated group wire type",
    "bad-wire-type": "an invalid wire type",
    "wrong-wire-type": "a field the scanner reads has another wire type than onnx.proto declares",
    "bad-field-number": "an invalid field number",
    # protobuf merges a singular message field that appears twice: the walk
    # would check two halves that ONNX Runtime sees as one.
    "repeated-field": "a singular message field (a graph, a tensor) that appears twice",
    "too-many-nodes": f"more than {MAX_NODES:,} nodes",
    "too-many-attributes": f"a node with more than {MAX_ATTRIBUTES:,} attributes",
    "too-many-initializers": f"a graph with more than {MAX_INITIALIZERS:,} initializers",
    "too-many-op-types": f"more than {MAX_OP_TYPES:,} distinct op types",
    "too-many-opset-imports": f"more than {MAX_OPSET_IMPORTS} opset imports",
    "quantization-parameters": "a (De)QuantizeLinear scale or zero point that is not an "
    "initializer of its graph of type float32 (scale) or int8/uint8 (zero point; int32 for "
    "a dequantised bias), is a graph input too, or a scale not finite or outside [1e-30, 1e4]",
    # The bounded scan (scan_file, check_bytes) runs in a child process under a budget.
    "over-budget": "scanning the file went over its CPU, memory or time budget",
}


# --- allowlist --------------------------------------------------------------


def _parse_allowlist(text: str, source: str) -> frozenset[str]:
    ops: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not line.isidentifier():
            raise InputFileError(
                f"{source}:{lineno}: {line!r} is not an op name: write one op type per line"
            )
        ops.add(line)
    return frozenset(ops)


@functools.cache
def _default_allowlist() -> frozenset[str]:
    resource = resources.files("vmafx_saliency.supply").joinpath("allowlist.txt")
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputFileError(
            f"the packaged allowlist {resource} cannot be read ({exc}): reinstall vmafx-saliency"
        ) from exc
    return _parse_allowlist(text, "allowlist.txt")


def load_allowlist(path: Path | None = None) -> frozenset[str]:
    """Op types allowed in a model: one per line, ``#`` comments and blank lines ignored.

    Without ``path``, the ``allowlist.txt`` shipped beside this module.
    """
    if path is None:
        return _default_allowlist()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"allowlist {path} cannot be read ({exc}): pass an existing UTF-8 text file"
        ) from exc
    return _parse_allowlist(text, str(path))


# --- walk -------------------------------------------------------------------


class _Walker:
    def __init__(self, data: bytes, allowlist: frozenset[str]) -> None:
        self.data = data
        self.allowlist = allowlist
        self.ops: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self.omitted = 0
        self.loops = 0
        self.nodes = 0
        self.opset_imports = 0
        self.saw_ir_version = False
        self.saw_graph = False
        # The (De)QuantizeLinear parameters of the graph being walked, checked at
        # its end against its initializers: (node offset, role, name digest, types).
        self.qdq: list[list[QdqInput]] = []
        # The initializer names (digests) of each graph being walked, read before its
        # nodes: a node output of the same name would replace the value checked.
        self.initializers: list[frozenset[bytes]] = []

    def flag(self, kind: str, detail: str, offset: int | None) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(Violation(kind, detail, offset))
        else:
            self.omitted += 1

    def once(self, seen: set[int], f: _Field, what: str) -> None:
        """Refuse a singular message field met twice in one message: protobuf merges them."""
        if f.number in seen:
            self.flag(
                "repeated-field",
                f"{what} at byte {f.tag_offset} appears a second time in its message: "
                "protobuf (and ONNX Runtime) would merge the two into one; re-export the model",
                f.tag_offset,
            )
        seen.add(f.number)

    def count_op(self, op: str, offset: int) -> None:
        if op not in self.ops and len(self.ops) >= MAX_OP_TYPES:
            raise _over("too-many-op-types", offset, f"op type {op!r}", MAX_OP_TYPES)
        self.ops[op] += 1

    def slice(self, f: _Field) -> bytes:
        # Only names go through here; the copy is capped so a huge name costs
        # little (a name over the cap matches no allowlist entry anyway).
        return self.data[f.a : min(f.b, f.a + _MAX_NAME + 1)]

    def model(self) -> None:
        data, end = self.data, len(self.data)
        seen: set[int] = set()
        for f in _fields(data, 0, end):
            if f.number == _MODEL_IR_VERSION:
                _expect(f, _VARINT, "ModelProto.ir_version")
                self.saw_ir_version = True
            elif f.number == _MODEL_GRAPH:
                _expect(f, _LEN, "ModelProto.graph")
                self.once(seen, f, "ModelProto.graph")
                self.saw_graph = True
                self.graph(f.a, f.b, 0)
            elif f.number == _MODEL_OPSET_IMPORT:
                _expect(f, _LEN, "ModelProto.opset_import")
                self.opset_import(f.a, f.b)
            elif f.number == _MODEL_TRAINING_INFO:
                # ONNX Runtime does not run training graphs, but a model that
                # carries them is checked as strictly as its main graph.
                _expect(f, _LEN, "ModelProto.training_info")
                self.training_info(f.a, f.b)
            elif f.number == _MODEL_FUNCTIONS:
                # A model-local function can stand in for an op; its body runs.
                _expect(f, _LEN, "ModelProto.functions")
                self.function(f.a, f.b)

    def opset_import(self, start: int, end: int) -> None:
        self.opset_imports += 1
        if self.opset_imports > MAX_OPSET_IMPORTS:
            raise _over("too-many-opset-imports", start, "opset import", MAX_OPSET_IMPORTS)
        domain = b""
        for f in _fields(self.data, start, end):
            if f.number == _OPSET_DOMAIN:
                _expect(f, _LEN, "OperatorSetIdProto.domain")
                domain = self.slice(f)
        if domain not in _DEFAULT_DOMAINS:
            self.flag(
                "custom-domain",
                f"opset_import at byte {start} declares the custom op domain "
                f"{_show(domain)!r}: only the default ONNX domain is allowed; "
                "export the model without custom ops",
                start,
            )

    def training_info(self, start: int, end: int) -> None:
        seen: set[int] = set()
        for f in _fields(self.data, start, end):
            if f.number in (_TRAINING_INITIALIZATION, _TRAINING_ALGORITHM):
                _expect(f, _LEN, "TrainingInfoProto graph")
                self.once(seen, f, "TrainingInfoProto graph")
                self.graph(f.a, f.b, 0)

    def function(self, start: int, end: int) -> None:
        self.qdq.append([])  # a function has no initializers: its Q/DQ parameters fail
        self.initializers.append(frozenset())
        for f in _fields(self.data, start, end):
            if f.number == _FUNCTION_NODE:
                _expect(f, _LEN, "FunctionProto.node")
                self.node(f.a, f.b, 0)
            elif f.number == _FUNCTION_OPSET_IMPORT:
                _expect(f, _LEN, "FunctionProto.opset_import")
                self.opset_import(f.a, f.b)
            elif f.number == _FUNCTION_ATTRIBUTE_PROTO:
                _expect(f, _LEN, "FunctionProto.attribute_proto")
                self.attribute(f.a, f.b, 0)
        self.check_qdq({}, frozenset())
        self.initializers.pop()

    def graph(self, start: int, end: int, depth: int) -> None:
        names: dict[bytes, Initializer] = {}  # by name digest
        inputs: set[bytes] = set()  # graph input name digests
        nodes = initializers = 0
        self.qdq.append([])
        self.initializers.append(self.initializer_names(start, end))
        for f in _fields(self.data, start, end):
            if f.number == _GRAPH_NODE:
                _expect(f, _LEN, "GraphProto.node")
                nodes += 1
                self.node(f.a, f.b, depth)
            elif f.number == _GRAPH_INITIALIZER:
                _expect(f, _LEN, "GraphProto.initializer")
                initializers += 1
                if initializers > MAX_INITIALIZERS:
                    raise _over("too-many-initializers", f.a, "initializer", MAX_INITIALIZERS)
                name, digest, data_type = self.tensor(f.a, f.b)
                if digest in names:
                    # ONNX Runtime keeps the last copy, other readers the first: the
                    # weights reviewed need not be the weights run.
                    self.flag(
                        "duplicate-initializer",
                        f"initializer {_show(name)!r} at byte {f.a} is the second of that "
                        "name in its graph: re-export the model, one tensor per name",
                        f.a,
                    )
                names[digest] = (data_type, f.a, f.b)
            elif f.number == _GRAPH_INPUT and f.wire_type == _LEN:
                for g in _fields(self.data, f.a, f.b):
                    if g.number == _VALUE_INFO_NAME and g.wire_type == _LEN:
                        inputs.add(hashlib.sha256(memoryview(self.data)[g.a : g.b]).digest())
            elif f.number == _GRAPH_SPARSE_INITIALIZER:
                _expect(f, _LEN, "GraphProto.sparse_initializer")
                self.sparse_tensor(f.a, f.b)
        self.check_qdq(names, frozenset(inputs))
        self.initializers.pop()
        if depth > 0 and nodes == 0:
            # ONNX Runtime checks RunOptions.terminate between nodes only: a Loop over
            # an empty body could not be stopped by the contract probe's time limit.
            self.flag(
                "empty-subgraph",
                f"subgraph at byte {start} has no nodes: a Loop over it could run for ever "
                "unstoppably; export the model without it",
                start,
            )

    def node(self, start: int, end: int, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _over("too-many-nodes", start, "node", MAX_NODES)
        op_raw = b""
        domain = b""
        attributes = 0
        # Protobuf keeps the last value of a repeated singular field, so the
        # last op_type / domain is the one ONNX Runtime sees.
        for f in _fields(self.data, start, end):
            if f.number == _NODE_OP_TYPE:
                _expect(f, _LEN, "NodeProto.op_type")
                op_raw = self.slice(f)
            elif f.number == _NODE_DOMAIN:
                _expect(f, _LEN, "NodeProto.domain")
                domain = self.slice(f)
            elif f.number == _NODE_ATTRIBUTE:
                _expect(f, _LEN, "NodeProto.attribute")
                attributes += 1
                if attributes > MAX_ATTRIBUTES:
                    raise _over("too-many-attributes", f.a, "attribute", MAX_ATTRIBUTES)
        op = _show(op_raw)
        self.check_op(op, domain, start)
        qdq = op in QDQ_PARAMETERS and domain in _DEFAULT_DOMAINS
        # A second pass over the node, not a list of its attributes: memory
        # stays flat whatever the count.
        index = 0
        for f in _fields(self.data, start, end):
            if f.number == _NODE_ATTRIBUTE:
                self.attribute(f.a, f.b, depth)
            elif f.number == _NODE_OUTPUT and f.wire_type == _LEN:
                self.check_output(start, f)
            elif f.number == _NODE_INPUT and qdq:
                _expect(f, _LEN, "NodeProto.input")
                noted = qdq_input(op, index, start, memoryview(self.data)[f.a : f.b])
                if noted is not None:
                    self.qdq[-1].append(noted)
                index += 1
        if qdq and index < 2:
            self.flag(
                "quantization-parameters",
                f"{op} at byte {start} has no scale input: re-export the quantised model",
                start,
            )

    def initializer_names(self, start: int, end: int) -> frozenset[bytes]:
        """The name digests of a graph's initializers (bounded by MAX_INITIALIZERS)."""
        found: set[bytes] = set()
        for f in _fields(self.data, start, end):
            if f.number == _GRAPH_INITIALIZER and f.wire_type == _LEN:
                if len(found) >= MAX_INITIALIZERS:
                    break  # the walk itself stops there with too-many-initializers
                for g in _fields(self.data, f.a, f.b):
                    if g.number == _TENSOR_NAME and g.wire_type == _LEN:
                        found.add(hashlib.sha256(memoryview(self.data)[g.a : g.b]).digest())
        return frozenset(found)

    def check_output(self, start: int, f: _Field) -> None:
        digest = hashlib.sha256(memoryview(self.data)[f.a : f.b]).digest()
        if digest in self.initializers[-1]:
            self.flag(
                "duplicate-initializer",
                f"the node at byte {start} writes {_show(self.slice(f))!r}, the name of an "
                "initializer of its graph: ONNX Runtime runs the node's value, not the one "
                "checked; re-export the model with distinct names",
                start,
            )

    def check_qdq(self, initializers: dict[bytes, Initializer], inputs: frozenset[bytes]) -> None:
        """The Q/DQ parameters of the graph just walked (:func:`scan_qdq.qdq_problems`)."""
        for start, detail in qdq_problems(self.data, self.qdq.pop(), initializers, inputs):
            self.flag("quantization-parameters", detail, start)

    def check_op(self, op: str, domain: bytes, start: int) -> None:
        if domain in _DEFAULT_DOMAINS:
            self.count_op(op, start)
            if op not in self.allowlist:
                self.flag(
                    "disallowed-op",
                    f"op {op!r} at byte {start} is not on the allowlist: export the model "
                    "with allowlisted ops only, or review the op and add it to allowlist.txt",
                    start,
                )
            elif op == "Loop":
                self.loops += 1
                if self.loops == MAX_LOOPS + 1:
                    self.flag(
                        "too-many-loops",
                        f"Loop node at byte {start} is Loop number {self.loops}, over the "
                        f"limit of {MAX_LOOPS} per model: simplify the model's control flow",
                        start,
                    )
        else:
            self.count_op(f"{_show(domain)}:{op}", start)
            self.flag(
                "custom-domain",
                f"node {op!r} at byte {start} uses the custom op domain {_show(domain)!r}: "
                "only the default ONNX domain is allowed; export the model without custom ops",
                start,
            )

    def attribute(self, start: int, end: int, depth: int) -> None:
        seen: set[int] = set()
        singular = {
            _ATTR_G: "AttributeProto.g",
            _ATTR_T: "AttributeProto.t",
            _ATTR_SPARSE_TENSOR: "AttributeProto.sparse_tensor",
        }
        for f in _fields(self.data, start, end):
            if f.number in singular:
                self.once(seen, f, singular[f.number])
            if f.number in (_ATTR_G, _ATTR_GRAPHS):
                _expect(f, _LEN, "AttributeProto.g/graphs")
                self.subgraph(f.a, f.b, depth + 1)
            elif f.number in (_ATTR_T, _ATTR_TENSORS):
                _expect(f, _LEN, "AttributeProto.t/tensors")
                self.tensor(f.a, f.b)
            elif f.number in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                _expect(f, _LEN, "AttributeProto.sparse_tensor(s)")
                self.sparse_tensor(f.a, f.b)

    def subgraph(self, start: int, end: int, depth: int) -> None:
        if depth > MAX_NESTING:
            # Not descending is what bounds the recursion.
            self.flag(
                "nesting-too-deep",
                f"subgraph at byte {start} is nested {depth} levels deep, over the limit "
                f"of {MAX_NESTING}: flatten the model's control flow",
                start,
            )
            return
        self.graph(start, end, depth)

    def sparse_tensor(self, start: int, end: int) -> None:
        # A few bytes of indices can declare gigabytes that ONNX Runtime fills in at
        # load; neither shipped model has one.
        self.flag(
            "sparse-tensor",
            f"sparse tensor at byte {start}: ONNX Runtime expands it to its full dense size "
            "when it loads the model; save the model with dense tensors",
            start,
        )
        seen: set[int] = set()
        for f in _fields(self.data, start, end):
            if f.number in (_SPARSE_VALUES, _SPARSE_INDICES):
                _expect(f, _LEN, "SparseTensorProto.values/indices")
                self.once(seen, f, "SparseTensorProto.values/indices")
                self.tensor(f.a, f.b)

    def tensor(self, start: int, end: int) -> tuple[bytes, bytes, int]:
        """Check one tensor; its name (capped, as :meth:`slice` gives it), the
        sha256 of the whole name (two long names may share the capped part) and
        its data type (0 when unset)."""
        external = False
        data_type = 0
        name = b""
        digest = hashlib.sha256(b"").digest()
        for f in _fields(self.data, start, end):
            if f.number == _TENSOR_EXTERNAL_DATA:
                _expect(f, _LEN, "TensorProto.external_data")
                external = True
            elif f.number == _TENSOR_DATA_LOCATION:
                _expect(f, _VARINT, "TensorProto.data_location")
                external = external or f.a == _DATA_LOCATION_EXTERNAL
            elif f.number == _TENSOR_DATA_TYPE and f.wire_type == _VARINT:
                data_type = f.a
            elif f.number == _TENSOR_NAME and f.wire_type == _LEN:
                name = self.slice(f)
                digest = hashlib.sha256(memoryview(self.data)[f.a : f.b]).digest()
        if external:
            self.flag(
                "external-data",
                f"tensor {_show(name)!r} at byte {start} keeps its data in an external file: "
                "save the model with every tensor inline "
                "(onnx.save_model(model, path, save_as_external_data=False))",
                start,
            )
        return name, digest, data_type


def _not_onnx(detail: str) -> Violation:
    return Violation(
        "not-onnx",
        f"not an ONNX model: {detail}; pass an .onnx file exported by torch.onnx "
        "or saved by onnx.save_model",
        None,
    )


def scan_bytes(
    data: bytes, *, path: str | None = None, allowlist: frozenset[str] | None = None
) -> ScanReport:
    """Scan a serialized ModelProto; violations are reported, not raised."""
    allowed_ops = _default_allowlist() if allowlist is None else allowlist
    size = len(data)
    if size == 0:
        return ScanReport(path, 0, {}, (_not_onnx("the file is empty"),))
    walker = _Walker(bytes(data), allowed_ops)
    if size > 8 and data[4:8] == _ORT_IDENTIFIER:
        walker.flag(
            "ort-format",
            "bytes 4-7 are the ORT-format identifier 'ORTM', so ONNX Runtime would load "
            "the file as an ORT-format model, not the ModelProto scanned here: "
            "use a plain .onnx export",
            4,
        )
    stop: _Stop | None = None
    try:
        walker.model()
    except _Stop as exc:
        stop = exc
    ops = dict(sorted(walker.ops.items()))
    if stop is not None and not walker.saw_ir_version:
        # Every serializer writes ir_version (field 1) first: bytes that break
        # before it are something else, and their "violations" are noise.
        reason = f"{stop.what} at byte {stop.offset}"
        return ScanReport(path, size, {}, (_not_onnx(f"no ModelProto ({reason})"),))
    if stop is None and not (walker.saw_ir_version and walker.saw_graph):
        missing = " and ".join(
            name
            for name, seen in (("ir_version", walker.saw_ir_version), ("graph", walker.saw_graph))
            if not seen
        )
        return ScanReport(path, size, {}, (_not_onnx(f"no ModelProto {missing}"),))
    violations = list(walker.violations)
    if stop is not None:
        violations.append(stop.violation())
    return ScanReport(path, size, ops, tuple(violations), walker.omitted)


def scan_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    allowlist: frozenset[str] | None = None,
) -> ScanReport:
    """Scan a file; the size cap is checked on the opened file before any byte is read.

    A missing or non-regular file raises :class:`InputFileError`; everything
    about the content comes back as violations in the report.
    """
    path = Path(path)
    cap = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    if cap < 0:
        raise UsageError(f"max_bytes must be >= 0, got {max_bytes}: pass a size cap in bytes")
    with open_regular(path, what="model", missing="check the path") as (fd, size):
        if size > cap:
            return _too_large(path, size, cap)
        data = read_opened(fd, size, name=f"model {path}")
    return scan_bounded(data, path=str(path), allowlist=allowlist)


def scan_bounded(
    data: bytes, *, path: str | None = None, allowlist: frozenset[str] | None = None
) -> ScanReport:
    """:func:`scan_bytes` in a child process under the model-handling budget.

    Within the size cap a hostile file can still make the walk take tens of
    seconds (millions of small fields); in the child it costs at most the
    budget (``VMAFX_SALIENCY_SCAN_SECONDS``, ``VMAFX_SALIENCY_PROBE_MEMORY_MIB``),
    and going over it is the violation ``over-budget``.
    """
    from vmafx_saliency.supply import probe

    return probe.scan_in_child(data, path=path, allowlist=allowlist)


def over_budget(path: str | None, size: int, why: str) -> ScanReport:
    """The report of a scan stopped by its budget: refused, with what to raise."""
    return ScanReport(path, size, {}, (Violation("over-budget", why, None),))


def _too_large(path: Path, size: int, cap: int) -> ScanReport:
    detail = (
        f"the file is {size:,} bytes, over the cap of {cap:,} bytes, and was not read: "
        "check that it is the right file, or raise the cap (--max-bytes / max_bytes)"
    )
    return ScanReport(str(path), size, {}, (Violation("file-too-large", detail, None),))


def check_bytes(
    data: bytes, *, path: str | None = None, allowlist: frozenset[str] | None = None
) -> ScanReport:
    """Scan (bounded, in a child) and raise the first violation's error; the report when clean."""
    report = scan_bounded(data, path=path, allowlist=allowlist)
    report.raise_for_violations()
    return report
