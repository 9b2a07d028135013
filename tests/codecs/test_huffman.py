"""Length-limited canonical Huffman: optimality, canonical codes, table validation,
and the two block-parallel decoders."""

import heapq
import itertools

import numpy as np
import pytest

from tfedge.codecs import (
    canonical_codes,
    check_lengths,
    code_lengths,
    entropy_bits,
    huffman_decode,
    huffman_encode,
)
from tfedge.codecs._huffman import length_table_problem
from tfedge.errors import FormatError


def _fibonacci(n):
    f = [1, 1]
    while len(f) < n:
        f.append(f[-1] + f[-2])
    return np.array(f[:n], np.int64)


def _huffman_cost(freqs):
    """Cost sum(freq * length) of an unlimited Huffman code, by the classic heap."""
    heap = [int(f) for f in freqs if f > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, a + b)
    return cost


FREQS = {
    "uniform_256": np.full(256, 10),
    "geometric": np.array([2**i for i in range(12, 0, -1)]),
    "two": np.array([5, 1]),
    "sparse_alphabet": np.array([0, 7, 0, 0, 3, 0, 0, 1, 0, 9]),
    "random": np.random.default_rng(1).integers(0, 1000, 200),
    "ternary": np.array([900, 50, 50, 0]),
}


@pytest.mark.parametrize("freqs", FREQS.values(), ids=FREQS.keys())
def test_lengths_are_optimal_when_limit_does_not_bind(freqs):
    lengths = code_lengths(freqs)
    assert length_table_problem(lengths, 1) is None
    np.testing.assert_array_equal(lengths == 0, np.asarray(freqs) == 0)
    assert int(np.dot(freqs, lengths)) == _huffman_cost(freqs)


@pytest.mark.parametrize("limit", [4, 5, 8, 15], ids=lambda x: f"L{x}")
def test_fibonacci_frequencies_force_the_length_limit(limit):
    freqs = _fibonacci(max(limit + 5, 6))[: 1 << limit]
    lengths = code_lengths(freqs, limit)
    assert lengths.max() == limit
    assert length_table_problem(lengths, 1) is None
    # Unlimited Huffman would need a longer code, and costs no more.
    assert int(np.dot(freqs, lengths)) >= _huffman_cost(freqs)


def _brute_force_cost(freqs, limit):
    best = None
    for lens in itertools.product(range(1, limit + 1), repeat=len(freqs)):
        if sum(2.0**-x for x in lens) == 1.0:
            cost = sum(f * x for f, x in zip(freqs, lens, strict=True))
            best = cost if best is None else min(best, cost)
    return best


BRUTE = [
    ([1, 1, 2, 4, 8], 3),
    ([1, 2, 3, 5, 8, 13], 3),
    ([5, 5, 5, 1], 2),
    ([9, 1, 1], 2),
]


@pytest.mark.parametrize("freqs, limit", BRUTE, ids=str)
def test_length_limited_lengths_are_optimal_by_brute_force(freqs, limit):
    lengths = code_lengths(np.array(freqs), limit)
    assert lengths.max() <= limit
    assert int(np.dot(freqs, lengths)) == _brute_force_cost(freqs, limit)


def test_degenerate_frequencies():
    np.testing.assert_array_equal(code_lengths(np.zeros(4)), [0, 0, 0, 0])
    np.testing.assert_array_equal(code_lengths(np.array([0, 0, 7, 0])), [0, 0, 1, 0])
    np.testing.assert_array_equal(code_lengths(np.array([3, 0, 7])), [1, 0, 1])


@pytest.mark.parametrize(
    "freqs, max_length, match",
    [
        (np.ones(5), 2, "at most 2\\*\\*max_length=4"),
        (np.ones(2), 0, "Expected `max_length` in"),
        (np.ones(2), 16, "Expected `max_length` in"),
        (np.array([1, -1]), 15, "non-negative"),
    ],
    ids=["too_many_symbols", "limit0", "limit16", "negative"],
)
def test_bad_arguments(freqs, max_length, match):
    with pytest.raises(ValueError, match=match):
        code_lengths(freqs, max_length)


def test_canonical_codes_follow_format():
    # Lengths 2,1,3,3 for symbols 0..3: order (1,s1) (2,s0) (3,s2) (3,s3).
    codes = canonical_codes(np.array([2, 1, 3, 3]))
    np.testing.assert_array_equal(codes, [0b10, 0b0, 0b110, 0b111])
    codes = canonical_codes(np.array([0, 3, 3, 2, 0, 2, 2]))
    np.testing.assert_array_equal(codes, [0, 0b110, 0b111, 0b00, 0, 0b01, 0b10])


TABLES = [
    ("empty_ok", [0, 0, 0, 0], 0, None),
    ("empty_with_lengths", [1, 1, 0, 0], 0, "all-zero"),
    ("all_zero_with_symbols", [0, 0], 3, "all zero"),
    ("one_symbol_ok", [0, 1, 0, 0], 5, None),
    ("one_symbol_length_2", [0, 2, 0, 0], 5, "expected 1"),
    ("complete", [1, 2, 3, 3], 5, None),
    ("over_subscribed", [1, 1, 2, 0], 5, "over-subscribed"),
    ("incomplete", [1, 2, 3, 0], 5, "incomplete"),
    ("too_long", [16, 1], 5, "must be in"),
]


