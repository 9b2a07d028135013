"""tfedge.codecs: the packed payload and its codecs, numpy only (no TensorFlow).

* `encode_payload` / `decode_payload` / `read_header` / `payload_size` /
  `inspect_payload`: one weight tensor's payload, docs/FORMAT.md section 2.
* `encode_stream` / `decode_stream` / `stream_size` / `stream_info`: fixed-width,
  canonical length-limited Huffman or interleaved rANS symbol streams (2.2, 2.3).
* `rotate_left`: the bit rotation of the byte-planes value kind.
* `MAX_CODEBOOK` / `MAX_LARGE_CODEBOOK`: the most codebook entries (256; 65535 for a
  format-version-3 codebook of multi-byte elements).
* `pack_bits` / `unpack_bits`: fixed-width bit packing, 1..8 bits, MSB first.
* `code_lengths` / `canonical_codes` / `check_lengths`: Huffman code construction.
* `kmeans_1d` / `quantize_error`: 1-D k-means weight sharing (Deep Compression).
* `weighted_kmeans_1d` / `ecsq_1d` / `ecsq_search` / `rate_distortion`: Hessian-weighted
  k-means and entropy-constrained scalar quantization (Choi et al. 2017).
* `relative_index` / `positions_from_gaps`: the sparse relative index with fillers.
* `crc32`, `entropy_bits`.
* `set_rans_encoder`: a faster rANS encoder with the numpy one's bytes (the native
  library's, installed by `tfedge.runtime.use_native_rans_encoder`).
* `decoded_bound`, `EXPANSION_RATIO`, `EXPANSION_FLOOR`, `MAX_BLOCK_SIZE`: the
  readers' resource bound.
"""

from __future__ import annotations

from tfedge.codecs._bitpack import pack_bits, unpack_bits
from tfedge.codecs._crc import crc32
from tfedge.codecs._decode import decode_payload
from tfedge.codecs._ecsq import (
    RateDistortion,
    ecsq_1d,
    ecsq_search,
    rate_distortion,
    weighted_kmeans_1d,
)
from tfedge.codecs._encode import encode_payload, payload_size
from tfedge.codecs._header import (
    DEFAULT_MAX_DECODED,
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    TFLITE_ELEMENT_SIZES,
    PayloadHeader,
    read_header,
)
from tfedge.codecs._huffman import (
    MAX_CODE_LENGTH,
    canonical_codes,
    check_lengths,
    code_lengths,
    huffman_decode,
    huffman_encode,
)
from tfedge.codecs._inspect import PayloadInfo, inspect_payload
from tfedge.codecs._kind_bits import rotate_left
from tfedge.codecs._kind_codebook import MAX_CODEBOOK, MAX_LARGE_CODEBOOK
from tfedge.codecs._kmeans import QuantizeError, kmeans_1d, quantize_error
from tfedge.codecs._limits import (
    EXPANSION_FLOOR,
    EXPANSION_RATIO,
    MAX_BLOCK_SIZE,
    decoded_bound,
)
from tfedge.codecs._rans import set_rans_encoder
from tfedge.codecs._sparse import positions_from_gaps, relative_index
from tfedge.codecs._streams import (
    StreamInfo,
    decode_stream,
    default_block_size,
    encode_stream,
    entropy_bits,
    stream_info,
    stream_size,
    stream_size_from_frequencies,
)

__all__ = [
    "DEFAULT_MAX_DECODED",
    "EXPANSION_FLOOR",
    "EXPANSION_RATIO",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_CODEBOOK",
    "MAX_LARGE_CODEBOOK",
    "MAX_CODE_LENGTH",
    "PayloadHeader",
    "PayloadInfo",
    "QuantizeError",
    "RateDistortion",
    "StreamInfo",
    "TFLITE_ELEMENT_SIZES",
    "canonical_codes",
    "check_lengths",
    "code_lengths",
    "crc32",
    "decode_payload",
    "decoded_bound",
    "decode_stream",
    "ecsq_1d",
    "ecsq_search",
    "default_block_size",
    "encode_payload",
    "encode_stream",
    "entropy_bits",
    "huffman_decode",
    "huffman_encode",
    "inspect_payload",
    "kmeans_1d",
    "pack_bits",
    "payload_size",
    "positions_from_gaps",
    "quantize_error",
    "rate_distortion",
    "read_header",
    "relative_index",
    "rotate_left",
    "set_rans_encoder",
    "stream_info",
    "stream_size",
    "stream_size_from_frequencies",
    "unpack_bits",
    "weighted_kmeans_1d",
]
