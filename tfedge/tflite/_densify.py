"""DENSIFY-sparse tensors as payloads (docs/FORMAT.md section 1.1), both ways.

TFLite's own sparse format keeps a constant tensor S's stored values in its buffer and
its index (per dimension `array_segments` and `array_indices`) in the flatbuffer's
tables; a DENSIFY operator turns S into the dense tensor D. tfedge packs D instead: the
DENSIFY operator becomes, in place, a TFEDGE_DECODE operator whose payload decodes to D
and whose custom options name S; S keeps its tensor, its buffer index and its
`sparsity` table with every index vector emptied (their vector types kept). The index
is a function of D's non-zero elements and the emptied table (`restore_sparse`), so
expanding gives back S's values and index exactly; the packer offers the layout only
for tensors where it does (`dense_from_sparse` checks the round trip).

Supported: identity traversal order, no block map, every dimension DENSE (its
`dense_size` the shape's) or SPARSE_CSR. Anything else stays as it was.
"""

from __future__ import annotations

import struct

import numpy as np

from tfedge.errors import FormatError
from tfedge.tflite._model import TYPES, buffer_data, tensor_name
from tfedge.tflite._schema import schema

# The custom options of a densify decoder: the sparse tensor's index, u32 little-endian.
DENSIFY_OPTIONS_SIZE = 4
DENSE, SPARSE_CSR = 0, 1
# SparseIndexVector union type -> the element dtype of its vector.
INDEX_DTYPES = {1: np.dtype("<i4"), 2: np.dtype("<u2"), 3: np.dtype("u1")}
# The file format version of a model with a densify decoder (docs/FORMAT.md section 4).
DENSIFY_FORMAT_VERSION = 4
# The most dimensions of a sparse tensor tfedge rebuilds: each sparse dimension costs a
# pass over the dense tensor, so a forged rank must not multiply the work (TFLite's
# kernels take at most 6 dimensions; real sparse tensors have 1 to 4).
MAX_SPARSE_RANK = 16


def densify_options(sparse_index: int) -> np.ndarray:
    return np.frombuffer(struct.pack("<I", sparse_index), np.uint8).copy()


def densify_target(op) -> int | None:
    """The sparse tensor a TFEDGE_DECODE operator's custom options name, None for an
    ordinary decoder (no custom options)."""
    raw = op.customOptions
    if raw is None or np.asarray(raw).size == 0:
        return None
    raw = np.asarray(raw, np.uint8).reshape(-1)
    if raw.size != DENSIFY_OPTIONS_SIZE:
        return -1  # malformed; check_densify names it
    return int(struct.unpack("<I", raw.tobytes())[0])


def _vectors(dim):
    return (
        ("array_segments", dim.arraySegmentsType, dim.arraySegments),
        ("array_indices", dim.arrayIndicesType, dim.arrayIndices),
    )


def check_sparsity(t, shape: list[int], *, packed: bool) -> str:
    """Why tensor `t`'s sparsity is not of the supported kind ("" when it is).
    `packed`: the index vectors must be empty (a packed file), else present."""
    sp = t.sparsity
    if sp is None:
        return "has no sparsity table"
    rank = len(shape)
    if rank > MAX_SPARSE_RANK:
        return f"has rank {rank}, over the {MAX_SPARSE_RANK} dimensions tfedge rebuilds"
    order = [] if sp.traversalOrder is None else [int(v) for v in sp.traversalOrder]
    if order != list(range(rank)):
        return f"traversal order {order} is not the identity of rank {rank}"
    if sp.blockMap is not None and np.asarray(sp.blockMap).size:
        return "has a block map"
    dims = sp.dimMetadata or []
    if len(dims) != rank:
        return f"has {len(dims)} dimension metadata entries for rank {rank}"
    for i, d in enumerate(dims):
        if d.format == DENSE:
            if int(d.denseSize) != shape[i]:
                return (
                    f"dimension {i} is dense of size {d.denseSize}, shape has "
                    f"{shape[i]}"
                )
            if d.arraySegmentsType or d.arrayIndicesType:
                return f"dimension {i} is dense but has index vectors"
        elif d.format == SPARSE_CSR:
            for what, kind, vec in _vectors(d):
                if kind not in INDEX_DTYPES:
                    return f"dimension {i}'s {what} has vector type {kind}"
                values = None if vec is None else vec.values
                size = 0 if values is None or np.isscalar(values) else values.size
                if packed and size:
                    return f"dimension {i}'s {what} holds {size} entries, expected none"
                if not packed and vec is None:
                    return f"dimension {i}'s {what} is missing"
        else:
            return f"dimension {i} has format {d.format}"
    return ""


