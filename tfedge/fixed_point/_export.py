"""Export of a fixed-point result as a .tflite that the stock interpreter runs.

TFLite's full-integer converter lays out the graph (ops, fused activations, tensor
layouts, int32/int64 biases); then every integer tensor gets tfedge's choice: scale
`2**-fl`, zero point 0, and the kernels and biases re-rounded from the simulation
model's float weights at those lengths. Feature maps narrower than their int8/int16
storage get MINIMUM/MAXIMUM clamps after the ops that produce them, so the file
saturates where the simulation does. Finally the file is run on the calibration
samples and compared with the simulation.
"""

from __future__ import annotations

import warnings

import flatbuffers
import keras
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tfedge.errors import TfedgeError
from tfedge.fixed_point import _numeric

_OP = schema.BuiltinOperator
_TYPE = schema.TensorType
_WEIGHT_OPS = (_OP.CONV_2D, _OP.DEPTHWISE_CONV_2D, _OP.FULLY_CONNECTED)
# Ops whose integer output keeps the grid of their first integer input.
_SAME_GRID_OPS = (
    _OP.MAX_POOL_2D,
    _OP.AVERAGE_POOL_2D,
    _OP.RESHAPE,
    _OP.SQUEEZE,
    _OP.EXPAND_DIMS,
    _OP.RELU,
    _OP.RELU6,
)
_OP_NAMES = {v: k for k, v in vars(_OP).items() if not k.startswith("_")}
# MINIMUM/MAXIMUM: version 4 is the newest the builtin resolver registers; it covers
# int8 and int16.
_CLAMP_VERSION = 4
# The exported model must agree with the simulation to within this many steps of the
# output grid on the calibration samples, or export fails. Values within one
# accumulator unit of a rounding tie can land one step apart (see `fake_quantize`), and
# such a step grows through the later layers; on LeNet-5 and the test models the
# largest difference is a few steps, while a wrong scale or layout gives hundreds.
MAX_DRIFT_LSB = 32
_NP_TYPE = {
    _TYPE.INT8: np.int8,
    _TYPE.INT16: np.int16,
    _TYPE.INT32: np.int32,
    _TYPE.INT64: np.int64,
}


def _code(model, op) -> int:
    oc = model.operatorCodes[op.opcodeIndex]
    return max(oc.builtinCode, oc.deprecatedBuiltinCode)


def _tflite_kernel(layer, code: int) -> np.ndarray:
    """The wrapped layer's float kernel in the layout of the TFLite op `code` that the
    converter chose for it. A Conv2D with one input channel may become a
    DEPTHWISE_CONV_2D (the JAX export's convolutions do), whose kernel is
    (1, kh, kw, channels)."""
    k = layer.get_weights()[0]
    if code == _OP.DEPTHWISE_CONV_2D:
        kh, kw, cin, mult = k.shape
        return k.reshape(kh, kw, cin * mult)[None]
    if isinstance(layer, keras.layers.Conv2D):
        return np.transpose(k, (3, 0, 1, 2))
    return k.T


def _set_grid(tensor, fl: int) -> None:
    q = tensor.quantization or schema.QuantizationParametersT()
    n = 1 if q.scale is None else max(1, len(q.scale))
    q.scale = np.full(n, 2.0**-fl, dtype=np.float32)
    q.zeroPoint = np.zeros(n, dtype=np.int64)
    q.min = None
    q.max = None
    tensor.quantization = q


def _set_data(model, tensor, codes: np.ndarray, name: str, written: set) -> None:
    """Writes `codes` as the tensor's constant data.

    Should two tensors share one buffer in the converted file (flatbuffers allow it;
    a converter may deduplicate equal constants), their codes still differ when their
    lengths do, so a buffer already written gets a fresh copy for the second tensor.
    """
    dtype = _NP_TYPE.get(tensor.type)
    if dtype is None:
        raise TfedgeError(
            f"tensor {name!r} has TFLite type {tensor.type}; expected an integer type"
        )
    if tuple(tensor.shape) != codes.shape:
        raise TfedgeError(
            f"tensor {name!r} has shape {tuple(int(d) for d in tensor.shape)} in the "
            f"converted model, the layer gives {tuple(int(d) for d in codes.shape)}"
        )
    if tensor.buffer in written:
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
    written.add(tensor.buffer)
    model.buffers[tensor.buffer].data = np.frombuffer(
        codes.astype(dtype).tobytes(), dtype=np.uint8
    )


def _convert(float_model, calibration: np.ndarray, int16: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(float_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [calibration[i : i + 1]] for i in range(len(calibration))
    )
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        if int16
        else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    ]
    from tfedge._quiet import quiet_tf

    with warnings.catch_warnings(), quiet_tf():
        # The converter warns about captured resource tensors of every Keras 3 model
        # and about its own experimental 16x8 mode; neither concerns the result. It
        # also prints the SavedModel it writes to stdout; the library never prints.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return conv.convert()
        except Exception as e:  # noqa: BLE001 - the converter raises many types
            raise TfedgeError(
                f"TFLite's converter failed on model {float_model.name!r}: {e}"
            ) from e


