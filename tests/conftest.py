"""Shared fixtures: the .tflite models of tests/tflite_models.py, built once per
session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from tests import tflite_models

_CACHE: dict[str, bytes] = {}

BUILDERS = {
    "dense_f32": tflite_models.dense_f32,
    "dense_pruned": lambda: tflite_models.dense_f32(
        units=(256, 128), inputs=128, prune=0.9
    ),
    "conv_f32": tflite_models.conv_f32,
    "conv_f16": tflite_models.conv_f16,
    "conv_int8": tflite_models.conv_int8,
    "conv_int8_io": lambda: tflite_models.conv_int8(int8_io=True),
    "densify": tflite_models.densify_model,
    "densify_f16": lambda: tflite_models.densify_model(float16=True),
    "per_channel": tflite_models.per_channel_ternary,
    "two_subgraphs": tflite_models.two_subgraphs,
    "two_signatures": tflite_models.two_signatures,
    "custom_op": lambda: tflite_models.with_unknown_custom_op(
        tflite_models.dense_f32()
    ),
}


def model_bytes(name: str) -> bytes:
    if name not in _CACHE:
        _CACHE[name] = BUILDERS[name]()
    return _CACHE[name]


@pytest.fixture(scope="session")
def tflite_model():
    """tflite_model(name) -> bytes of one of BUILDERS' models (built once)."""
    return model_bytes