def _levels(sp, shape: list[int], dense_nonzero: np.ndarray):
    """The index of every CSR dimension for the stored positions implied by the
    non-zero mask (flat, row-major), and the stored leaves' flat positions."""
    entries = np.zeros(1, np.int64)
    size = 1
    out = []
    total = int(np.prod(shape, dtype=np.int64)) if shape else 1
    for i, d in enumerate(sp.dimMetadata):
        n = shape[i]
        size *= n
        cand = (entries[:, None] * n + np.arange(n, dtype=np.int64)).reshape(-1)
        if d.format == DENSE:
            entries = cand
            continue
        below = dense_nonzero.reshape(size, total // size if size else 0).any(axis=1)
        keep = below[cand] if cand.size else np.zeros(0, bool)
        counts = keep.reshape(entries.size, n).sum(axis=1) if entries.size else []
        segments = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        indices = cand[keep] % n if n else cand[keep]
        out.append((i, segments, indices))
        entries = cand[keep]
    return out, entries


def restore_sparse(model, sg, s_index: int, dense: np.ndarray) -> np.ndarray:
    """Fills the emptied index vectors of tensor `s_index` from the dense tensor's
    bytes and returns its stored values' bytes. Raises FormatError when an index does
    not fit its vector type."""
    t = sg.tensors[s_index]
    name = tensor_name(t)
    shape = [int(v) for v in t.shape]
    es = TYPES[t.type].itemsize
    elements = np.asarray(dense, np.uint8).reshape(-1, es)
    nonzero = elements.any(axis=1)
    s = schema()
    levels, leaves = _levels(t.sparsity, shape, nonzero)
    for i, segments, indices in levels:
        d = t.sparsity.dimMetadata[i]
        for what, kind, arr in (
            ("array_segments", d.arraySegmentsType, segments),
            ("array_indices", d.arrayIndicesType, indices),
        ):
            dtype = INDEX_DTYPES[kind]
            if arr.size and int(arr.max()) > np.iinfo(dtype).max:
                raise FormatError(
                    f"the decoded tensor's non-zero elements give dimension {i}'s "
                    f"{what} an entry {int(arr.max())}, beyond its {dtype.name} vector",
                    tensor=name,
                )
            vec = {1: s.Int32VectorT, 2: s.Uint16VectorT, 3: s.Uint8VectorT}[kind]()
            vec.values = arr.astype(dtype)
            if what == "array_segments":
                d.arraySegments = vec
            else:
                d.arrayIndices = vec
    return elements[leaves].reshape(-1)


def _index_vectors(t):
    out = []
    for d in t.sparsity.dimMetadata:
        for _what, _kind, vec in _vectors(d) if d.format == SPARSE_CSR else ():
            out.append(np.asarray(vec.values).reshape(-1).astype(np.int64))
    return out


def dense_from_sparse(model, si: int, s_index: int) -> tuple[np.ndarray | None, str]:
    """(D's bytes, "") when tensor `s_index` of subgraph `si` is a sparse tensor the
    densify layout restores exactly, else (None, why not)."""
    sg = model.subgraphs[si]
    t = sg.tensors[s_index]
    shape = [int(v) for v in (t.shape if t.shape is not None else [])]
    why = check_sparsity(t, shape, packed=False)
    if why:
        return None, why
    info = TYPES.get(t.type)
    if info is None or info.itemsize == 0:
        return None, f"type {t.type} has no fixed element size"
    es = info.itemsize
    values = buffer_data(model, t.buffer).reshape(-1)
    if values.size % es:
        return None, "its buffer is not a whole number of elements"
    values = values.reshape(-1, es)
    entries = np.zeros(1, np.int64)
    for i, d in enumerate(t.sparsity.dimMetadata):
        n = shape[i]
        if d.format == DENSE:
            entries = (entries[:, None] * n + np.arange(n, dtype=np.int64)).reshape(-1)
            continue
        seg = np.asarray(d.arraySegments.values).reshape(-1).astype(np.int64)
        idx = np.asarray(d.arrayIndices.values).reshape(-1).astype(np.int64)
        if (
            seg.size != entries.size + 1
            or seg[0] != 0
            or np.any(np.diff(seg) < 0)
            or seg[-1] != idx.size
            or (idx.size and (idx.min() < 0 or idx.max() >= n))
        ):
            return None, f"dimension {i}'s index is not a valid CSR index"
        entries = np.repeat(entries, np.diff(seg)) * n + idx
    if entries.size != values.shape[0]:
        return None, "its index and values disagree in count"
    total = int(np.prod(shape, dtype=np.int64)) if shape else 1
    dense = np.zeros((total, es), np.uint8)
    dense[entries] = values
    # The round trip: the index the non-zero elements imply must be the original's.
    original = _index_vectors(t)
    levels, leaves = _levels(t.sparsity, shape, dense.any(axis=1))
    again = [a for _i, seg, idx in levels for a in (seg, idx)]
    if len(again) != len(original) or not all(
        np.array_equal(a, b) for a, b in zip(again, original, strict=True)
    ):
        return (
            None,
            "stores zero elements or empty rows that its non-zeros do not imply",
        )
    if not np.array_equal(leaves, entries):
        return None, "stores elements its non-zeros do not imply"
    return dense.reshape(-1), ""


def strip_index(t) -> None:
    """Empties tensor `t`'s index vectors, keeping their vector types."""
    s = schema()
    for d in t.sparsity.dimMetadata:
        if d.format != SPARSE_CSR:
            continue
        for kind, attr in (
            (d.arraySegmentsType, "arraySegments"),
            (d.arrayIndicesType, "arrayIndices"),
        ):
            vec = {1: s.Int32VectorT, 2: s.Uint16VectorT, 3: s.Uint8VectorT}[kind]()
            vec.values = np.zeros(0, INDEX_DTYPES[kind])
            setattr(d, attr, vec)


def plain_densify_op(op) -> bool:
    """True for a DENSIFY operator with nothing but its one input and output (what
    expand writes back)."""
    return (
        np.asarray(op.inputs).size == 1
        and np.asarray(op.outputs).size == 1
        and not op.builtinOptionsType
        and op.builtinOptions is None
        and op.customOptions is None
        and op.mutatingVariableInputs is None
        and op.intermediates is None
        and not op.largeCustomOptionsOffset
        and not op.largeCustomOptionsSize
        and not getattr(op, "builtinOptions2Type", 0)
        and getattr(op, "debugMetadataIndex", -1) == -1
    )


def densify_op(opcode: int, s_index: int, d_index: int):
    s = schema()
    op = s.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.asarray([s_index], np.int32)
    op.outputs = np.asarray([d_index], np.int32)
    return op


def densify_sources(model) -> dict[int, tuple[np.ndarray | None, str]]:
    """Sparse buffer index -> (D's bytes, "") for each constant sparse tensor the
    densify layout packs exactly, or (None, why not) for one it does not."""
    s = schema()
    buffers: dict[int, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            buffers[t.buffer] = buffers.get(t.buffer, 0) + 1
    out: dict[int, tuple[np.ndarray | None, str]] = {}
    for si, sg in enumerate(model.subgraphs):
        consumers: dict[int, int] = {}
        for op in sg.operators or []:
            for i in np.asarray(op.inputs if op.inputs is not None else []).reshape(-1):
                consumers[int(i)] = consumers.get(int(i), 0) + 1
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            if (
                max(code.builtinCode, code.deprecatedBuiltinCode)
                != s.BuiltinOperator.DENSIFY
            ):
                continue
            if not plain_densify_op(op):
                continue
            s_index = int(np.asarray(op.inputs).reshape(-1)[0])
            d_index = int(np.asarray(op.outputs).reshape(-1)[0])
            t, d = sg.tensors[s_index], sg.tensors[d_index]
            if t.sparsity is None or t.buffer <= 0:
                continue
            why = ""
            if buffers.get(t.buffer, 0) != 1 or consumers.get(s_index, 0) != 1:
                why = "its buffer or tensor is shared"
            elif d.type != t.type or list(np.asarray(d.shape)) != list(
                np.asarray(t.shape)
            ):
                why = "DENSIFY changes its type or shape"
            elif (
                d.buffer <= 0
                or buffer_data(model, d.buffer).size
                or buffers[d.buffer] != 1
            ):
                why = "the DENSIFY output's buffer is not its own empty one"
            if why:
                out[t.buffer] = (None, why)
                continue
            out[t.buffer] = dense_from_sparse(model, si, s_index)
    return out


def densify_opcode(model) -> int | None:
    """Index of the model's DENSIFY operator code, None without one."""
    dense = schema().BuiltinOperator.DENSIFY
    for i, code in enumerate(model.operatorCodes or []):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == dense:
            return i
    return None


def check_densify_ops(model, ops, version: int | None) -> dict[tuple[int, int], int]:
    """The static checks of every densify decoder (docs/FORMAT.md section 1.1);
    returns (subgraph, operator) -> sparse tensor index."""
    out: dict[tuple[int, int], int] = {}
    refs: dict[int, int] = {}
    for sg in model.subgraphs:
        for t in sg.tensors or []:
            refs[t.buffer] = refs.get(t.buffer, 0) + 1
    n_buffers = len(model.buffers or [])
    seen: set[tuple[int, int]] = set()
    for si, oi, p_index, w_index in ops:
        sg = model.subgraphs[si]
        target = densify_target(sg.operators[oi])
        if target is None:
            continue
        name = tensor_name(sg.tensors[w_index])
        where = f"subgraph {si} operator {oi}: the densify decoder"
        if target < 0:
            size = np.asarray(sg.operators[oi].customOptions).size
            raise FormatError(
                f"{where} has {size} bytes of custom options; a densify decoder's are "
                f"{DENSIFY_OPTIONS_SIZE} (the sparse tensor's index)",
                tensor=name,
            )
        if version is None or version < DENSIFY_FORMAT_VERSION:
            raise FormatError(
                f"{where} is in a file of format version {version}; densify decoders "
                f"need version {DENSIFY_FORMAT_VERSION}",
                tensor=name,
            )
        if not 0 <= target < len(sg.tensors) or target in (p_index, w_index):
            raise FormatError(
                f"{where} names sparse tensor {target}, which is not another tensor "
                f"of the subgraph ({len(sg.tensors)} tensors)",
                tensor=name,
            )
        if (si, target) in seen:
            raise FormatError(
                f"{where} names sparse tensor {target}, which another decoder names",
                tensor=name,
            )
        seen.add((si, target))
        sparse_t, dense_t = sg.tensors[target], sg.tensors[w_index]
        sparse_name = tensor_name(sparse_t)
        shape = [int(v) for v in (sparse_t.shape if sparse_t.shape is not None else [])]
        dense_shape = [
            int(v) for v in (dense_t.shape if dense_t.shape is not None else [])
        ]
        if sparse_t.type != dense_t.type or shape != dense_shape:
            raise FormatError(
                f"{where}: the sparse tensor has type {sparse_t.type} and shape "
                f"{shape}, its dense tensor {name!r} type {dense_t.type} and shape "
                f"{dense_shape}; they must be equal",
                tensor=sparse_name,
            )
        why = check_sparsity(sparse_t, shape, packed=True)
        if why:
            raise FormatError(f"{where}: the sparse tensor {why}", tensor=sparse_name)
        b = sparse_t.buffer
        if not 1 <= b < n_buffers or refs.get(b, 0) != 1 or buffer_data(model, b).size:
            raise FormatError(
                f"{where}: the sparse tensor's buffer {b} must be an empty buffer of "
                f"its own (1 .. {n_buffers - 1}) to take its values",
                tensor=sparse_name,
            )
        if densify_opcode(model) is None:
            raise FormatError(
                f"{where}: the model has no DENSIFY operator code to restore",
                tensor=sparse_name,
            )
        out[(si, oi)] = target
    return out


def index_data(t) -> bytes:
    """Tensor `t`'s sparsity index vectors as the tables store them (each in its
    vector's element type, little-endian), in dimension order; empty without them."""
    if t.sparsity is None:
        return b""
    return b"".join(
        np.asarray(vec.values).reshape(-1).astype(INDEX_DTYPES[kind]).tobytes()
        for d in t.sparsity.dimMetadata or []
        if d.format == SPARSE_CSR
        for _w, kind, vec in _vectors(d)
        if vec is not None and vec.values is not None
    )


def index_bytes(t) -> int:
    """Bytes of tensor `t`'s sparsity index vectors."""
    return len(index_data(t))