def _add_clamps(model, sg, sources: dict[int, int], bits: int, storage) -> None:
    """Inserts MINIMUM/MAXIMUM after each tensor in `sources` (tensor -> fl)."""
    lo, hi = _numeric.code_range(bits)

    def opcode(builtin):
        for i, oc in enumerate(model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == builtin:
                oc.version = max(oc.version, _CLAMP_VERSION)
                return i
        oc = schema.OperatorCodeT()
        oc.builtinCode = builtin
        oc.deprecatedBuiltinCode = min(builtin, 127)
        oc.version = _CLAMP_VERSION
        model.operatorCodes.append(oc)
        return len(model.operatorCodes) - 1

    def new_tensor(like, name, data=None, shape=None):
        t = schema.TensorT()
        t.name = name.encode()
        t.type = like.type
        t.shape = np.asarray(like.shape if shape is None else shape, dtype=np.int32)
        if like.shapeSignature is not None and shape is None:
            t.shapeSignature = np.asarray(like.shapeSignature, dtype=np.int32)
        buf = schema.BufferT()
        if data is not None:
            buf.data = np.frombuffer(data.tobytes(), dtype=np.uint8)
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    op_min, op_max = opcode(_OP.MINIMUM), opcode(_OP.MAXIMUM)
    dtype = _NP_TYPE[storage]
    for src, fl in sources.items():
        base = sg.tensors[src]
        name = base.name.decode() if base.name else str(src)
        hi_t = new_tensor(base, f"{name}/fixed_point_max", np.array([hi], dtype), [1])
        lo_t = new_tensor(base, f"{name}/fixed_point_min", np.array([lo], dtype), [1])
        mid = new_tensor(base, f"{name}/fixed_point_clamp_hi")
        out = new_tensor(base, f"{name}/fixed_point_clamped")
        for t in (hi_t, lo_t, mid, out):
            _set_grid(sg.tensors[t], fl)
        # Consumers of `src` now read the clamped tensor.
        for op in sg.operators:
            op.inputs = np.where(np.asarray(op.inputs) == src, out, op.inputs)
        sg.outputs = np.where(np.asarray(sg.outputs) == src, out, sg.outputs)
        producer = next(
            i for i, op in enumerate(sg.operators) if src in list(op.outputs)
        )
        ops = []
        for code, inputs, output in (
            (op_min, [src, hi_t], mid),
            (op_max, [mid, lo_t], out),
        ):
            op = schema.OperatorT()
            op.opcodeIndex = code
            op.inputs = np.asarray(inputs, dtype=np.int32)
            op.outputs = np.asarray([output], dtype=np.int32)
            ops.append(op)
        sg.operators[producer + 1 : producer + 1] = ops


def _clone_for_export(model):
    """A copy of `model` to convert. On the JAX backend its batch size is fixed at 1:
    the JAX export of a model with an unknown batch size computes shapes at run time
    and adds biases with BROADCAST_TO + ADD instead of inside the weight ops, which
    has no fixed-point form; with a static batch the graph is the same op for op as
    TensorFlow's (a one-channel Conv2D aside, which becomes DEPTHWISE_CONV_2D)."""
    if keras.backend.backend() != "jax":
        return keras.models.clone_model(model)
    shape = tuple(model.inputs[0].shape)
    return keras.models.clone_model(
        model, input_tensors=keras.Input(batch_shape=(1, *shape[1:]))
    )


def export(result) -> tuple[bytes, float]:
    """The .tflite bytes and the largest output gap from the simulation, in LSBs."""
    abits = result.activation_bits
    int16 = abits > 8
    storage = _TYPE.INT16 if int16 else _TYPE.INT8
    wrappers = result._wrappers()
    # Convert a float model that holds the simulation's current weights: the converter
    # drops all-zero biases and folds constants, so its graph must see these values.
    float_model = _clone_for_export(result._float_model)
    float_model.set_weights(result._float_model.get_weights())
    for rec, wrapper in zip(result.layers, wrappers, strict=True):
        float_model.get_layer(rec.name).set_weights(wrapper.layer.get_weights())
    flat = _convert(float_model, result._calibration, int16)
    model = schema.ModelT.InitFromPackedBuf(flat, 0)
    if len(model.subgraphs) != 1:
        raise TfedgeError(
            f"the converter produced {len(model.subgraphs)} subgraphs; expected 1"
        )
    sg = model.subgraphs[0]
    fl_of: dict[int, int] = {}
    sources: dict[int, int] = {}
    written: set[int] = set()
    k = 0
    for op in sg.operators:
        code = _code(model, op)
        name = _OP_NAMES.get(code, str(code))
        inputs = [int(i) for i in op.inputs]
        outputs = [int(i) for i in op.outputs]
        int_outputs = [t for t in outputs if sg.tensors[t].type == storage]
        if code == _OP.QUANTIZE and sg.tensors[inputs[0]].type == _TYPE.FLOAT32:
            for t in int_outputs:
                fl_of[t] = sources[t] = result.input_fractional_length
        elif code in _WEIGHT_OPS:
            if k >= len(result.layers):
                raise TfedgeError(
                    f"the converted model has more weight ops than the model has "
                    f"weight layers ({len(result.layers)})"
                )
            rec, layer = result.layers[k], wrappers[k].layer
            k += 1
            if fl_of.get(inputs[0]) != rec.input_fractional_length:
                raise TfedgeError(
                    f"op {name} for layer {rec.name!r} reads a tensor on grid "
                    f"{fl_of.get(inputs[0])}, expected {rec.input_fractional_length}"
                )
            shift = rec.input_fractional_length + rec.weight_fractional_length
            shift -= rec.output_fractional_length
            if abs(shift) > 30:
                raise TfedgeError(
                    f"layer {rec.name!r}: rescaling by 2**{-shift} is beyond TFLite's "
                    "integer multiplier (shifts of at most 30 bits)"
                )
            w = sg.tensors[inputs[1]]
            _set_data(
                model,
                w,
                _numeric.to_codes(
                    _tflite_kernel(layer, code),
                    rec.weight_bits,
                    rec.weight_fractional_length,
                ),
                f"{rec.name}/kernel",
                written,
            )
            _set_grid(w, rec.weight_fractional_length)
            if len(inputs) > 2 and inputs[2] >= 0:
                b = sg.tensors[inputs[2]]
                bias = (
                    layer.get_weights()[1]
                    if layer.use_bias
                    else np.zeros(b.shape, np.float32)
                )
                bias_bits = 64 if b.type == _TYPE.INT64 else 32
                codes = _numeric.to_codes(bias, bias_bits, rec.bias_fractional_length)
                raw = np.asarray(bias, np.float64) * 2.0**rec.bias_fractional_length
                clipped = int(np.sum(np.abs(np.round(raw)) > 2 ** (bias_bits - 1) - 1))
                if clipped:
                    warnings.warn(
                        f"layer {rec.name!r}: {clipped} bias values saturate at "
                        f"{bias_bits} bits with fractional length "
                        f"{rec.bias_fractional_length}",
                        stacklevel=3,
                    )
                _set_data(model, b, codes, f"{rec.name}/bias", written)
                _set_grid(b, rec.bias_fractional_length)
            elif layer.use_bias and np.any(layer.get_weights()[1]):
                raise TfedgeError(
                    f"op {name} for layer {rec.name!r} has no bias input in the "
                    "converted model, but the layer's bias is not zero"
                )
            for t in int_outputs:
                fl_of[t] = sources[t] = rec.output_fractional_length
        elif int_outputs:
            if code not in _SAME_GRID_OPS:
                raise TfedgeError(f"op {name} is not supported in a fixed-point model")
            grids = [fl_of[t] for t in inputs if t in fl_of]
            if not grids:
                raise TfedgeError(f"op {name} has no fixed-point input")
            for t in int_outputs:
                fl_of[t] = grids[0]
    if k != len(result.layers):
        raise TfedgeError(
            f"the converted model has {k} weight ops; the model has "
            f"{len(result.layers)} weight layers"
        )
    for t, fl in fl_of.items():
        _set_grid(sg.tensors[t], fl)
    storage_bits = 16 if int16 else 8
    if abits < storage_bits:
        _add_clamps(model, sg, sources, abits, storage)
    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    data = bytes(builder.Output())
    drift = _drift(data, result)
    if drift > MAX_DRIFT_LSB:
        raise TfedgeError(
            f"the exported model differs from the simulation by {drift:.0f} output "
            f"steps on the calibration samples (at most {MAX_DRIFT_LSB} expected)"
        )
    return data, drift


def _drift(data: bytes, result) -> float:
    """Largest |tflite - simulation| on the calibration samples, in output LSBs."""
    from ai_edge_litert.interpreter import Interpreter

    x = result._calibration
    interp = Interpreter(model_content=data)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    if int(inp["shape_signature"][0]) == 1:  # a fixed batch: one sample at a time
        got = []
        interp.allocate_tensors()
        for sample in x:
            interp.set_tensor(inp["index"], sample[None])
            interp.invoke()
            got.append(interp.get_tensor(out["index"])[0])
        got = np.stack(got)
    else:
        interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        got = interp.get_tensor(out["index"])
    want = keras.ops.convert_to_numpy(result.model(x, training=False))
    step = 2.0 ** -result.layers[-1].output_fractional_length
    return float(np.max(np.abs(got - want)) / step)
