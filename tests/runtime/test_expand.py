"""expand: plain models pass through; malformed packed files give a clean
FormatError."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfedge
from tfedge.pack._graph import decode_ops
from tfedge.tflite import buffer_data, read, write


@pytest.fixture(scope="module")
def packed(tflite_model) -> bytes:
    return bytes(tfedge.compress(tflite_model("conv_f32")))


def _payload_spans(data: bytes) -> list[tuple[str, int, int]]:
    """(tensor name, start, end) of each payload's bytes inside the file."""
    model = read(data)
    spans = []
    for si, _oi, p, w in decode_ops(model):
        payload = bytes(buffer_data(model, model.subgraphs[si].tensors[p].buffer))
        start = data.find(payload)
        assert start > 0
        name = model.subgraphs[si].tensors[w].name.decode()
        spans.append((name, start, start + len(payload)))
    return spans


def test_plain_model_is_returned_as_is(tflite_model):
    plain = tflite_model("dense_f32")
    assert tfedge.expand(plain) == plain


def test_expanded_has_no_decoder(packed):
    out = read(tfedge.expand(packed))
    assert not list(decode_ops(out))
    assert not any(m.name == b"tfedge" for m in out.metadata or [])


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_flipped_payload_byte_names_the_tensor(packed, where):
    name, start, end = _payload_spans(packed)[0]
    pos = {"header": start + 12, "middle": (start + end) // 2, "last": end - 1}[where]
    bad = bytearray(packed)
    bad[pos] ^= 0x5A
    with pytest.raises(tfedge.FormatError, match=name.split("/")[0]):
        tfedge.expand(bytes(bad))


def test_every_payload_byte_flip_is_caught(packed):
    name, start, end = _payload_spans(packed)[-1]
    for pos in range(start, end, max(1, (end - start) // 200)):
        bad = bytearray(packed)
        bad[pos] ^= 0xFF
        with pytest.raises(tfedge.FormatError):
            tfedge.expand(bytes(bad))


def test_truncation_anywhere_is_a_clean_error(packed):
    for n in list(range(0, 64)) + list(
        range(64, len(packed), max(1, len(packed) // 150))
    ):
        with pytest.raises(tfedge.FormatError):
            tfedge.expand(packed[:n])


def test_random_flips_never_crash(packed):
    rng = np.random.default_rng(0)
    for _ in range(300):
        bad = bytearray(packed)
        for pos in rng.integers(0, len(bad), 3):
            bad[pos] ^= int(rng.integers(1, 256))
        try:
            tfedge.expand(bytes(bad))
        except tfedge.FormatError:
            pass


def test_newer_format_version_is_rejected(packed):
    model = read(packed)
    meta = next(m for m in model.metadata if m.name == b"tfedge")
    model.buffers[meta.buffer].data = np.frombuffer(
        json.dumps({"format_version": 99}).encode(), np.uint8
    )
    with pytest.raises(tfedge.FormatError, match="newer"):
        tfedge.expand(write(model))


def test_payload_for_a_tensor_of_another_shape(packed):
    model = read(packed)
    si, _oi, _p, w = next(iter(decode_ops(model)))
    t = model.subgraphs[si].tensors[w]
    t.shape = np.asarray(list(t.shape)[:-1] + [int(t.shape[-1]) + 1], np.int32)
    with pytest.raises(tfedge.FormatError, match=t.name.decode()):
        tfedge.expand(write(model))


def test_payload_for_a_tensor_of_another_dtype(packed):
    model = read(packed)
    si, _oi, _p, w = next(iter(decode_ops(model)))
    t = model.subgraphs[si].tensors[w]
    t.type = 2  # INT32: same element size as FLOAT32, other type
    with pytest.raises(tfedge.FormatError, match="element type"):
        tfedge.expand(write(model))
