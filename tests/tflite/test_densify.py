"""DENSIFY-sparse tensors as payloads of their dense tensors (tfedge/tflite/_densify.py,
docs/FORMAT.md section 1.1): the index rebuilt from the dense tensor is the original's
bit for bit, for each index vector type and dimension format; tensors it would not
restore exactly are refused; a forged dense tensor whose index does not fit its vector
type is a FormatError naming the tensor. The whole-file path (compress, expand, the
Interpreter, hostile files) is in tests/test_hostile.py and tests/corpus."""

from __future__ import annotations

import numpy as np
import pytest

from tests._hostile import _buffer, _tensor
from tfedge.errors import FormatError
from tfedge.tflite import buffer_data, schema
from tfedge.tflite._densify import (
    INDEX_DTYPES,
    dense_from_sparse,
    restore_sparse,
    strip_index,
)

SEED = 0
DENSE, CSR = 0, 1
# (shape, formats per dimension)
LAYOUTS = [
    ((4, 6), (DENSE, CSR)),
    ((4, 6), (CSR, CSR)),
    ((3, 1, 1, 8), (DENSE, DENSE, DENSE, CSR)),
    ((5, 7), (CSR, DENSE)),
    ((9,), (CSR,)),
]


def _sparse_model(dense: np.ndarray, formats, kind: int):
    """A ModelT with tensor 0 the sparse form of `dense` (float32)."""
    s = schema()
    shape = dense.shape
    flat = dense.reshape(-1)
    nonzero = flat != 0
    entries = np.zeros(1, np.int64)
    size, total = 1, flat.size
    dims = []
    for i, (n, fmt) in enumerate(zip(shape, formats, strict=True)):
        d = s.DimensionMetadataT()
        d.format = fmt
        size *= n
        cand = (entries[:, None] * n + np.arange(n)).reshape(-1)
        if fmt == DENSE:
            d.denseSize = n
            entries = cand
        else:
            keep = nonzero.reshape(size, total // size).any(axis=1)[cand]
            counts = keep.reshape(-1, n).sum(axis=1)
            vec_class = {1: s.Int32VectorT, 2: s.Uint16VectorT, 3: s.Uint8VectorT}
            d.arraySegmentsType = d.arrayIndicesType = kind
            d.arraySegments, d.arrayIndices = vec_class[kind](), vec_class[kind]()
            d.arraySegments.values = np.concatenate([[0], np.cumsum(counts)]).astype(
                INDEX_DTYPES[kind]
            )
            d.arrayIndices.values = (cand[keep] % n).astype(INDEX_DTYPES[kind])
            entries = cand[keep]
        dims.append((i, d))
    m = s.ModelT()
    m.buffers = [_buffer(None), _buffer(flat[entries].astype(np.float32).tobytes())]
    sg = s.SubGraphT()
    t = _tensor("w_sparse", list(shape), 1)
    sp = s.SparsityParametersT()
    sp.traversalOrder = np.arange(len(shape), dtype=np.int32)
    sp.dimMetadata = [d for _i, d in dims]
    t.sparsity = sp
    sg.tensors = [t]
    m.subgraphs = [sg]
    return m


def _dense(shape, seed=SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) < 0.6] = 0
    return w


def _vectors(t):
    return [
        (
            int(d.arraySegmentsType),
            np.asarray(d.arraySegments.values).tobytes(),
            np.asarray(d.arrayIndices.values).tobytes(),
        )
        for d in t.sparsity.dimMetadata
        if d.format == CSR
    ]


@pytest.mark.parametrize("kind", sorted(INDEX_DTYPES), ids=["int32", "uint16", "uint8"])
@pytest.mark.parametrize("shape,formats", LAYOUTS, ids=str)
def test_index_rebuilt_bit_for_bit(shape, formats, kind):
    dense = _dense(shape)
    m = _sparse_model(dense, formats, kind)
    t = m.subgraphs[0].tensors[0]
    want_values = bytes(buffer_data(m, 1))
    want_vectors = _vectors(t)
    got_dense, why = dense_from_sparse(m, 0, 0)
    assert why == ""
    np.testing.assert_array_equal(got_dense.view(np.float32).reshape(shape), dense)
    strip_index(t)
    assert all(len(seg) == len(idx) == 0 for _k, seg, idx in _vectors(t))
    values = restore_sparse(m, m.subgraphs[0], 0, got_dense)
    assert values.tobytes() == want_values
    assert _vectors(t) == want_vectors


def test_stored_zero_is_refused():
    """An index that stores a zero element cannot be rebuilt from the non-zeros."""
    dense = _dense((4, 6))
    m = _sparse_model(dense, (DENSE, CSR), 3)
    values = np.frombuffer(bytes(buffer_data(m, 1)), np.float32).copy()
    values[0] = 0
    m.buffers[1] = _buffer(values.tobytes())
    dense_bytes, why = dense_from_sparse(m, 0, 0)
    assert dense_bytes is None and "stores" in why


def test_block_map_is_refused():
    m = _sparse_model(_dense((4, 6)), (DENSE, CSR), 3)
    m.subgraphs[0].tensors[0].sparsity.blockMap = np.asarray([1], np.int32)
    assert dense_from_sparse(m, 0, 0) == (None, "has a block map")


def test_index_past_its_vector_type_is_a_format_error():
    """A forged dense tensor: 300 non-zero columns in a uint8 index."""
    m = _sparse_model(_dense((1, 8)), (DENSE, CSR), 3)
    t = m.subgraphs[0].tensors[0]
    t.shape = np.asarray([1, 300], np.int32)
    strip_index(t)
    dense = np.ones(300, np.float32).view(np.uint8)
    with pytest.raises(FormatError, match="w_sparse.*beyond its uint8 vector"):
        restore_sparse(m, m.subgraphs[0], 0, dense)