@pytest.mark.parametrize(
    "lengths, count, problem", [t[1:] for t in TABLES], ids=[t[0] for t in TABLES]
)
def test_length_table_validation(lengths, count, problem):
    if problem is None:
        check_lengths(np.array(lengths), count)
    else:
        with pytest.raises(FormatError, match=problem):
            check_lengths(np.array(lengths), count, name="t", offset=3)


def _reference_bits(symbols, lengths):
    codes = canonical_codes(lengths)
    text = "".join(format(int(codes[s]), f"0{lengths[s]}b") for s in symbols)
    return text


STREAMS = {
    "skewed": (np.random.default_rng(0).geometric(0.3, 3000) - 1).clip(0, 255),
    "uniform": np.random.default_rng(1).integers(0, 256, 3000),
    "one_value": np.full(1000, 7),
    "two_values": np.random.default_rng(2).integers(0, 2, 999),
    "single": np.array([3]),
    "fibonacci": np.repeat(np.arange(20), _fibonacci(20))[::-1].copy(),
}
BLOCKS = [1, 7, 256, 100000]
METHODS = ["step", "doubling"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"B{b}")
@pytest.mark.parametrize("symbols", STREAMS.values(), ids=STREAMS.keys())
def test_encode_matches_reference_and_decodes(symbols, block, method):
    symbols = symbols.astype(np.uint8)
    lengths = code_lengths(np.bincount(symbols, minlength=256))
    data, total, offsets = huffman_encode(symbols, lengths, block)
    text = _reference_bits(symbols, lengths)
    assert total == len(text)
    text += "0" * (-len(text) % 8)
    assert data == int(text, 2).to_bytes(len(text) // 8, "big")
    assert offsets.size == max(0, -(-symbols.size // block) - 1)
    out = huffman_decode(data, lengths, symbols.size, block, offsets, method=method)
    np.testing.assert_array_equal(out, symbols)


@pytest.mark.parametrize("method", METHODS)
def test_invalid_code_in_one_symbol_table_raises(method):
    lengths = np.array([0, 1, 0, 0])  # the only code is "0"
    with pytest.raises(FormatError, match="no code"):
        huffman_decode(b"\x00\x40", lengths, 16, 8, np.array([8]), method=method)
    out = huffman_decode(b"\x00\x00", lengths, 16, 8, np.array([8]), method=method)
    np.testing.assert_array_equal(out, np.ones(16))


@pytest.mark.parametrize("method", METHODS)
def test_reading_past_the_data_raises(method):
    lengths = np.array([1, 2, 3, 3])
    symbols = np.array([3, 3, 3, 3], np.uint8)  # 12 bits
    data, _, _ = huffman_encode(symbols, lengths)
    with pytest.raises(FormatError, match="past the end"):
        huffman_decode(data[:1], lengths, 4, 4, np.zeros(0), method=method)
    with pytest.raises(FormatError, match="past the end"):
        huffman_decode(data, lengths, 4, 2, np.array([15]), method=method)


DISTRIBUTIONS = {
    "uniform16": np.full(16, 1.0),
    "geometric": 0.5 ** np.arange(1, 20),
    "ternary": np.array([0.9, 0.05, 0.05]),
    "sparse_gaps": np.array([0.6, 0.2, 0.1, 0.05, 0.03, 0.02]),
    "near_constant": np.array([0.999, 0.001]),
}


@pytest.mark.parametrize("p", DISTRIBUTIONS.values(), ids=DISTRIBUTIONS.keys())
def test_within_one_bit_of_entropy(p):
    rng = np.random.default_rng(0)
    symbols = rng.choice(p.size, 20000, p=p / p.sum()).astype(np.uint8)
    lengths = code_lengths(np.bincount(symbols, minlength=256))
    _, total, _ = huffman_encode(symbols, lengths)
    entropy = entropy_bits(symbols)
    assert entropy <= total / symbols.size < entropy + 1


def test_entropy_bits():
    assert entropy_bits(np.array([], np.uint8)) == 0.0
    assert entropy_bits(np.array([4, 4, 4])) == 0.0
    assert entropy_bits(np.array([0, 1, 2, 3])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="alphabet=2"):
        entropy_bits(np.array([0, 3]), alphabet=2)


def test_decoder_checks_its_inputs():
    lengths = np.array([1, 1])
    with pytest.raises(FormatError, match="incomplete"):
        huffman_decode(b"\x00", np.array([1, 0, 2]), 2, 2, np.zeros(0))
    with pytest.raises(FormatError, match="outside the 8-bit data"):
        huffman_decode(b"\x00", lengths, 4, 2, np.array([9]))
    with pytest.raises(ValueError, match="Expected 1 block offsets"):
        huffman_decode(b"\x00", lengths, 4, 2, np.zeros(0))
    with pytest.raises(ValueError, match="Expected `method`"):
        huffman_decode(b"\x00", lengths, 4, 2, np.array([2]), method="fast")
