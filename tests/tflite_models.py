"""Small .tflite models built in code, of the kinds tfedge meets in the wild.

Each builder returns .tflite bytes. They come from TensorFlow's own converter (not from
tfedge), so the converter stage is tested on files it did not write: float32, float16
weights behind DEQUANTIZE, int8 post-training quantization, DENSIFY-sparse, several
subgraphs, a custom operator tfedge does not know, and pruned weights.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

SEED = 0


def _tf():
    import tensorflow as tf

    return tf


def _keras():
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def _convert(
    model, *, optimizations=None, types=None, representative=None, int8_io=False
):
    tf = _tf()
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if optimizations:
        c.optimizations = optimizations
    if types:
        c.target_spec.supported_types = types
    if representative is not None:
        c.representative_dataset = representative
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
    return c.convert()


def dense_model(units=(64, 32), inputs=32, outputs=10, prune: float = 0.0):
    """An MLP; with `prune`, that fraction of each kernel is set to exactly zero."""
    keras = _keras()
    # Named: an unnamed input takes Keras' next automatic name (keras_tensor,
    # keras_tensor_2, ...), which depends on how many tensors the process made before,
    # and tests address the converted model's input by name.
    layers = [keras.Input((inputs,), name="keras_tensor")]
    layers += [
        keras.layers.Dense(u, activation="relu", name=f"fc{i}")
        for i, u in enumerate(units)
    ]
    layers += [keras.layers.Dense(outputs, name="logits")]
    model = keras.Sequential(layers, name="mlp")
    if prune:
        rng = np.random.default_rng(SEED)
        for layer in model.layers:
            k, b = layer.get_weights()
            mask = rng.random(k.shape) >= prune
            layer.set_weights([k * mask, b])
    return model


def conv_model():
    keras = _keras()
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def dense_f32(**kw) -> bytes:
    return _convert(dense_model(**kw))


def conv_f32() -> bytes:
    return _convert(conv_model())


def conv_f16() -> bytes:
    """Float16 weights behind DEQUANTIZE ops."""
    tf = _tf()
    return _convert(
        conv_model(), optimizations=[tf.lite.Optimize.DEFAULT], types=[tf.float16]
    )


def conv_int8(int8_io: bool = False) -> bytes:
    """Full-integer post-training quantization (per-channel int8 weights, int32
    biases)."""
    tf = _tf()
    rng = np.random.default_rng(SEED)

    def representative():
        for _ in range(16):
            yield [rng.standard_normal((1, 12, 12, 3)).astype(np.float32)]

    return _convert(
        conv_model(),
        optimizations=[tf.lite.Optimize.DEFAULT],
        representative=representative,
        int8_io=int8_io,
    )


def per_channel_ternary() -> bytes:
    """Ternary kernels times a per-channel scale, the way the converter folds a batch
    norm into a ternary convolution: 96 output channels x 3 values (over 256 distinct
    values in all, three per channel), and a depthwise kernel of 288 channels scaled
    along its last axis."""
    keras = _keras()
    rng = np.random.default_rng(SEED)
    model = keras.Sequential(
        [
            keras.Input((10, 10, 16)),
            keras.layers.Conv2D(96, 3, activation="relu", name="conv"),
            keras.layers.DepthwiseConv2D(
                3, depth_multiplier=3, activation="relu", name="depthwise"
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    # Keras keeps output channels last; a depthwise kernel's are (input, multiplier).
    for name, channel_dims in (("conv", 1), ("depthwise", 2)):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        sign = rng.choice([-1.0, 0.0, 1.0], kernel.shape, p=[0.4, 0.2, 0.4])
        scale = rng.uniform(0.05, 0.3, kernel.shape[-channel_dims:])
        layer.set_weights([(sign * scale).astype(np.float32), bias])
    return _convert(model)


def densify_model(float16: bool = False) -> bytes:
    """A pruned Dense model converted with EXPERIMENTAL_SPARSITY: a DENSIFY op and a
    tensor with `sparsity` parameters (`float16`: sparse float16 kernels, each
    DENSIFY followed by a DEQUANTIZE, as in mediapipe's pose detector)."""
    tf = _tf()
    model = dense_model(units=(64,), inputs=64, prune=0.9)
    sparsity = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if float16:
        sparsity.append(tf.lite.Optimize.DEFAULT)
    return _convert(
        model, optimizations=sparsity, types=[tf.float16] if float16 else None
    )


def two_subgraphs() -> bytes:
    """A model whose weights live in the branches of a tf.cond (an IF op, 3
    subgraphs)."""
    tf = _tf()
    rng = np.random.default_rng(SEED)
    w1 = tf.constant(rng.standard_normal((16, 32)).astype(np.float32))
    w2 = tf.constant(rng.standard_normal((16, 32)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 16), tf.float32)])
    def f(x):
        return tf.cond(
            tf.reduce_sum(x) > 0.0,
            lambda: tf.nn.relu(tf.matmul(x, w1)),
            lambda: tf.nn.tanh(tf.matmul(x, w2)),
        )

    c = tf.lite.TFLiteConverter.from_concrete_functions(
        [f.get_concrete_function()], None
    )
    return c.convert()


def with_unknown_custom_op(base: bytes) -> bytes:
    """`base` with a custom operator 'ACME_SECRET' that no interpreter knows, consuming
    the model's first input and producing a new subgraph output."""
    from tfedge.tflite import opcode_index, read, schema, write

    s = schema()
    model = read(base)
    sg = model.subgraphs[0]
    code = opcode_index(model, "ACME_SECRET")
    out = s.TensorT()
    out.name = "acme_out"
    out.type = s.TensorType.FLOAT32
    out.shape = np.asarray([1], np.int32)
    out.buffer = 0
    sg.tensors.append(out)
    op = s.OperatorT()
    op.opcodeIndex = code
    op.inputs = np.asarray([int(np.asarray(sg.inputs)[0])], np.int32)
    op.outputs = np.asarray([len(sg.tensors) - 1], np.int32)
    op.customOptions = np.frombuffer(b"\x01\x02secret-options", np.uint8)
    sg.operators = list(sg.operators) + [op]
    sg.outputs = np.concatenate(
        [np.asarray(sg.outputs, np.int32), [len(sg.tensors) - 1]]
    )
    return write(model)


def two_signatures() -> bytes:
    """Two signatures, so two subgraphs, each with its own weights plus one weight they
    share (one buffer referenced from both subgraphs)."""
    tf = _tf()
    rng = np.random.default_rng(SEED)

    class TwoHeads(tf.Module):
        def __init__(self):
            super().__init__()
            self.shared = tf.Variable(rng.standard_normal((16, 32)).astype(np.float32))
            self.wa = tf.Variable(rng.standard_normal((32, 8)).astype(np.float32))
            self.wb = tf.Variable(rng.standard_normal((32, 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec((1, 16), tf.float32, name="x")])
        def head_a(self, x):
            return {"y": tf.matmul(tf.nn.relu(tf.matmul(x, self.shared)), self.wa)}

        @tf.function(input_signature=[tf.TensorSpec((1, 16), tf.float32, name="x")])
        def head_b(self, x):
            return {"y": tf.matmul(tf.tanh(tf.matmul(x, self.shared)), self.wb)}

    m = TwoHeads()
    c = tf.lite.TFLiteConverter.from_concrete_functions(
        [m.head_a.get_concrete_function(), m.head_b.get_concrete_function()], m
    )
    return c.convert()
