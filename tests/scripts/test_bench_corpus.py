"""scripts/bench_corpus.py without ai-edge-quantizer: the weight spans it measures, the
opcode copy it hands the quantizer, the shared inputs and one whole row."""

from __future__ import annotations

import lzma

import numpy as np
import pytest

from tests._scripts import load_script
from tfedge.pack._compress import GROW_HELD_OUT
from tfedge.tflite import buffer_data, read, tensor_name, write


@pytest.fixture(scope="module")
def bench():
    return load_script("bench_corpus.py", "bench_corpus")


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("dense_f32", "float32"), ("conv_f16", "float16"), ("conv_int8", "int8")],
)
def test_constant_buffers_are_the_tensor_buffers_in_file_order(
    bench, tflite_model, name, dtype
):
    data = tflite_model(name)
    model = read(data)
    spans = bench.constant_buffers(data)
    starts = [s for s, _, _ in spans]
    assert starts == sorted(starts)
    used = {
        t.buffer
        for sg in model.subgraphs
        for t in sg.tensors
        if t.buffer > 0 and buffer_data(model, t.buffer).size
    }
    expected = sorted(bytes(buffer_data(model, b)) for b in used)
    got = sorted(data[s : s + n] for s, n, _ in spans)
    assert got == expected
    assert bench.weight_dtype(spans) == dtype


def test_compressor_sizes_are_their_outputs(bench, tflite_model):
    data = tflite_model("dense_f32")
    assert bench.xz_bytes(data) == len(
        lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    )
    for size in (bench.gzip_bytes(data), bench.zstd_bytes(data)):
        assert 0 < size < len(data)


def test_order0_floors_per_buffer(bench):
    """Entropy of each buffer's own bytes, and that plus (K - 1)/2 log2 n bits of
    learning cost, capped at the buffer's size; summed over buffers."""
    data = bytes(range(4)) * 64 + bytes([7]) * 100 + bytes(range(256))
    spans = [(0, 256, "int8"), (256, 100, "int8"), (356, 256, "int8")]
    order0, learned = bench.order0_floors(data, spans)
    # 2 bits x 256 bytes; a constant buffer costs nothing; 256 distinct bytes 8 bits.
    assert order0 == 64 + 0 + 256
    # (4 - 1)/2 x 8 bits = 1.5 bytes; (1 - 1) x ... = 0; the uniform one is capped.
    assert learned == round(64 + 1.5 + 0 + 256)


def test_builtin_code_is_filled_from_the_deprecated_field(bench, tflite_model):
    data = tflite_model("dense_f32")
    assert bench.for_the_quantizer(data) is data
    model = read(data)
    codes = [oc.deprecatedBuiltinCode for oc in model.operatorCodes]
    assert any(codes)
    for oc in model.operatorCodes:
        oc.builtinCode = 0  # as a file written before schema 3a has it
    fixed = read(bench.for_the_quantizer(write(model)))
    assert [oc.builtinCode for oc in fixed.operatorCodes] == codes


def test_tensor_names_are_made_unique_across_subgraphs(bench, tflite_model):
    model = read(tflite_model("two_subgraphs"))
    for t in model.subgraphs[1].tensors[:2]:
        t.name = model.subgraphs[0].tensors[0].name  # as control-flow models have
    data = write(model)
    fixed = bench.for_the_quantizer(data)
    renamed = [tensor_name(t) for sg in read(fixed).subgraphs for t in sg.tensors]
    assert len(set(renamed)) == len(renamed)
    ref = bench.Reference(data, num_samples=2, seed=0)
    assert ref.drift(fixed) == 0.0


def test_reference_inputs_in_range_and_self_drift_zero(bench, tflite_model):
    data = tflite_model("dense_f32")
    ref = bench.Reference(data, num_samples=4, seed=0, input_range=(0.0, 1.0))
    x = np.concatenate([s[0].ravel() for s in ref.samples[0]])
    assert 0.0 <= x.min() < 0.1 and 0.9 < x.max() <= 1.0
    # Search and held-out samples, then the spare held-out ones; compress gets them
    # all, and every drift is measured on them all.
    assert len(ref.samples[0]) == (2 + GROW_HELD_OUT) * 4
    assert ref.representative_data() is ref.samples[0]
    assert ref.drift(data) == 0.0
    assert ref.fresh_drift(data) == 0.0


def test_fresh_drift_is_the_standard_compress_holds_its_files_to(bench, tflite_model):
    import tfedge

    data = tflite_model("dense_f32")
    ref = bench.Reference(data, num_samples=4, seed=0)
    packed = tfedge.compress(data, representative_data=ref.representative_data())
    written = tfedge.expand(bytes(packed))
    # At least the drift measured on the samples, and within the tolerance the file
    # was searched for (its reserve covered the same estimate).
    assert 0 < ref.drift(written) <= ref.fresh_drift(written) <= 0.02


