// tfedge payload decoder: docs/FORMAT.md section 2, versions 1 to 3.
//
// One payload in, the decoded tensor bytes out. Every read is bounds-checked against
// the payload, every allocation is bounded (by the caller's output buffer, plus a
// Huffman table of at most 64 KiB or a rANS table of at most 384 KiB), and every malformed input yields a Status naming
// the byte offset and the problem. No exceptions cross this interface.
//
// Structure (one class per codec behind one interface):
//   SymbolReader   the interface of a stream of `bits`-bit symbols (section 2.2)
//     FixedWidthReader, HuffmanReader, RansReader (format version 3; AVX2 rounds
//     on x86 CPUs that have it when built by GCC or Clang, scalar code elsewhere
//     or when the environment variable TFEDGE_NO_SIMD is set, which also turns
//     off the carry-less CRC)
//   Codec          the interface of a body decoder (section 2.1)
//     DenseRawCodec, DenseCodebookCodec, DenseChannelCodebookCodec,
//     SparseRawCodec, SparseCodebookCodec, SparseChannelCodebookCodec,
//     DensePlanesCodec, SparsePlanesCodec (format version 3)
// `DecodePayload` checks the header in the order section 2 lists, then hands the body
// to the codec chosen from the table `CodecFor(layout, value kind)`.
#ifndef TFEDGE_RUNTIME_CC_DECODER_H_
#define TFEDGE_RUNTIME_CC_DECODER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tfedge {

inline constexpr uint8_t kFormatVersion = 3;
inline constexpr size_t kHeaderSize = 28;
inline constexpr uint8_t kLayoutDense = 0;
inline constexpr uint8_t kLayoutSparse = 1;
inline constexpr uint8_t kValueRaw = 0;
inline constexpr uint8_t kValueCodebook = 1;
inline constexpr uint8_t kValueChannelCodebook = 2;  // format version 2 and newer
inline constexpr uint8_t kValuePlanes = 3;           // format version 3 and newer
inline constexpr int kMaxCodebook = 256;
// Format version 3: a codebook (value kind 1) of elements wider than one byte.
inline constexpr int kMaxLargeCodebook = 65535;
inline constexpr uint8_t kCodingFixed = 0;
inline constexpr uint8_t kCodingHuffman = 1;
inline constexpr int kMaxCodeLength = 15;
inline constexpr uint8_t kCodingRans = 2;  // format version 3 and newer
inline constexpr int kMaxRansBits = 16;
inline constexpr int kMaxRansScaleBits = 16;
inline constexpr int kMaxRansLanes = 32;
// A lane's rANS state stays in [2^16, 2^32) between symbols; the encoder
// (rans_encode.cc) starts every lane at it and the decoder checks each ends there.
inline constexpr uint32_t kRansStateLow = 1u << 16;

// The outcome of a decoding step: ok, or a message and the payload byte offset where
// the problem was found (-1 when no single offset applies).
class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(int64_t offset, const char* format, ...)
      __attribute__((format(printf, 2, 3)));

  bool ok() const { return !error_; }
  const std::string& message() const { return message_; }
  int64_t offset() const { return offset_; }

 private:
  bool error_ = false;
  int64_t offset_ = -1;
  std::string message_;
};

#define TFEDGE_RETURN_IF_ERROR(expr) \
  do {                               \
    ::tfedge::Status _s = (expr);    \
    if (!_s.ok()) return _s;         \
  } while (0)

// The 28-byte payload header.
struct Header {
  uint8_t version = 0;
  uint8_t layout = 0;
  uint8_t value_kind = 0;
  uint8_t element_type = 0;  // a TFLite schema TensorType value
  uint8_t element_size = 0;
  uint64_t decoded_size = 0;
  uint32_t body_size = 0;
  uint32_t crc = 0;
};

// CRC-32 (IEEE 802.3, zlib.crc32) continuing from `crc` (0 to start).
uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t n);

// A cursor over [data, data + size) that never reads outside it. Offsets in errors are
// relative to the payload start (`base` is this reader's first byte's payload offset).
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, size_t base)
      : data_(data), size_(size), base_(base) {}
  size_t remaining() const { return size_ - pos_; }
  size_t offset() const { return base_ + pos_; }  // payload offset of the next byte
  const uint8_t* current() const { return data_ + pos_; }
  Status ReadU8(const char* what, uint8_t* v);
  Status ReadU16(const char* what, uint16_t* v);
  Status ReadU32(const char* what, uint32_t* v);
  // Takes `n` bytes without copying them.
  Status Take(const char* what, size_t n, const uint8_t** out);

 private:
  const uint8_t* data_;
  size_t size_;
  size_t base_;
  size_t pos_ = 0;
};

// A stream of symbols read sequentially. Implementations never allocate after Open.
class SymbolReader {
 public:
  virtual ~SymbolReader() = default;
  uint32_t count() const { return count_; }
  int bits() const { return bits_; }
  // Decodes the next `n` symbols into `out`; fails when fewer than `n` remain or the
  // data is malformed.
  virtual Status Read(uint8_t* out, size_t n) = 0;
  // The same into 16-bit symbols (streams wider than 8 bits are rANS only).
  virtual Status Read16(uint16_t* out, size_t n);
  // From now on Read writes values[s] for symbol s, when the stream can only give
  // symbols below `k` and does this at no cost (a rANS stream of at most 8-bit
  // symbols whose table has none >= k): returns true. Otherwise nothing changes and
  // false is returned.
  virtual bool MapSymbols(const uint8_t* values, uint32_t k) {
    (void)values;
    (void)k;
    return false;
  }

 protected:
  uint32_t count_ = 0;
  int bits_ = 0;
  uint64_t produced_ = 0;
};

// Parses one stream (section 2.2) at the reader's position and advances past it.
// `max_count` bounds the symbol count before anything depending on it is read;
// `version` is the payload's format version (rANS needs 3).
Status OpenStream(ByteReader* reader, const char* name, uint64_t max_count,
                  std::unique_ptr<SymbolReader>* stream,
                  uint8_t version = kFormatVersion);

// Decodes one body layout/value-kind combination into `out` (header.decoded_size bytes).
class Codec {
 public:
  virtual ~Codec() = default;
  virtual Status Decode(const Header& header, ByteReader* body, uint8_t* out) const = 0;
};

// The codec table: nullptr for an unknown combination.
const Codec* CodecFor(uint8_t layout, uint8_t value_kind);

// Header checks of section 2 up to and including the decoded-size bound: everything
// that must hold before the caller allocates the output.
Status ParseHeader(const uint8_t* payload, size_t n, uint64_t max_decoded,
                   Header* header);

// All checks of section 2, then the body decoded into `out`, which must hold at least
// header.decoded_size bytes (`out_capacity`).
Status DecodePayload(const uint8_t* payload, size_t n, uint64_t max_decoded,
                     uint8_t* out, size_t out_capacity, Header* header);

}  // namespace tfedge

#endif  // TFEDGE_RUNTIME_CC_DECODER_H_
