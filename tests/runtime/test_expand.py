"""expand: plain models pass through; malformed packed files give a clean
FormatError."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfedge
from tests._payloads import payload_spans
from tfedge.codecs import decode_payload
from tfedge.tflite import decode_ops, read, write


@pytest.fixture(scope="module")
def packed(tflite_model) -> bytes:
    return bytes(tfedge.compress(tflite_model("conv_f32")))


def test_plain_model_is_returned_as_is(tflite_model):
    plain = tflite_model("dense_f32")
    assert tfedge.expand(plain) == plain


def test_expanded_has_no_decoder(packed):
    out = read(tfedge.expand(packed))
    assert not list(decode_ops(out))
    assert not any(m.name == b"tfedge" for m in out.metadata or [])


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_flipped_payload_byte_names_the_tensor(packed, where):
    name, start, end = payload_spans(packed)[0]
    pos = {"header": start + 12, "middle": (start + end) // 2, "last": end - 1}[where]
    bad = bytearray(packed)
    bad[pos] ^= 0x5A
    with pytest.raises(tfedge.FormatError, match=name.split("/")[0]):
        tfedge.expand(bytes(bad))


def test_every_payload_byte_flip_is_caught(packed):
    name, start, end = payload_spans(packed)[-1]
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


# Random 3-byte flips: how many mutants, and the share of those over the whole file
# that must be refused: flips in names, padding or unused vtable slots can be harmless,
# but payloads are most of this file (100 of 100 were refused when this was written).
FLIP_MUTANTS = 100
MIN_CAUGHT_SHARE = 0.9


def _mutant(packed: bytes, rng, spans=None) -> bytes:
    bad = bytearray(packed)
    for _ in range(3):
        if spans:
            start, end = spans[int(rng.integers(0, len(spans)))]
            pos = int(rng.integers(start, end))
        else:
            pos = int(rng.integers(0, len(bad)))
        bad[pos] ^= int(rng.integers(1, 256))
    return bytes(bad)


def test_random_flips_in_payloads_are_all_caught(packed):
    spans = [(start, end) for _, start, end in payload_spans(packed)]
    rng = np.random.default_rng(0)
    for _ in range(FLIP_MUTANTS):
        with pytest.raises(tfedge.FormatError):
            tfedge.expand(_mutant(packed, rng, spans), decoder=decode_payload)


def test_random_flips_anywhere_are_mostly_caught(packed):
    """Each mutant is refused with a FormatError or expands (nothing else); most are
    refused. (A flip outside the payloads can also turn a decode operator into
    another one or rename a tensor: the flatbuffer itself has no checksum.)"""
    rng = np.random.default_rng(1)
    caught = 0
    for _ in range(FLIP_MUTANTS):
        try:
            tfedge.expand(_mutant(packed, rng), decoder=decode_payload)
        except tfedge.FormatError:
            caught += 1
    assert caught >= MIN_CAUGHT_SHARE * FLIP_MUTANTS, caught


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