def test_a_row_without_the_quantizer(bench, tflite_model):
    data = tflite_model("dense_f32")
    row, details = bench.bench_model(
        "mlp", "built in code", data, python=None, num_samples=4
    )
    assert list(row) == bench.COLUMNS
    assert row["weight_dtype"] == "float32"
    for key in ("gzip", "xz", "zstd", "tfedge_lossless", "tfedge_lossy"):
        assert row[key] > 1.0, key
    assert 0 < row["lossy_drift"] <= 0.02
    assert row["compress_s"] > 0
    assert 0 < row["lossless_weight_bytes"] <= details["weight_bytes"]
    assert 0 < row["xz_weight_bytes"] < details["weight_bytes"]
    assert all(row[k] is None for k in bench.COLUMNS if "aieq" in k or "_at_" in k)
    assert details["notes"] == []


def test_a_row_with_the_quantizer_columns_of_an_earlier_run(bench, tflite_model):
    """--aieq_from: the recipe columns come from the earlier row, and tfedge is held to
    each recipe's drift on the same inputs."""
    data = tflite_model("dense_f32")
    earlier = {
        "aieq_int8": 3.5,
        "aieq_int8_drift": 0.01,
        "aieq_int8_fresh_drift": 0.015,
    }
    earlier.update(aieq_int4=6.0, aieq_int4_drift=0.0)
    row, details = bench.bench_model(
        "mlp", "built in code", data, python=None, num_samples=4, aieq_row=earlier
    )
    assert row["aieq_int8"] == 3.5 and row["aieq_int8_drift"] == 0.01
    assert row["tfedge_at_int8_drift"] > 1.0
    assert details["tfedge_at_int8_drift_measured"] <= 0.01
    # The earlier run's estimate for the recipe's file is carried, and tfedge held
    # to it too.
    assert details["aieq_int8_fresh_drift"] == 0.015
    assert details["tfedge_at_int8_fresh_drift"] > 1.0
    # Held to zero drift: lossless.
    assert row["tfedge_at_int4_drift"] == row["tfedge_lossless"]


def test_int8_kernels_of_a_float16_model(bench, tflite_model):
    """Float16 kernels behind DEQUANTIZE become int8 with a scale per output channel;
    DEQUANTIZE gives them back in float32, within half a step of each."""
    from tfedge.tflite import opcode_name, read, schema, tensor_array

    data = tflite_model("conv_f16")
    q = bench.int8_kernels(data)
    assert len(q) < len(data)
    s = schema()
    before, after = read(data), read(q)
    kernels = 0
    for sg0, sg1 in zip(before.subgraphs, after.subgraphs, strict=True):
        for op in sg1.operators:
            if opcode_name(after, op.opcodeIndex) != "DEQUANTIZE":
                continue
            t0, t1 = sg0.tensors[op.inputs[0]], sg1.tensors[op.inputs[0]]
            if t1.type != s.TensorType.INT8:
                assert t1.type == s.TensorType.FLOAT16  # a bias: left as it was
                continue
            kernels += 1
            w = tensor_array(before, t0).astype(np.float32)
            axis = t1.quantization.quantizedDimension
            scale = np.asarray(t1.quantization.scale)
            assert scale.size == w.shape[axis]
            shape = [1] * w.ndim
            shape[axis] = -1
            got = tensor_array(after, t1).astype(np.float32) * scale.reshape(shape)
            assert np.all(np.abs(got - w) <= 0.5 * scale.reshape(shape) + 1e-7)
    assert kernels == 4  # Conv2D, DepthwiseConv2D and the two Dense kernels
    assert bench.int8_kernels(tflite_model("conv_f32")) is None
    # Sparse float16 kernels (DENSIFY, then DEQUANTIZE) stay as they are.
    assert bench.int8_kernels(tflite_model("densify_f16")) is None
    # The row's details: the int8 file's ratio and drift, tfedge held to that drift.
    _, details = bench.bench_model(
        "conv", "built in code", data, python=None, num_samples=4
    )
    ref = bench.Reference(data, num_samples=4, seed=0)
    assert details["int8_kernels"] == len(data) / len(q)
    assert details["int8_kernels_drift"] == ref.drift(q) > 0
    assert details["tfedge_at_int8_kernels_drift"] > 1.0
    measured = details["tfedge_at_int8_kernels_drift_measured"]
    assert measured <= details["int8_kernels_drift"]


def test_densify_index_counts_on_both_sides(bench, tflite_model):
    """A DENSIFY tensor's index is in the tables, not its buffer: xz and zstd get it
    after the buffers, and tfedge's weight bytes hold it in its payload (or, carried,
    in its tables)."""
    import tfedge

    data = tflite_model("densify")
    index = bench.sparsity_index(data)
    assert index  # the fixture's sparse tensor has index vectors
    weights = bench.concatenated(data, bench.constant_buffers(data)) + index
    row, details = bench.bench_model(
        "densify", "built in code", data, python=None, num_samples=4, lossy=False
    )
    assert details["weight_bytes"] == len(weights)
    assert row["xz_weight_bytes"] == bench.xz_bytes(weights)
    packed = tfedge.compress(data, lossless=True, progress=False)
    # The kernel's index goes into its payload; the small bias tensor is carried (no
    # gain), its index still in the tables, and counted there.
    carried = bench.sparsity_index(bytes(packed))
    assert 0 < len(carried) < len(index)
    assert row["lossless_weight_bytes"] == packed.report.weight_bytes[1] + len(carried)
