// tfedge payload decoder: see decoder.h and docs/FORMAT.md section 2.
#include "decoder.h"

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__)) && !defined(TFEDGE_NO_SIMD)
#define TFEDGE_X86_SIMD 1
#include <immintrin.h>
#else
#define TFEDGE_X86_SIMD 0
#endif

namespace tfedge {

Status Status::Error(int64_t offset, const char* format, ...) {
  Status s;
  s.error_ = true;
  s.offset_ = offset;
  char buf[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  s.message_ = buf;
  return s;
}

// ---------------------------------------------------------------------------------
// CRC-32: carry-less multiplies where the CPU has them, else slicing by 8 (tables
// computed at compile time).

namespace {

struct CrcTables {
  uint32_t t[8][256];
};

constexpr CrcTables MakeCrcTables() {
  CrcTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    tables.t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) {
      const uint32_t prev = tables.t[s - 1][i];
      tables.t[s][i] = tables.t[0][prev & 0xFF] ^ (prev >> 8);
    }
  }
  return tables;
}

constexpr CrcTables kCrc = MakeCrcTables();

inline uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

inline uint64_t LoadLe64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadLe32(p)) |
         (static_cast<uint64_t>(LoadLe32(p + 4)) << 32);
}

inline uint64_t LoadBe64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return v;
#else
  return __builtin_bswap64(v);
#endif
}

}  // namespace

namespace {

// Byte-wise CRC-32 of `data` from the register `c` (not complemented), slicing by 8.
uint32_t Crc32Tables(uint32_t c, const uint8_t* data, size_t n) {
  while (n >= 8) {
    const uint32_t lo = LoadLe32(data) ^ c;
    const uint32_t hi = LoadLe32(data + 4);
    c = kCrc.t[7][lo & 0xFF] ^ kCrc.t[6][(lo >> 8) & 0xFF] ^
        kCrc.t[5][(lo >> 16) & 0xFF] ^ kCrc.t[4][lo >> 24] ^ kCrc.t[3][hi & 0xFF] ^
        kCrc.t[2][(hi >> 8) & 0xFF] ^ kCrc.t[1][(hi >> 16) & 0xFF] ^
        kCrc.t[0][hi >> 24];
    data += 8;
    n -= 8;
  }
  while (n--) c = kCrc.t[0][(c ^ *data++) & 0xFF] ^ (c >> 8);
  return c;
}

#if TFEDGE_X86_SIMD

// True when the CPU multiplies carry-less (PCLMULQDQ) and TFEDGE_NO_SIMD is unset.
bool UseClmul() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  }();
  const char* off = std::getenv("TFEDGE_NO_SIMD");
  return has && (off == nullptr || off[0] == '\0');
}

// CRC-32 by folding 16-byte chunks with carry-less multiplies (n >= 64). In the
// reflected bit order a 16-byte little-endian chunk is the polynomial H x^64 + L with
// H in its low 8 bytes; A x^k + B is congruent mod P to the next chunk B xor
// H (x^(k+32) mod P) x^32 xor L (x^(k-32) mod P) x^32, each a 64 x 33-bit product
// (the constants are x^(j-32) mod P bit-reversed over 33 bits, so that the product
// lands reflected in 128 bits). Four accumulators fold by 512 bits, then combine into
// one, which with the last n mod 16 bytes goes through the tables (a register
// congruent to the data's polynomial gives the same CRC).
#define TFEDGE_CLMUL __attribute__((target("pclmul,sse4.1")))

TFEDGE_CLMUL inline __m128i Load128(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

TFEDGE_CLMUL inline __m128i Fold(__m128i x, __m128i k, __m128i next) {
  const __m128i h = _mm_clmulepi64_si128(x, k, 0x00);  // H: the low 8 bytes
  const __m128i l = _mm_clmulepi64_si128(x, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(h, l), next);
}

TFEDGE_CLMUL uint32_t Crc32Clmul(uint32_t c, const uint8_t* data, size_t n) {
  // Folding by k bits: (low: x^(k+32) mod P, high: x^(k-32) mod P), reflected over
  // 33 bits.
  const __m128i k512 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4);
  const __m128i k128 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
  __m128i x0 = _mm_xor_si128(Load128(data), _mm_cvtsi32_si128(static_cast<int>(c)));
  __m128i x1 = Load128(data + 16), x2 = Load128(data + 32), x3 = Load128(data + 48);
  data += 64;
  n -= 64;
  for (; n >= 64; data += 64, n -= 64) {
    x0 = Fold(x0, k512, Load128(data));
    x1 = Fold(x1, k512, Load128(data + 16));
    x2 = Fold(x2, k512, Load128(data + 32));
    x3 = Fold(x3, k512, Load128(data + 48));
  }
  __m128i x = Fold(Fold(Fold(x0, k128, x1), k128, x2), k128, x3);
  for (; n >= 16; data += 16, n -= 16) x = Fold(x, k128, Load128(data));
  alignas(16) uint8_t rest[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(rest), x);
  return Crc32Tables(Crc32Tables(0, rest, 16), data, n);
}

#endif  // TFEDGE_X86_SIMD

}  // namespace

uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t n) {
#if TFEDGE_X86_SIMD
  if (n >= 64 && UseClmul()) return ~Crc32Clmul(~crc, data, n);
#endif
  return ~Crc32Tables(~crc, data, n);
}

// ---------------------------------------------------------------------------------
// ByteReader

Status ByteReader::ReadU8(const char* what, uint8_t* v) {
  if (remaining() < 1) {
    return Status::Error(offset(), "truncated: %s needs 1 byte, 0 left", what);
  }
  *v = data_[pos_++];
  return Status::Ok();
}

Status ByteReader::ReadU16(const char* what, uint16_t* v) {
  if (remaining() < 2) {
    return Status::Error(offset(), "truncated: %s needs 2 bytes, %zu left", what,
                         remaining());
  }
  *v = static_cast<uint16_t>(data_[pos_] | (data_[pos_ + 1] << 8));
  pos_ += 2;
  return Status::Ok();
}

Status ByteReader::ReadU32(const char* what, uint32_t* v) {
  if (remaining() < 4) {
    return Status::Error(offset(), "truncated: %s needs 4 bytes, %zu left", what,
                         remaining());
  }
  *v = LoadLe32(data_ + pos_);
  pos_ += 4;
  return Status::Ok();
}

Status ByteReader::Take(const char* what, size_t n, const uint8_t** out) {
  if (remaining() < n) {
    return Status::Error(offset(), "truncated: %s needs %zu bytes, %zu left", what, n,
                         remaining());
  }
  *out = data_ + pos_;
  pos_ += n;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------
// Streams (section 2.2)

Status SymbolReader::Read16(uint16_t* out, size_t n) {
  uint8_t chunk[4096];
  while (n > 0) {
    const size_t k = std::min(n, sizeof(chunk));
    TFEDGE_RETURN_IF_ERROR(Read(chunk, k));
    for (size_t i = 0; i < k; ++i) out[i] = chunk[i];
    out += k;
    n -= k;
  }
  return Status::Ok();
}

namespace {

// Bit k of the data is bit 7 - (k mod 8) of byte k div 8. Returns the 64 bits starting
// at byte `byte` (zeros past the end), most significant first.
inline uint64_t Load64Padded(const uint8_t* data, size_t size, size_t byte) {
  if (byte + 8 <= size) return LoadBe64(data + byte);
  uint64_t v = 0;
  for (size_t b = 0; b < 8; ++b) {
    const size_t i = byte + b;
    v = (v << 8) | (i < size ? data[i] : 0u);
  }
  return v;
}

class FixedWidthReader final : public SymbolReader {
 public:
  FixedWidthReader(int bits, uint32_t count, const uint8_t* data, size_t size,
                   size_t data_offset)
      : data_(data), size_(size), data_offset_(data_offset) {
    bits_ = bits;
    count_ = count;
  }

  Status Read(uint8_t* out, size_t n) override {
    if (n > count_ - produced_) {
      return Status::Error(static_cast<int64_t>(data_offset_),
                           "stream has %u symbols, %llu more were needed", count_,
                           static_cast<unsigned long long>(produced_ + n));
    }
    if (n == 0) return Status::Ok();
    if (bits_ == 8) {
      std::memcpy(out, data_ + produced_, n);
      produced_ += n;
      return Status::Ok();
    }
    const unsigned shift = 64u - static_cast<unsigned>(bits_);
    uint64_t pos = produced_ * static_cast<uint64_t>(bits_);
    for (size_t i = 0; i < n; ++i, pos += bits_) {
      const uint64_t v = Load64Padded(data_, size_, pos >> 3);
      out[i] = static_cast<uint8_t>((v << (pos & 7)) >> shift);
    }
    produced_ += n;
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t data_offset_;
};

class HuffmanReader final : public SymbolReader {
 public:
  HuffmanReader(int bits, uint32_t count, uint32_t block_size, const uint8_t* offsets,
                const uint8_t* data, size_t size, size_t data_offset)
      : block_size_(block_size),
        offsets_(offsets),
        data_(data),
        size_(size),
        data_offset_(data_offset) {
    bits_ = bits;
    count_ = count;
  }

  // Builds the lookup table from the code-length nibbles; validates them (section 2.2).
  Status Init(const uint8_t* lengths, size_t lengths_offset) {
    const int alphabet = 1 << bits_;
    uint8_t len[256];
    int nonzero = 0;
    int single = -1;
    max_len_ = 0;
    for (int s = 0; s < alphabet; ++s) {
      const uint8_t byte = lengths[s >> 1];
      len[s] = (s & 1) ? (byte & 0x0F) : (byte >> 4);
      if (len[s]) {
        ++nonzero;
        single = s;
        max_len_ = std::max<int>(max_len_, len[s]);
      }
    }
    const int64_t at = static_cast<int64_t>(lengths_offset);
    if (count_ == 0) {
      if (nonzero != 0) {
        return Status::Error(at,
                             "a stream of 0 symbols must have an all-zero code-length "
                             "table");
      }
      return Status::Ok();
    }
    if (nonzero == 0) {
      return Status::Error(at, "Huffman code lengths are all zero for %u symbols",
                           count_);
    }
    if (nonzero == 1) {
      if (len[single] != 1) {
        return Status::Error(at,
                             "Huffman table has one symbol (%d) whose code length is "
                             "%d, not 1",
                             single, len[single]);
      }
    } else {
      // Kraft's equality, in units of 2^-15.
      uint32_t kraft = 0;
      for (int s = 0; s < alphabet; ++s) {
        if (len[s]) kraft += 1u << (kMaxCodeLength - len[s]);
      }
      if (kraft != (1u << kMaxCodeLength)) {
        return Status::Error(at,
                             "Huffman code lengths are not a complete prefix code "
                             "(Kraft sum %u/32768, expected 32768/32768)",
                             kraft);
      }
    }
    // Canonical codes in (length, symbol) order; the table maps every max_len-bit
    // prefix to (length << 8 | symbol), 0 where no code matches.
    try {
      table_.assign(size_t{1} << max_len_, 0);
    } catch (const std::bad_alloc&) {
      return Status::Error(at, "out of memory for a Huffman table");
    }
    uint32_t code = 0;
    int prev_len = 0;
    for (int l = 1; l <= max_len_; ++l) {
      for (int s = 0; s < alphabet; ++s) {
        if (len[s] != l) continue;
        code <<= (l - prev_len);
        prev_len = l;
        const int span = max_len_ - l;
        const size_t first = static_cast<size_t>(code) << span;
        const size_t last = first + (size_t{1} << span);
        const uint16_t entry = static_cast<uint16_t>((l << 8) | s);
        for (size_t i = first; i < last; ++i) table_[i] = entry;
        ++code;
      }
    }
    // A first-level table of the codes up to kFastBits long (4 KiB, stays in L1);
    // 0 sends a lookup on to the full table (longer, rarer codes, or no code).
    fast_bits_ = std::min(max_len_, kFastBits);
    try {
      fast_.assign(size_t{1} << fast_bits_, 0);
    } catch (const std::bad_alloc&) {
      return Status::Error(at, "out of memory for a Huffman table");
    }
    for (size_t j = 0; j < fast_.size(); ++j) {
      const uint16_t e = table_[j << (max_len_ - fast_bits_)];
      if ((e >> 8) <= fast_bits_) fast_[j] = e;
    }
    return Status::Ok();
  }

  Status Read(uint8_t* out, size_t n) override {
    if (n > count_ - produced_) {
      return Status::Error(static_cast<int64_t>(data_offset_),
                           "stream has %u symbols, %llu more were needed", count_,
                           static_cast<unsigned long long>(produced_ + n));
    }
    while (n > 0) {
      if (block_left_ == 0) {
        // At a block boundary: whole blocks are independent, so decode kLanes of
        // them at once (their serial bit-position chains then overlap in the CPU).
        const uint64_t start = static_cast<uint64_t>(block_) * block_size_;
        const uint64_t group = static_cast<uint64_t>(kLanes) * block_size_;
        if (n >= group && count_ - start >= group) {
          TFEDGE_RETURN_IF_ERROR(DecodeBlockGroup(out));
          out += group;
          n -= static_cast<size_t>(group);
          produced_ += group;
          block_ += kLanes;
          continue;
        }
        pos_ = BlockStart(block_);
        block_left_ = std::min<uint64_t>(block_size_, count_ - start);
        ++block_;
      }
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, block_left_));
      TFEDGE_RETURN_IF_ERROR(DecodeRun(out, k));
      out += k;
      n -= k;
      block_left_ -= k;
      produced_ += k;
    }
    return Status::Ok();
  }

 private:
  static constexpr int kLanes = 4;
  static constexpr int kFastBits = 11;

  // The table entry (length << 8 | symbol, 0 for no code) of the code at the top of v.
  struct Tables {
    const uint16_t* fast;
    const uint16_t* full;
    unsigned fast_shift;
    unsigned full_shift;
    uint16_t operator()(uint64_t v) const {
      const uint16_t e = fast[v >> fast_shift];
      return __builtin_expect(e != 0, 1) ? e : full[v >> full_shift];
    }
  };
  Tables MakeTables() const {
    return Tables{fast_.data(), table_.data(), 64u - static_cast<unsigned>(fast_bits_),
                  64u - static_cast<unsigned>(max_len_)};
  }

  uint64_t BlockStart(uint64_t block) const {
    return block == 0 ? 0 : LoadLe32(offsets_ + 4 * (block - 1));
  }

  // Decodes blocks block_ .. block_ + kLanes - 1 (all full) into out.
  Status DecodeBlockGroup(uint8_t* out) {
    const Tables table = MakeTables();
    const uint8_t* data = data_;
    const size_t b = block_size_;
    uint64_t p[kLanes];
    for (int l = 0; l < kLanes; ++l) p[l] = BlockStart(block_ + l);
    uint8_t* o0 = out;
    uint8_t* o1 = out + b;
    uint8_t* o2 = out + 2 * b;
    uint8_t* o3 = out + 3 * b;
    size_t i = 0;
    if (size_ >= 8) {
      const uint64_t last = size_ - 8;  // the last byte an 8-byte load may start at
      uint64_t p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
      while (i < b && ((p0 >> 3) <= last) & ((p1 >> 3) <= last) & ((p2 >> 3) <= last) &
                          ((p3 >> 3) <= last)) {
        const uint16_t e0 = table(LoadBe64(data + (p0 >> 3)) << (p0 & 7));
        const uint16_t e1 = table(LoadBe64(data + (p1 >> 3)) << (p1 & 7));
        const uint16_t e2 = table(LoadBe64(data + (p2 >> 3)) << (p2 & 7));
        const uint16_t e3 = table(LoadBe64(data + (p3 >> 3)) << (p3 & 7));
        if ((e0 == 0) | (e1 == 0) | (e2 == 0) | (e3 == 0)) {
          return NoCode(e0 == 0 ? p0 : e1 == 0 ? p1 : e2 == 0 ? p2 : p3);
        }
        o0[i] = static_cast<uint8_t>(e0);
        o1[i] = static_cast<uint8_t>(e1);
        o2[i] = static_cast<uint8_t>(e2);
        o3[i] = static_cast<uint8_t>(e3);
        p0 += e0 >> 8;
        p1 += e1 >> 8;
        p2 += e2 >> 8;
        p3 += e3 >> 8;
        ++i;
      }
      p[0] = p0, p[1] = p1, p[2] = p2, p[3] = p3;
    }
    // Near the end of the data: finish each block on the checked path.
    for (int l = 0; l < kLanes; ++l) {
      pos_ = p[l];
      TFEDGE_RETURN_IF_ERROR(DecodeRun(out + l * b + i, b - i));
    }
    return Status::Ok();
  }

  Status DecodeRun(uint8_t* out, size_t k) {
    const Tables table = MakeTables();
    uint64_t pos = pos_;
    size_t i = 0;
    // Fast path: 8 readable bytes from pos's byte hold >= 57 bits, more than a code.
    while (i < k && (pos >> 3) + 8 <= size_) {
      const uint64_t v = LoadBe64(data_ + (pos >> 3)) << (pos & 7);
      const uint16_t e = table(v);
      if (e == 0) return NoCode(pos);
      out[i++] = static_cast<uint8_t>(e);
      pos += e >> 8;
    }
    const uint64_t total_bits = static_cast<uint64_t>(size_) * 8;
    for (; i < k; ++i) {
      if (pos >= total_bits) return PastEnd(pos);
      const uint64_t v = Load64Padded(data_, size_, pos >> 3) << (pos & 7);
      const uint16_t e = table(v);
      if (e == 0) return NoCode(pos);
      const unsigned l = e >> 8;
      if (pos + l > total_bits) return PastEnd(pos);
      out[i] = static_cast<uint8_t>(e);
      pos += l;
    }
    pos_ = pos;
    return Status::Ok();
  }

  Status NoCode(uint64_t pos) const {
    return Status::Error(static_cast<int64_t>(data_offset_ + (pos >> 3)),
                         "Huffman data: the bits at bit %llu are no code",
                         static_cast<unsigned long long>(pos));
  }
  Status PastEnd(uint64_t pos) const {
    return Status::Error(static_cast<int64_t>(data_offset_ + size_),
                         "Huffman data: decoding at bit %llu reads past the %zu data "
                         "bytes",
                         static_cast<unsigned long long>(pos), size_);
  }

  uint32_t block_size_;
  const uint8_t* offsets_;
  const uint8_t* data_;
  size_t size_;
  size_t data_offset_;
  int max_len_ = 0;
  int fast_bits_ = 0;
  std::vector<uint16_t> table_;
  std::vector<uint16_t> fast_;
  uint64_t block_ = 0;
  uint64_t block_left_ = 0;
  uint64_t pos_ = 0;
};


// Interleaved rANS (coding 2, format version 3): `lanes` 32-bit states share one
// stream of 16-bit little-endian words; symbol j of a block is decoded by lane
// j mod lanes: x = freq(s) * (x >> L) + (x mod 2^L) - cum(s), where s is the symbol
// whose slot range [cum, cum + freq) holds x mod 2^L, then, if x < 2^16, x = x << 16
// | next word. A block starts with its lanes' states (u32 each) and must end with
// every state at 2^16 and its words exactly consumed.
//
// Speed: one table entry per slot gives the symbol, its frequency and slot - cum
// (no search); a block's whole rounds (one symbol of every lane) run without
// per-symbol checks while the block has at least two bytes a lane left, which is
// every word a round can take; the last rounds of a block and a round split between
// two reads are stepped one symbol at a time with the bounds check. Rounds of 8, 16
// or 32 lanes use AVX2 where the CPU has it (8 lanes a vector: the slot entries
// loaded one by one, since a gather is several times slower on CPUs with the gather
// data sampling mitigation; the renormalisation words moved into the lanes that take
// them by one byte shuffle), scalar code elsewhere. A state is >= 2^16 before every step (checked
// at the block start; a step from x >= 2^16 gives x >= 1 and a renormalisation then
// x >= 2^16), so the slot x mod 2^L always indexes the table, and
// f * (x >> L) + (slot - cum) <= f * 2^(32 - L) - 1 fits 32 bits.

#if TFEDGE_X86_SIMD

// Lanes a vector of the AVX2 rounds.
constexpr int kRansVectorLanes = 8;

// For each mask m of the 8 lanes of a vector that take a word: the byte shuffle that
// moves word p of the 16 bytes after the word pointer into the low 16 bits of the
// lane of m's p-th set bit (both 128-bit halves hold the same 16 bytes), zeros
// elsewhere.
struct RansShuffle {
  alignas(32) uint8_t m[256][32];
};

constexpr RansShuffle MakeRansShuffle() {
  RansShuffle t{};
  for (int m = 0; m < 256; ++m) {
    int p = 0;
    for (int l = 0; l < kRansVectorLanes; ++l) {
      uint8_t* e = t.m[m] + 4 * l;
      const bool take = (m >> l) & 1;
      e[0] = take ? static_cast<uint8_t>(2 * p) : 0x80;
      e[1] = take ? static_cast<uint8_t>(2 * p + 1) : 0x80;
      e[2] = 0x80;
      e[3] = 0x80;
      p += take;
    }
  }
  return t;
}

constexpr RansShuffle kRansShuffle = MakeRansShuffle();

// The AVX2 rounds run when the CPU has AVX2 and the environment variable
// TFEDGE_NO_SIMD is unset or empty (set, it selects the scalar rounds, which tests
// compare against; read when a stream is opened).
bool UseAvx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  }();
  const char* off = std::getenv("TFEDGE_NO_SIMD");
  return has && (off == nullptr || off[0] == '\0');
}

// The table entries of 8 slots, one load each (not a gather: see above).
template <typename E>
__attribute__((target("avx2"))) inline __m256i Lookup8(const E* table, __m256i slots) {
  alignas(32) uint32_t s[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(s), slots);
  __m128i lo = _mm_cvtsi32_si128(static_cast<int>(table[s[0]]));
  __m128i hi = _mm_cvtsi32_si128(static_cast<int>(table[s[4]]));
  lo = _mm_insert_epi32(lo, static_cast<int>(table[s[1]]), 1);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[s[5]]), 1);
  lo = _mm_insert_epi32(lo, static_cast<int>(table[s[2]]), 2);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[s[6]]), 2);
  lo = _mm_insert_epi32(lo, static_cast<int>(table[s[3]]), 3);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[s[7]]), 3);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Whole rounds of 8 x V lanes, at most `rounds`, while the block has at least 2 bytes
// a lane left (`end` - word): vector v's 16-byte load starts at most 16 v bytes
// after the round's first word, so it ends within the block. Returns the rounds done;
// advances *word_io and the states.
template <typename T, bool PACKED, int V>
__attribute__((target("avx2,popcnt"))) size_t RansRoundsAvx2(
    uint32_t* state, const uint32_t* slot, const uint16_t* sym, int scale, T* out,
    size_t rounds, const uint8_t** word_io, const uint8_t* end) {
  constexpr int kLanes = kRansVectorLanes * V;
  __m256i x[V];
  for (int v = 0; v < V; ++v) {
    x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(state + 8 * v));
  }
  const __m256i mask = _mm256_set1_epi32(static_cast<int>((1u << scale) - 1));
  const __m128i shift = _mm_cvtsi32_si128(scale);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i sixteen = _mm256_set1_epi32(16);
  const __m256i zero = _mm256_setzero_si256();
  const __m256i low8 = _mm256_set1_epi32(0xFF);
  const __m256i low12 = _mm256_set1_epi32(0xFFF);
  const __m256i low16 = _mm256_set1_epi32(0xFFFF);
  const uint8_t* word = *word_io;
  size_t r = 0;
  for (; r < rounds && end - word >= 2 * kLanes; ++r) {
    for (int v = 0; v < V; ++v) {
      const __m256i s = _mm256_and_si256(x[v], mask);
      const __m256i e = Lookup8(slot, s);
      __m256i f, bias, y;
      if (PACKED) {
        f = _mm256_add_epi32(_mm256_srli_epi32(e, 20), one);
        bias = _mm256_and_si256(_mm256_srli_epi32(e, 8), low12);
        y = _mm256_and_si256(e, low8);
      } else {
        f = _mm256_add_epi32(_mm256_srli_epi32(e, 16), one);
        bias = _mm256_and_si256(e, low16);
        y = Lookup8(sym, s);
      }
      __m256i xv =
          _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srl_epi32(x[v], shift)), bias);
      // Lanes below 2^16 take the next words, in lane order.
      const __m256i need = _mm256_cmpeq_epi32(_mm256_srli_epi32(xv, 16), zero);
      const unsigned m =
          static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(need)));
      const __m256i words = _mm256_broadcastsi128_si256(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(word)));
      const __m256i to_lanes =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(kRansShuffle.m[m]));
      const __m256i w = _mm256_shuffle_epi8(words, to_lanes);
      x[v] = _mm256_or_si256(_mm256_sllv_epi32(xv, _mm256_and_si256(need, sixteen)), w);
      word += 2 * __builtin_popcount(m);
      const __m128i y16 =
          _mm_packus_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
      T* o = out + r * kLanes + kRansVectorLanes * v;
      if (sizeof(T) == 1) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(o), _mm_packus_epi16(y16, y16));
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), y16);
      }
    }
  }
  for (int v = 0; v < V; ++v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(state + 8 * v), x[v]);
  }
  *word_io = word;
  return r;
}

#endif  // TFEDGE_X86_SIMD

class RansReader final : public SymbolReader {
 public:
  static constexpr uint32_t kLow = kRansStateLow;

  RansReader(int bits, uint32_t count, int scale, int lanes, uint32_t block_size,
             const uint8_t* offsets, const uint8_t* data, size_t size,
             size_t data_offset)
      : scale_(scale),
        lanes_(lanes),
        block_size_(block_size),
        offsets_(offsets),
        data_(data),
        size_(size),
        data_offset_(data_offset) {
    bits_ = bits;
    count_ = count;
  }

  // Builds the slot table from the frequencies (already checked to sum to 2^L).
  Status Init(const uint32_t* freqs, size_t alphabet, size_t table_offset) {
    const size_t slots = size_t{1} << scale_;
    try {
      slot_.assign(slots, 0);
      sym_.assign(slots, 0);
    } catch (const std::bad_alloc&) {
      return Status::Error(static_cast<int64_t>(table_offset),
                           "out of memory for a rANS table");
    }
    // Symbols of at most 8 bits with L <= 12 fit one 32-bit entry per slot:
    // (freq - 1) << 20 | (slot - cum) << 8 | symbol (one load a symbol).
    packed_ = bits_ <= 8 && scale_ <= 12;
#if TFEDGE_X86_SIMD
    avx2_ = UseAvx2();
#endif
    alphabet_ = alphabet;
    uint32_t cum = 0;
    for (size_t s = 0; s < alphabet; ++s) {
      const uint32_t f = freqs[s];
      for (uint32_t k = 0; k < f; ++k) {
        // (freq - 1) << 16 | (slot - cum): freq <= 2^16, slot - cum < 2^16.
        slot_[cum + k] = packed_ ? ((f - 1) << 20) | (k << 8) | static_cast<uint32_t>(s)
                                 : ((f - 1) << 16) | k;
        sym_[cum + k] = static_cast<uint16_t>(s);
      }
      cum += f;
    }
    return Status::Ok();
  }

  Status Read(uint8_t* out, size_t n) override { return ReadAny(out, n); }
  Status Read16(uint16_t* out, size_t n) override { return ReadAny(out, n); }

  // The symbols' values go into the slot table (every symbol a slot holds is below
  // A <= k: the table's last described symbol, A - 1, is present).
  bool MapSymbols(const uint8_t* values, uint32_t k) override {
    if (bits_ > 8 || alphabet_ > k) return false;
    for (size_t i = 0; i < slot_.size(); ++i) {
      const uint8_t v = values[sym_[i]];
      sym_[i] = v;
      if (packed_) slot_[i] = (slot_[i] & ~0xFFu) | v;
    }
    return true;
  }

 private:
  template <typename T>
  Status ReadAny(T* out, size_t n) {
    if (n > count_ - produced_) {
      return Status::Error(static_cast<int64_t>(data_offset_),
                           "stream has %u symbols, %llu more were needed", count_,
                           static_cast<unsigned long long>(produced_ + n));
    }
    while (n > 0) {
      if (left_ == 0) TFEDGE_RETURN_IF_ERROR(StartBlock());
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, left_));
      if (packed_) {
        TFEDGE_RETURN_IF_ERROR((DecodeLanes<T, true>(out, k)));
      } else {
        TFEDGE_RETURN_IF_ERROR((DecodeLanes<T, false>(out, k)));
      }
      out += k;
      n -= k;
      left_ -= k;
      produced_ += k;
      if (left_ == 0) TFEDGE_RETURN_IF_ERROR(EndBlock());
    }
    return Status::Ok();
  }

  template <typename T, bool PACKED>
  Status DecodeLanes(T* out, size_t k) {
    switch (lanes_) {
      case 4:
        return DecodeRun<T, PACKED, 4>(out, k);
      case 8:
        return DecodeRun<T, PACKED, 8>(out, k);
      case 16:
        return DecodeRun<T, PACKED, 16>(out, k);
      case 32:
        return DecodeRun<T, PACKED, 32>(out, k);
      default:
        return DecodeRun<T, PACKED, 0>(out, k);
    }
  }

  uint64_t BlockStart(uint64_t block) const {
    return block == 0 ? 0 : LoadLe32(offsets_ + 4 * (block - 1));
  }

  Status StartBlock() {
    const uint64_t blocks = (static_cast<uint64_t>(count_) + block_size_ - 1) /
                            block_size_;
    const uint64_t begin = BlockStart(block_);
    const uint64_t end = block_ + 1 < blocks ? BlockStart(block_ + 1) : size_;
    const uint64_t head = 4u * static_cast<uint64_t>(lanes_);
    const int64_t at = static_cast<int64_t>(data_offset_ + begin);
    if (end - begin < head || (end - begin - head) % 2 != 0) {
      return Status::Error(at,
                           "rANS block %llu is %llu bytes: %d states of 4 bytes and "
                           "whole 16-bit words needed",
                           static_cast<unsigned long long>(block_),
                           static_cast<unsigned long long>(end - begin), lanes_);
    }
    for (int l = 0; l < lanes_; ++l) {
      x_[l] = LoadLe32(data_ + begin + 4 * l);
      if (x_[l] < kLow) {
        return Status::Error(at + 4 * l,
                             "rANS block %llu lane %d starts in state %u, below 2^16",
                             static_cast<unsigned long long>(block_), l, x_[l]);
      }
    }
    word_ = data_ + begin + head;
    end_ = data_ + end;
    left_ = std::min<uint64_t>(block_size_, count_ - block_ * block_size_);
    lane_ = 0;
    return Status::Ok();
  }

  Status EndBlock() {
    const int64_t at = static_cast<int64_t>(data_offset_ + BlockStart(block_));
    if (word_ != end_) {
      return Status::Error(at, "rANS block %llu leaves %lld bytes of words unread",
                           static_cast<unsigned long long>(block_),
                           static_cast<long long>(end_ - word_));
    }
    for (int l = 0; l < lanes_; ++l) {
      if (x_[l] != kLow) {
        return Status::Error(at,
                             "rANS block %llu does not end in the initial state "
                             "(corrupt data)",
                             static_cast<unsigned long long>(block_));
      }
    }
    ++block_;
    return Status::Ok();
  }

  // One symbol of lane state x, before its renormalisation.
  template <typename T, bool PACKED>
  static inline void Step(uint32_t& x, const uint32_t* slot, const uint16_t* sym,
                          uint32_t mask, int scale, T* out) {
    const uint32_t s = x & mask;
    const uint32_t e = slot[s];
    if (PACKED) {
      *out = static_cast<T>(e & 0xFF);
      x = ((e >> 20) + 1) * (x >> scale) + ((e >> 8) & 0xFFF);
    } else {
      *out = static_cast<T>(sym[s]);
      x = ((e >> 16) + 1) * (x >> scale) + (e & 0xFFFF);
    }
  }

  // Decodes k symbols of the current block (k <= left_). LANES is the lane count when
  // it is known at compile time (0: lanes_).
  template <typename T, bool PACKED, int LANES>
  Status DecodeRun(T* out, size_t k) {
    const int lanes = LANES ? LANES : lanes_;
    const uint32_t* slot = slot_.data();
    const uint16_t* sym = sym_.data();
    const uint32_t mask = (1u << scale_) - 1;
    const int scale = scale_;
    const uint8_t* word = word_;
    size_t i = 0;
    // Finish the round the previous call left open, one symbol at a time.
    while (i < k && lane_ != 0) {
      TFEDGE_RETURN_IF_ERROR(CheckedStep(x_[lane_], out + i, word));
      ++i;
      if (++lane_ == lanes) lane_ = 0;
    }
#if TFEDGE_X86_SIMD
    if (LANES % kRansVectorLanes == 0 && LANES >= kRansVectorLanes && avx2_) {
      constexpr int kV = LANES / kRansVectorLanes > 0 ? LANES / kRansVectorLanes : 1;
      i += LANES * RansRoundsAvx2<T, PACKED, kV>(x_, slot, sym, scale, out + i,
                                                  (k - i) / LANES, &word, end_);
    }
#endif
    if (LANES) {
      // Whole rounds while every lane may take a word without passing the end
      // (two bytes a lane a round, plus the padding-free load of the last word).
      uint32_t x[LANES ? LANES : 1];
      for (int l = 0; l < LANES; ++l) x[l] = x_[l];
      while (k - i >= static_cast<size_t>(LANES) &&
             end_ - word >= static_cast<ptrdiff_t>(2 * LANES + 2)) {
        // Every lane decodes (independent chains), then the lanes that fell below
        // 2^16 take the next words in lane order: word positions are a prefix sum,
        // so no load waits for another lane's decode.
        for (int l = 0; l < LANES; ++l) {
          Step<T, PACKED>(x[l], slot, sym, mask, scale, out + i + l);
        }
        size_t off = 0;
        for (int l = 0; l < LANES; ++l) {
          const uint32_t need = x[l] < kLow;
          const uint32_t w = static_cast<uint32_t>(word[off]) |
                             (static_cast<uint32_t>(word[off + 1]) << 8);
          x[l] = (x[l] << (need << 4)) | (w & (0u - need));  // branch-free
          off += 2 * need;
        }
        word += off;
        i += LANES;
      }
      for (int l = 0; l < LANES; ++l) x_[l] = x[l];
    }
    for (; i < k; ++i) {
      TFEDGE_RETURN_IF_ERROR(CheckedStep(x_[lane_], out + i, word));
      if (++lane_ == lanes) lane_ = 0;
    }
    word_ = word;
    return Status::Ok();
  }

  template <typename T>
  Status CheckedStep(uint32_t& x, T* out, const uint8_t*& word) {
    const uint32_t s = x & ((1u << scale_) - 1);
    const uint32_t e = slot_[s];
    *out = static_cast<T>(sym_[s]);
    x = packed_ ? ((e >> 20) + 1) * (x >> scale_) + ((e >> 8) & 0xFFF)
                : ((e >> 16) + 1) * (x >> scale_) + (e & 0xFFFF);
    if (x < kLow) {
      if (end_ - word < 2) {
        return Status::Error(static_cast<int64_t>(data_offset_ + (end_ - data_)),
                             "rANS block %llu reads past its data",
                             static_cast<unsigned long long>(block_));
      }
      x = (x << 16) | word[0] | (static_cast<uint32_t>(word[1]) << 8);
      word += 2;
    }
    return Status::Ok();
  }

  int scale_;
  int lanes_;
  uint32_t block_size_;
  const uint8_t* offsets_;
  const uint8_t* data_;
  size_t size_;
  size_t data_offset_;
  std::vector<uint32_t> slot_;
  std::vector<uint16_t> sym_;
  bool packed_ = false;
  size_t alphabet_ = 0;  // A
#if TFEDGE_X86_SIMD
  bool avx2_ = false;
#endif
  uint32_t x_[kMaxRansLanes] = {};
  const uint8_t* word_ = nullptr;
  const uint8_t* end_ = nullptr;
  uint64_t block_ = 0;
  uint64_t left_ = 0;
  int lane_ = 0;
};


// Reads a LEB128 varint of at most 3 bytes.
Status ReadVarint(ByteReader* r, uint32_t* v) {
  *v = 0;
  for (int shift = 0; shift < 21; shift += 7) {
    uint8_t b = 0;
    TFEDGE_RETURN_IF_ERROR(r->ReadU8("rANS frequency table", &b));
    *v |= static_cast<uint32_t>(b & 0x7F) << shift;
    if (b < 0x80) return Status::Ok();
  }
  return Status::Error(static_cast<int64_t>(r->offset()) - 1,
                       "rANS frequency table varint longer than 3 bytes");
}

// The frequency table (section 2.2): varint A, then per symbol a varint frequency, a
// zero followed by a varint count of further absent symbols. Reads exactly `table`.
Status ReadRansTable(ByteReader table, int bits, int scale, uint32_t count,
                     std::vector<uint32_t>* freqs) {
  const int64_t at = static_cast<int64_t>(table.offset());
  const uint32_t total = 1u << scale;
  uint32_t a = 0;
  TFEDGE_RETURN_IF_ERROR(ReadVarint(&table, &a));
  if (a > (1u << bits)) {
    return Status::Error(at, "rANS table describes %u symbols, the %d-bit alphabet "
                         "has %u", a, bits, 1u << bits);
  }
  try {
    freqs->assign(a, 0);
  } catch (const std::bad_alloc&) {
    return Status::Error(at, "out of memory for a rANS table");
  }
  uint64_t sum = 0;
  for (uint32_t s = 0; s < a;) {
    const int64_t item = static_cast<int64_t>(table.offset());
    uint32_t f = 0;
    TFEDGE_RETURN_IF_ERROR(ReadVarint(&table, &f));
    if (f > total) {
      return Status::Error(item, "rANS frequency %u exceeds the total 2^%d", f, scale);
    }
    if (f) {
      (*freqs)[s++] = f;
      sum += f;
      continue;
    }
    uint32_t run = 0;
    TFEDGE_RETURN_IF_ERROR(ReadVarint(&table, &run));
    if (static_cast<uint64_t>(s) + 1 + run > a) {
      return Status::Error(item, "rANS table run of %llu absent symbols passes A=%u",
                           static_cast<unsigned long long>(run) + 1, a);
    }
    s += 1 + run;
  }
  if (table.remaining() != 0) {
    return Status::Error(static_cast<int64_t>(table.offset()),
                         "%zu bytes after the rANS frequency table", table.remaining());
  }
  if (a != 0 && sum != total) {
    return Status::Error(at, "rANS frequencies sum to %llu, expected 2^%d",
                         static_cast<unsigned long long>(sum), scale);
  }
  if (a != 0 && (*freqs)[a - 1] == 0) {
    return Status::Error(at, "rANS table's last described symbol is absent");
  }
  if ((count == 0) != (a == 0)) {
    return Status::Error(at, "a rANS stream has an empty frequency table exactly when "
                         "it has 0 symbols");
  }
  return Status::Ok();
}

}  // namespace

namespace {

// The block offsets of a Huffman or rANS stream of `count` symbols in blocks of
// `block_size` symbols (`what` in truncation errors): ceil(count / block_size) - 1
// u32 offsets of blocks 1, 2, ..., ascending and at most `limit`, the data's size in
// `unit`s (bits for Huffman, bytes for rANS), so every block starts inside the data.
// `block` names a block in errors, which give the offending offset's byte offset.
Status ReadBlockOffsets(ByteReader* r, const char* name, const char* what,
                        const char* block, const char* unit, uint32_t count,
                        uint32_t block_size, uint64_t limit, const uint8_t** offsets) {
  const uint64_t blocks =
      count == 0 ? 0 : (static_cast<uint64_t>(count) + block_size - 1) / block_size;
  const uint64_t n_offsets = blocks == 0 ? 0 : blocks - 1;
  const size_t offsets_offset = r->offset();
  if (n_offsets * 4 > r->remaining()) {
    return Status::Error(static_cast<int64_t>(offsets_offset),
                         "truncated: %s stream needs %llu block offsets, %zu bytes "
                         "left",
                         name, static_cast<unsigned long long>(n_offsets),
                         r->remaining());
  }
  TFEDGE_RETURN_IF_ERROR(r->Take(what, static_cast<size_t>(n_offsets * 4), offsets));
  uint32_t prev = 0;
  for (uint64_t i = 0; i < n_offsets; ++i) {
    const uint32_t o = LoadLe32(*offsets + 4 * i);
    if (o < prev || o > limit) {
      return Status::Error(static_cast<int64_t>(offsets_offset + 4 * i),
                           "%s stream: %s %llu starts at %s %u (previous %u, data has "
                           "%llu %ss)",
                           name, block, static_cast<unsigned long long>(i + 1), unit,
                           o, prev, static_cast<unsigned long long>(limit), unit);
    }
    prev = o;
  }
  return Status::Ok();
}

// The rANS part of a stream (after coding, bits, count and data size).
Status OpenRans(ByteReader* r, const char* name, int64_t start, int bits,
                uint32_t count, uint32_t data_size,
                std::unique_ptr<SymbolReader>* stream) {
  uint8_t scale = 0, lanes = 0;
  uint32_t block_size = 0, table_size = 0;
  const int64_t at = static_cast<int64_t>(r->offset());
  TFEDGE_RETURN_IF_ERROR(r->ReadU8("rANS scale bits", &scale));
  TFEDGE_RETURN_IF_ERROR(r->ReadU8("rANS lanes", &lanes));
  TFEDGE_RETURN_IF_ERROR(r->ReadU32("rANS block size", &block_size));
  TFEDGE_RETURN_IF_ERROR(r->ReadU32("rANS table size", &table_size));
  if (scale < 1 || scale > kMaxRansScaleBits) {
    return Status::Error(at, "%s stream: rANS scale bits %u is not in 1..%d", name,
                         scale, kMaxRansScaleBits);
  }
  if (lanes < 1 || lanes > kMaxRansLanes) {
    return Status::Error(at + 1, "%s stream: rANS lane count %u is not in 1..%d", name,
                         lanes, kMaxRansLanes);
  }
  if (block_size < 1) {
    return Status::Error(at + 2, "%s stream: rANS block size is 0", name);
  }
  const size_t table_offset = r->offset();
  const uint8_t* table = nullptr;
  TFEDGE_RETURN_IF_ERROR(r->Take("rANS frequency table", table_size, &table));
  std::vector<uint32_t> freqs;
  TFEDGE_RETURN_IF_ERROR(ReadRansTable(ByteReader(table, table_size, table_offset),
                                       bits, scale, count, &freqs));
  const uint8_t* offsets = nullptr;
  TFEDGE_RETURN_IF_ERROR(ReadBlockOffsets(r, name, "rANS block offsets", "rANS block",
                                          "byte", count, block_size, data_size,
                                          &offsets));
  const size_t data_offset = r->offset();
  const uint8_t* data = nullptr;
  TFEDGE_RETURN_IF_ERROR(r->Take("stream data", data_size, &data));
  auto* rs = new (std::nothrow) RansReader(bits, count, scale, lanes, block_size,
                                           offsets, data, data_size, data_offset);
  if (rs == nullptr) return Status::Error(start, "out of memory");
  stream->reset(rs);
  return rs->Init(freqs.data(), freqs.size(), table_offset);
}

}  // namespace

Status OpenStream(ByteReader* r, const char* name, uint64_t max_count,
                  std::unique_ptr<SymbolReader>* stream, uint8_t version) {
  const int64_t start = static_cast<int64_t>(r->offset());
  uint8_t coding = 0, bits = 0;
  uint32_t count = 0, data_size = 0;
  TFEDGE_RETURN_IF_ERROR(r->ReadU8("stream coding", &coding));
  if (coding != kCodingFixed && coding != kCodingHuffman && coding != kCodingRans) {
    return Status::Error(start, "%s stream: unknown coding %u", name, coding);
  }
  if (coding == kCodingRans && version < 3) {
    return Status::Error(start,
                         "%s stream: a rANS stream needs payload format version 3, "
                         "this payload says %u",
                         name, version);
  }
  TFEDGE_RETURN_IF_ERROR(r->ReadU8("stream bits", &bits));
  const int widest = coding == kCodingRans ? kMaxRansBits : 8;
  if (bits < 1 || bits > widest) {
    return Status::Error(start + 1, "%s stream: symbol width %u is not in 1..%d", name,
                         bits, widest);
  }
  TFEDGE_RETURN_IF_ERROR(r->ReadU32("stream count", &count));
  if (count > max_count) {
    return Status::Error(start + 2, "%s stream: %u symbols, more than the %llu allowed",
                         name, count, static_cast<unsigned long long>(max_count));
  }
  TFEDGE_RETURN_IF_ERROR(r->ReadU32("stream data size", &data_size));
  if (coding == kCodingRans) {
    return OpenRans(r, name, start, bits, count, data_size, stream);
  }
  if (coding == kCodingFixed) {
    const uint64_t need = (static_cast<uint64_t>(count) * bits + 7) / 8;
    if (data_size != need) {
      return Status::Error(start + 6,
                           "%s stream: fixed-width data is %u bytes, expected %llu "
                           "(%u symbols of %u bits)",
                           name, data_size, static_cast<unsigned long long>(need),
                           count, bits);
    }
    const size_t data_offset = r->offset();
    const uint8_t* data = nullptr;
    TFEDGE_RETURN_IF_ERROR(r->Take("stream data", data_size, &data));
    // Padding bits are written as zero; like the numpy reader, they are not checked.
    stream->reset(new (std::nothrow)
                      FixedWidthReader(bits, count, data, data_size, data_offset));
  } else {
    uint32_t block_size = 0;
    TFEDGE_RETURN_IF_ERROR(r->ReadU32("Huffman block size", &block_size));
    if (block_size < 1) {
      return Status::Error(start + 10, "%s stream: Huffman block size is 0", name);
    }
    // The resource bound (docs/FORMAT.md, "Resource bound"; codecs/_limits.py).
    if (block_size > (uint32_t{1} << 16)) {
      return Status::Error(start + 10,
                           "%s stream: Huffman block size %u is over the 65536 symbols "
                           "a reader accepts",
                           name, block_size);
    }
    const size_t lengths_offset = r->offset();
    const uint8_t* lengths = nullptr;
    const size_t lengths_size = ((size_t{1} << bits) + 1) / 2;
    TFEDGE_RETURN_IF_ERROR(r->Take("Huffman code lengths", lengths_size, &lengths));
    if (static_cast<uint64_t>(count) > static_cast<uint64_t>(data_size) * 8) {
      return Status::Error(start + 2,
                           "%s stream: %u Huffman symbols cannot fit in %u data bytes "
                           "(every code takes at least one bit)",
                           name, count, data_size);
    }
    const uint8_t* offsets = nullptr;
    TFEDGE_RETURN_IF_ERROR(ReadBlockOffsets(r, name, "Huffman block offsets", "block",
                                            "bit", count, block_size,
                                            static_cast<uint64_t>(data_size) * 8,
                                            &offsets));
    const size_t data_offset = r->offset();
    const uint8_t* data = nullptr;
    TFEDGE_RETURN_IF_ERROR(r->Take("stream data", data_size, &data));
    auto* h = new (std::nothrow) HuffmanReader(bits, count, block_size, offsets, data,
                                               data_size, data_offset);
    if (h == nullptr) return Status::Error(start, "out of memory");
    stream->reset(h);
    TFEDGE_RETURN_IF_ERROR(h->Init(lengths, lengths_offset));
  }
  if (*stream == nullptr) return Status::Error(start, "out of memory");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------
// Codecs (section 2.1)

namespace {

// Entries per chunk of the sparse codecs: several Huffman blocks (>= 4096 symbols
// each by default), so that blocks are decoded kLanes at a time.
constexpr size_t kChunk = 1 << 16;

// Writes `n` copies of the `es`-byte element at `value` to `out`.
void FillElements(uint8_t* out, uint64_t n, const uint8_t* value, size_t es) {
  if (n == 0) return;
  bool same = true;
  for (size_t b = 1; b < es; ++b) same = same && value[b] == value[0];
  const uint64_t total = n * es;
  if (same) {
    std::memset(out, value[0], total);
    return;
  }
  std::memcpy(out, value, es);
  uint64_t done = es;
  while (done < total) {
    const uint64_t step = std::min(done, total - done);
    std::memcpy(out + done, out, step);
    done += step;
  }
}

// A codebook section (section 2.1), read in place from the payload. Index j of element
// i (channel c = (i div R) mod C) is stored entry j when j < G (an entry every channel
// shares), else stored entry c x (K - G) + j: the stored entries are the G shared ones,
// then each channel's K - G own ones. The codebook kind is one channel, G = K. Nothing
// is expanded to C x K entries: lookups read the stored entries directly.
struct Codebook {
  uint16_t k = 0;
  uint16_t shared = 0;  // G
  uint32_t channels = 1;
  uint32_t run = 1;  // R: per-channel kind only (with one channel, the run is moot)
  bool per_channel = false;
  const uint8_t* entries = nullptr;  // (G + C x (K - G)) x element size bytes

  // True when an index means the same entry in every channel (no channel lookup).
  bool one_table() const { return shared == k || channels == 1; }
  // Where in `entries` index j of an element of channel c is (j < k).
  uint64_t EntryOf(uint32_t j, uint64_t c) const {
    return j < shared ? j : c * static_cast<uint64_t>(k - shared) + j;
  }
};

Status ReadCodebookSize(ByteReader* body, uint16_t* k, int limit = kMaxCodebook) {
  const int64_t at = static_cast<int64_t>(body->offset());
  TFEDGE_RETURN_IF_ERROR(body->ReadU16("codebook size", k));
  if (*k < 1 || *k > limit) {
    return Status::Error(at, "codebook has %u entries, expected 1..%d", *k, limit);
  }
  return Status::Ok();
}

// Value kind 1: u16 K, then K entries. Version 3: up to 65535 entries of elements
// wider than one byte (their indices then up to 16 bits).
Status ReadCodebook(ByteReader* body, const Header& h, Codebook* book) {
  const size_t es = h.element_size;
  const int limit = h.version >= 3 && es > 1 ? kMaxLargeCodebook : kMaxCodebook;
  TFEDGE_RETURN_IF_ERROR(ReadCodebookSize(body, &book->k, limit));
  book->shared = book->k;
  return body->Take("codebook entries", static_cast<size_t>(book->k) * es,
                    &book->entries);
}

// Value kind 2: u16 K, u16 G, u32 C, u32 R, then G shared entries and C x (K - G)
// channel entries. Checked in the format's order, before anything is read or sized
// from G, C and R.
Status ReadChannelCodebook(ByteReader* body, size_t es, uint64_t n, Codebook* book) {
  TFEDGE_RETURN_IF_ERROR(ReadCodebookSize(body, &book->k));
  const int64_t at = static_cast<int64_t>(body->offset());
  if (body->remaining() < 10) {
    return Status::Error(at,
                         "truncated shared entry count, channel count and channel run: "
                         "10 bytes needed, %zu left",
                         body->remaining());
  }
  uint16_t shared = 0;
  uint32_t channels = 0, run = 0;
  TFEDGE_RETURN_IF_ERROR(body->ReadU16("shared entry count", &shared));
  TFEDGE_RETURN_IF_ERROR(body->ReadU32("channel count", &channels));
  TFEDGE_RETURN_IF_ERROR(body->ReadU32("channel run", &run));
  if (shared > book->k) {
    return Status::Error(at, "%u shared entries, more than the K=%u entries", shared,
                         book->k);
  }
  const int64_t channels_at = at + 2;
  if (channels < 1 || run < 1) {
    return Status::Error(channels_at,
                         "channel count %u and channel run %u must both be >= 1",
                         channels, run);
  }
  // C x R divides N; C x R is formed only once it is known to be <= N.
  if (n > 0 && (channels > n || run > n / channels ||
                n % (static_cast<uint64_t>(channels) * run) != 0)) {
    return Status::Error(channels_at,
                         "%u channels of %u elements do not tile the tensor's %llu "
                         "elements",
                         channels, run, static_cast<unsigned long long>(n));
  }
  // At most (256 + (2^32 - 1) x 256) x 8 bytes: no overflow in 64 bits.
  const uint32_t own = book->k - shared;
  const uint64_t need = (shared + static_cast<uint64_t>(channels) * own) * es;
  if (need > body->remaining()) {
    return Status::Error(static_cast<int64_t>(body->offset()),
                         "truncated: per-channel codebook entries need %llu bytes, %zu "
                         "left (%u shared entries, %u channels of %u own entries)",
                         static_cast<unsigned long long>(need), body->remaining(),
                         shared, channels, own);
  }
  book->shared = shared;
  book->channels = channels;
  book->run = run;
  book->per_channel = true;
  return body->Take("per-channel codebook entries", static_cast<size_t>(need),
                    &book->entries);
}

const char* PerChannel(const Codebook& book) {
  return book.per_channel ? " entries per channel" : "";
}

Status NoTrailing(const ByteReader& body) {
  if (body.remaining() != 0) {
    return Status::Error(static_cast<int64_t>(body.offset()),
                         "%zu trailing bytes after the value stream", body.remaining());
  }
  return Status::Ok();
}

Status CountIs(const SymbolReader& s, const char* name, uint64_t expected,
               int64_t at) {
  if (s.count() != expected) {
    return Status::Error(at, "%s stream has %u symbols, expected %llu", name, s.count(),
                         static_cast<unsigned long long>(expected));
  }
  return Status::Ok();
}

// Symbols wider than 8 bits are for codebook indices past 256 entries only.
Status ByteSymbols(const SymbolReader& s, const char* name, int64_t at) {
  if (s.bits() > 8) {
    return Status::Error(at + 1, "%s stream has %d-bit symbols, at most 8 allowed here",
                         name, s.bits());
  }
  return Status::Ok();
}

Status RawBits(const SymbolReader& s, int64_t at) {
  if (s.bits() != 8) {
    return Status::Error(at, "raw value stream has %d-bit symbols, expected 8",
                         s.bits());
  }
  return Status::Ok();
}

// Maps codebook indices to elements, one channel run at a time: out[i] = entry idx[i]
// of channel (i div R) mod C (a shared entry when idx[i] < G), checking idx[i] < K.
// Index i is read before element i is written, and elements are written in order.
template <size_t ES, typename I>
bool MapIndices(const uint8_t* idx, uint64_t n, const Codebook& book, uint8_t* out,
                uint64_t* bad) {
  const uint32_t k = book.k;
  const uint8_t* const shared = book.entries;
  if (book.one_table()) {
    for (uint64_t i = 0; i < n; ++i) {
      I j;  // read before element i's bytes may cover it
      std::memcpy(&j, idx + i * sizeof(I), sizeof(I));
      if (j >= k) {
        *bad = i;
        return false;
      }
      std::memcpy(out + i * ES, shared + static_cast<size_t>(j) * ES, ES);
    }
    return true;
  }
  const uint16_t g = book.shared;
  const uint64_t run = book.run;
  // Channel c's index j >= G is stored entry c x (K - G) + j.
  const size_t stride = static_cast<size_t>(k - g) * ES;
  uint32_t c = 0;
  for (uint64_t i = 0; i < n;) {
    const uint8_t* own = book.entries + static_cast<size_t>(c) * stride;
    const uint64_t end = n - i < run ? n : i + run;
    for (; i < end; ++i) {
      I j;  // read before element i's bytes may cover it
      std::memcpy(&j, idx + i * sizeof(I), sizeof(I));
      if (j >= k) {
        *bad = i;
        return false;
      }
      const uint8_t* base = j < g ? shared : own;
      std::memcpy(out + i * ES, base + static_cast<size_t>(j) * ES, ES);
    }
    if (++c == book.channels) c = 0;
  }
  return true;
}

// `wide`: 16-bit little-endian indices (a codebook of more than 256 entries).
bool MapIndicesAny(size_t es, bool wide, const uint8_t* idx, uint64_t n,
                   const Codebook& book, uint8_t* out, uint64_t* bad) {
  if (wide) {
    switch (es) {
      case 2:
        return MapIndices<2, uint16_t>(idx, n, book, out, bad);
      case 4:
        return MapIndices<4, uint16_t>(idx, n, book, out, bad);
      default:
        return MapIndices<8, uint16_t>(idx, n, book, out, bad);
    }
  }
  switch (es) {
    case 1:
      return MapIndices<1, uint8_t>(idx, n, book, out, bad);
    case 2:
      return MapIndices<2, uint8_t>(idx, n, book, out, bad);
    case 4:
      return MapIndices<4, uint8_t>(idx, n, book, out, bad);
    default:
      return MapIndices<8, uint8_t>(idx, n, book, out, bad);
  }
}

// A codebook's index stream: at most 8-bit symbols, 16 past 256 entries.
Status IndexSymbols(const SymbolReader& s, const Codebook& book, int64_t at) {
  const int widest = book.k > kMaxCodebook ? 16 : 8;
  if (s.bits() > widest) {
    return Status::Error(at + 1, "value stream has %d-bit symbols, at most %d allowed",
                         s.bits(), widest);
  }
  return Status::Ok();
}

class DenseRawCodec final : public Codec {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    const int64_t at = static_cast<int64_t>(body->offset());
    std::unique_ptr<SymbolReader> v;
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "value", h.decoded_size, &v, h.version));
    TFEDGE_RETURN_IF_ERROR(RawBits(*v, at));
    TFEDGE_RETURN_IF_ERROR(CountIs(*v, "value", h.decoded_size, at));
    TFEDGE_RETURN_IF_ERROR(NoTrailing(*body));
    return v->Read(out, h.decoded_size);
  }
};

// Shared by both dense codebook codecs: N indices, each looked up in its channel.
class DenseCodebookCodecBase : public Codec {
 protected:
  Status DecodeDense(const Header& h, ByteReader* body, const Codebook& book,
                     uint8_t* out) const {
    const size_t es = h.element_size;
    const uint64_t n = h.decoded_size / es;
    const int64_t at = static_cast<int64_t>(body->offset());
    std::unique_ptr<SymbolReader> v;
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "value", n, &v, h.version));
    TFEDGE_RETURN_IF_ERROR(IndexSymbols(*v, book, at));
    TFEDGE_RETURN_IF_ERROR(CountIs(*v, "value", n, at));
    TFEDGE_RETURN_IF_ERROR(NoTrailing(*body));
    // The N indices (w bytes each, w <= es: 16-bit ones only with es >= 2) go to the
    // last N x w bytes of the output, then map forward in place: element i ends at
    // byte (i + 1) * es <= N * (es - w) + (i + 1) * w, where index i + 1 starts, so no
    // index is overwritten before it is read. No scratch memory.
    const bool wide = v->bits() > 8;
    // One-byte entries of one table whose every index the stream can give is valid:
    // the stream writes the entries itself.
    if (es == 1 && book.one_table() && v->MapSymbols(book.entries, book.k)) {
      return v->Read(out, static_cast<size_t>(n));
    }
    const size_t w = wide ? 2 : 1;
    uint8_t* idx = out + n * (es - w);
    if (wide) {
      std::unique_ptr<uint16_t[]> chunk(new (std::nothrow) uint16_t[kChunk]);
      if (!chunk) return Status::Error(-1, "out of memory");
      for (uint64_t done = 0; done < n;) {
        const size_t c = static_cast<size_t>(std::min<uint64_t>(kChunk, n - done));
        TFEDGE_RETURN_IF_ERROR(v->Read16(chunk.get(), c));
        std::memcpy(idx + 2 * done, chunk.get(), 2 * c);  // little-endian hosts
        done += c;
      }
    } else {
      TFEDGE_RETURN_IF_ERROR(v->Read(idx, static_cast<size_t>(n)));
    }
    uint64_t bad = 0;
    if (!MapIndicesAny(es, wide, idx, n, book, out, &bad)) {
      uint32_t j = idx[bad * w];
      if (wide) j |= static_cast<uint32_t>(idx[bad * w + 1]) << 8;
      return Status::Error(at, "element %llu has codebook index %u, codebook has %u%s",
                           static_cast<unsigned long long>(bad), j, book.k,
                           PerChannel(book));
    }
    return Status::Ok();
  }
};

class DenseCodebookCodec final : public DenseCodebookCodecBase {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    Codebook book;
    TFEDGE_RETURN_IF_ERROR(ReadCodebook(body, h, &book));
    return DecodeDense(h, body, book, out);
  }
};

class DenseChannelCodebookCodec final : public DenseCodebookCodecBase {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    Codebook book;
    TFEDGE_RETURN_IF_ERROR(ReadChannelCodebook(
        body, h.element_size, h.decoded_size / h.element_size, &book));
    return DecodeDense(h, body, book, out);
  }
};

// Shared by the sparse codecs: fill, then place the stored entries along the gaps.
class SparseCodecBase : public Codec {
 protected:
  // `book` is null for raw values. With a per-channel codebook, an entry's channel is
  // that of the element the cursor gives it.
  Status DecodeSparse(const Header& h, ByteReader* body, uint8_t* out,
                      const Codebook* book) const {
    const size_t es = h.element_size;
    const uint64_t n = h.decoded_size / es;
    const uint8_t* fill = nullptr;
    TFEDGE_RETURN_IF_ERROR(body->Take("fill value", es, &fill));
    const int64_t g_at = static_cast<int64_t>(body->offset());
    std::unique_ptr<SymbolReader> g;
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "gap", n, &g, h.version));
    TFEDGE_RETURN_IF_ERROR(ByteSymbols(*g, "gap", g_at));
    const uint64_t s = g->count();
    const int64_t v_at = static_cast<int64_t>(body->offset());
    std::unique_ptr<SymbolReader> v;
    const uint64_t v_count = book ? s : s * es;
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "value", v_count, &v, h.version));
    if (!book) TFEDGE_RETURN_IF_ERROR(RawBits(*v, v_at));
    if (book) {
      TFEDGE_RETURN_IF_ERROR(IndexSymbols(*v, *book, v_at));
    } else {
      TFEDGE_RETURN_IF_ERROR(ByteSymbols(*v, "value", v_at));
    }
    const bool wide = v->bits() > 8;
    TFEDGE_RETURN_IF_ERROR(CountIs(*v, "value", v_count, v_at));
    TFEDGE_RETURN_IF_ERROR(NoTrailing(*body));

    FillElements(out, n, fill, es);
    // Scratch for one chunk of entries: bounded, and at most the entry count.
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kChunk, s));
    std::unique_ptr<uint8_t[]> scratch(new (std::nothrow) uint8_t[chunk * (1 + es) + 1]);
    std::unique_ptr<uint16_t[]> wide_vals(wide ? new (std::nothrow) uint16_t[chunk + 1]
                                               : nullptr);
    if (!scratch || (wide && !wide_vals)) return Status::Error(-1, "out of memory");
    uint8_t* gaps = scratch.get();
    uint8_t* vals = gaps + chunk;
    const bool channels = book != nullptr && !book->one_table();
    int64_t cursor = -1;
    const int64_t last = static_cast<int64_t>(n);
    for (uint64_t done = 0; done < s;) {
      const size_t c = static_cast<size_t>(std::min<uint64_t>(kChunk, s - done));
      TFEDGE_RETURN_IF_ERROR(g->Read(gaps, c));
      if (wide) {
        TFEDGE_RETURN_IF_ERROR(v->Read16(wide_vals.get(), c));
      } else {
        TFEDGE_RETURN_IF_ERROR(v->Read(vals, book ? c : c * es));
      }
      for (size_t j = 0; j < c; ++j) {
        cursor += static_cast<int64_t>(gaps[j]) + 1;
        if (cursor >= last) {
          return Status::Error(g_at,
                               "stored entry %llu lands at element %lld, past the %llu "
                               "elements",
                               static_cast<unsigned long long>(done + j),
                               static_cast<long long>(cursor),
                               static_cast<unsigned long long>(n));
        }
        const uint8_t* src;
        if (book) {
          const uint32_t index = wide ? wide_vals[j] : vals[j];
          if (index >= book->k) {
            return Status::Error(v_at,
                                 "stored entry %llu has codebook index %u, codebook "
                                 "has %u%s",
                                 static_cast<unsigned long long>(done + j), index,
                                 book->k, PerChannel(*book));
          }
          uint64_t entry = index;
          if (channels) {
            entry = book->EntryOf(
                index, static_cast<uint64_t>(cursor) / book->run % book->channels);
          }
          src = book->entries + static_cast<size_t>(entry) * es;
        } else {
          src = vals + j * es;
        }
        std::memcpy(out + static_cast<uint64_t>(cursor) * es, src, es);
      }
      done += c;
    }
    return Status::Ok();
  }
};

class SparseRawCodec final : public SparseCodecBase {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    return DecodeSparse(h, body, out, nullptr);
  }
};

class SparseCodebookCodec final : public SparseCodecBase {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    Codebook book;
    TFEDGE_RETURN_IF_ERROR(ReadCodebook(body, h, &book));
    return DecodeSparse(h, body, out, &book);
  }
};

class SparseChannelCodebookCodec final : public SparseCodecBase {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    Codebook book;
    TFEDGE_RETURN_IF_ERROR(ReadChannelCodebook(
        body, h.element_size, h.decoded_size / h.element_size, &book));
    return DecodeSparse(h, body, out, &book);
  }
};

// Value kind 3 (format version 3): the element bits rotated left by R, each byte
// position b (0 = least significant) its own stream of 8-bit symbols.
Status ReadRotation(ByteReader* body, size_t es, uint8_t* rotation) {
  const int64_t at = static_cast<int64_t>(body->offset());
  TFEDGE_RETURN_IF_ERROR(body->ReadU8("plane rotation", rotation));
  if (*rotation >= 8 * es) {
    return Status::Error(at, "plane rotation %u is not in [0, %zu]", *rotation,
                         8 * es - 1);
  }
  return Status::Ok();
}

// Opens the element-size plane streams of `count` 8-bit symbols each.
Status OpenPlanes(const Header& h, ByteReader* body, uint64_t count,
                  std::unique_ptr<SymbolReader>* planes) {
  for (size_t b = 0; b < h.element_size; ++b) {
    const int64_t at = static_cast<int64_t>(body->offset());
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "plane", count, &planes[b], h.version));
    if (planes[b]->bits() != 8) {
      return Status::Error(at + 1, "plane stream %zu has %d-bit symbols, expected 8", b,
                           planes[b]->bits());
    }
    TFEDGE_RETURN_IF_ERROR(CountIs(*planes[b], "plane", count, at));
  }
  return NoTrailing(*body);
}

// Elements a chunk of the planes codecs: every plane's symbols of a chunk stay in
// cache (es x 16 KiB) until they are interleaved.
constexpr size_t kPlaneChunk = 1 << 14;

// Interleaves `c` symbols of each plane (plane b at planes + b x c) into c elements
// at `out`, rotating each right by R: element = (P_0 | P_1 << 8 | ...) rotr R.
template <typename U>
void InterleavePlanes(const uint8_t* planes, size_t c, unsigned r, uint8_t* out) {
  constexpr unsigned kBits = 8 * sizeof(U);
  const unsigned left = (kBits - r) % kBits;  // no shift by kBits when r = 0
  for (size_t i = 0; i < c; ++i) {
    U u = 0;
    for (size_t b = 0; b < sizeof(U); ++b) {
      u |= static_cast<U>(static_cast<U>(planes[b * c + i]) << (8 * b));
    }
    u = static_cast<U>((u >> r) | (u << left));
    std::memcpy(out + i * sizeof(U), &u, sizeof(U));  // little-endian hosts
  }
}

// Reads `c` symbols of every plane into `scratch` (es x c bytes) and interleaves
// them into c elements at `out`, undoing the rotation R.
Status ReadPlaneChunk(std::unique_ptr<SymbolReader>* planes, size_t es, size_t c,
                      unsigned r, uint8_t* scratch, uint8_t* out) {
  for (size_t b = 0; b < es; ++b) {
    TFEDGE_RETURN_IF_ERROR(planes[b]->Read(scratch + b * c, c));
  }
  switch (es) {
    case 1:
      InterleavePlanes<uint8_t>(scratch, c, r, out);
      break;
    case 2:
      InterleavePlanes<uint16_t>(scratch, c, r, out);
      break;
    case 4:
      InterleavePlanes<uint32_t>(scratch, c, r, out);
      break;
    default:
      InterleavePlanes<uint64_t>(scratch, c, r, out);
      break;
  }
  return Status::Ok();
}

class DensePlanesCodec final : public Codec {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    const size_t es = h.element_size;
    const uint64_t n = h.decoded_size / es;
    uint8_t rotation = 0;
    TFEDGE_RETURN_IF_ERROR(ReadRotation(body, es, &rotation));
    std::unique_ptr<SymbolReader> planes[8];
    TFEDGE_RETURN_IF_ERROR(OpenPlanes(h, body, n, planes));
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kPlaneChunk, n));
    std::unique_ptr<uint8_t[]> scratch(new (std::nothrow) uint8_t[chunk * es + 1]);
    if (!scratch) return Status::Error(-1, "out of memory");
    for (uint64_t done = 0; done < n;) {
      const size_t c = static_cast<size_t>(std::min<uint64_t>(kPlaneChunk, n - done));
      TFEDGE_RETURN_IF_ERROR(
          ReadPlaneChunk(planes, es, c, rotation, scratch.get(), out + done * es));
      done += c;
    }
    return Status::Ok();
  }
};

class SparsePlanesCodec final : public Codec {
 public:
  Status Decode(const Header& h, ByteReader* body, uint8_t* out) const override {
    const size_t es = h.element_size;
    const uint64_t n = h.decoded_size / es;
    uint8_t rotation = 0;
    TFEDGE_RETURN_IF_ERROR(ReadRotation(body, es, &rotation));
    const uint8_t* fill = nullptr;
    TFEDGE_RETURN_IF_ERROR(body->Take("fill value", es, &fill));
    const int64_t g_at = static_cast<int64_t>(body->offset());
    std::unique_ptr<SymbolReader> g;
    TFEDGE_RETURN_IF_ERROR(OpenStream(body, "gap", n, &g, h.version));
    TFEDGE_RETURN_IF_ERROR(ByteSymbols(*g, "gap", g_at));
    const uint64_t s = g->count();
    std::unique_ptr<SymbolReader> planes[8];
    TFEDGE_RETURN_IF_ERROR(OpenPlanes(h, body, s, planes));

    FillElements(out, n, fill, es);
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(kChunk, s));
    // Gaps, the planes' symbols and the elements of one chunk.
    std::unique_ptr<uint8_t[]> scratch(new (std::nothrow)
                                           uint8_t[chunk * (1 + 2 * es) + 1]);
    if (!scratch) return Status::Error(-1, "out of memory");
    uint8_t* gaps = scratch.get();
    uint8_t* tmp = gaps + chunk;
    uint8_t* vals = tmp + chunk * es;
    int64_t cursor = -1;
    const int64_t last = static_cast<int64_t>(n);
    for (uint64_t done = 0; done < s;) {
      const size_t c = static_cast<size_t>(std::min<uint64_t>(kChunk, s - done));
      TFEDGE_RETURN_IF_ERROR(g->Read(gaps, c));
      TFEDGE_RETURN_IF_ERROR(ReadPlaneChunk(planes, es, c, rotation, tmp, vals));
      for (size_t j = 0; j < c; ++j) {
        cursor += static_cast<int64_t>(gaps[j]) + 1;
        if (cursor >= last) {
          return Status::Error(g_at,
                               "stored entry %llu lands at element %lld, past the %llu "
                               "elements",
                               static_cast<unsigned long long>(done + j),
                               static_cast<long long>(cursor),
                               static_cast<unsigned long long>(n));
        }
        std::memcpy(out + static_cast<uint64_t>(cursor) * es, vals + j * es, es);
      }
      done += c;
    }
    return Status::Ok();
  }
};

const DenseRawCodec kDenseRaw;
const DenseCodebookCodec kDenseCodebook;
const DenseChannelCodebookCodec kDenseChannelCodebook;
const SparseRawCodec kSparseRaw;
const SparseCodebookCodec kSparseCodebook;
const SparseChannelCodebookCodec kSparseChannelCodebook;
const DensePlanesCodec kDensePlanes;
const SparsePlanesCodec kSparsePlanes;

// Indexed by [layout][value kind].
const Codec* const kCodecs[2][4] = {
    {&kDenseRaw, &kDenseCodebook, &kDenseChannelCodebook, &kDensePlanes},
    {&kSparseRaw, &kSparseCodebook, &kSparseChannelCodebook, &kSparsePlanes},
};

}  // namespace

const Codec* CodecFor(uint8_t layout, uint8_t value_kind) {
  if (layout > kLayoutSparse || value_kind > kValuePlanes) return nullptr;
  return kCodecs[layout][value_kind];
}

// ---------------------------------------------------------------------------------
// Header (section 2) and the whole payload

Status ParseHeader(const uint8_t* p, size_t n, uint64_t max_decoded, Header* h) {
  if (p == nullptr || n < kHeaderSize) {
    return Status::Error(0, "payload is %zu bytes, shorter than the %zu-byte header",
                         p == nullptr ? size_t{0} : n, kHeaderSize);
  }
  if (std::memcmp(p, "TFEP", 4) != 0) {
    return Status::Error(0, "bad magic %02x %02x %02x %02x, expected \"TFEP\"", p[0],
                         p[1], p[2], p[3]);
  }
  h->version = p[4];
  if (h->version < 1) {
    return Status::Error(4, "unknown payload format version %u", h->version);
  }
  if (h->version > kFormatVersion) {
    return Status::Error(4,
                         "format version %u is newer than this reader's %u; upgrade "
                         "tfedge",
                         h->version, kFormatVersion);
  }
  h->layout = p[5];
  if (h->layout > kLayoutSparse) {
    return Status::Error(5, "unknown layout %u", h->layout);
  }
  h->value_kind = p[6];
  if (h->value_kind > kValuePlanes) {
    return Status::Error(6, "unknown value kind %u", h->value_kind);
  }
  if (h->value_kind == kValuePlanes && h->version < 3) {
    return Status::Error(6,
                         "value kind %u (byte planes) needs payload format version 3, "
                         "this payload says %u",
                         h->value_kind, h->version);
  }
  if (h->value_kind == kValueChannelCodebook && h->version < 2) {
    return Status::Error(6,
                         "value kind %u (per-channel codebook) needs payload format "
                         "version 2, this payload says %u",
                         h->value_kind, h->version);
  }
  h->element_type = p[7];
  h->element_size = p[8];
  if (h->element_size != 1 && h->element_size != 2 && h->element_size != 4 &&
      h->element_size != 8) {
    return Status::Error(8, "element size %u is not 1, 2, 4 or 8", h->element_size);
  }
  if (p[9] != 0 || p[10] != 0 || p[11] != 0) {
    return Status::Error(9, "reserved bytes are not zero");
  }
  h->decoded_size = LoadLe64(p + 12);
  if (h->decoded_size % h->element_size != 0) {
    return Status::Error(12,
                         "decoded size %llu is not a multiple of the element size %u",
                         static_cast<unsigned long long>(h->decoded_size),
                         h->element_size);
  }
  if (h->decoded_size > max_decoded) {
    return Status::Error(12, "decoded size %llu exceeds the bound of %llu bytes",
                         static_cast<unsigned long long>(h->decoded_size),
                         static_cast<unsigned long long>(max_decoded));
  }
  h->body_size = LoadLe32(p + 20);
  h->crc = LoadLe32(p + 24);
  return Status::Ok();
}

Status DecodePayload(const uint8_t* p, size_t n, uint64_t max_decoded, uint8_t* out,
                     size_t out_capacity, Header* header) {
  Header h;
  TFEDGE_RETURN_IF_ERROR(ParseHeader(p, n, max_decoded, &h));
  if (static_cast<uint64_t>(h.body_size) != n - kHeaderSize) {
    return Status::Error(20, "body size %u does not match the %zu bytes present",
                         h.body_size, n - kHeaderSize);
  }
  uint32_t crc = Crc32(0, p, 24);
  crc = Crc32(crc, p + kHeaderSize, n - kHeaderSize);
  if (crc != h.crc) {
    return Status::Error(24, "CRC mismatch: header says %08x, content has %08x", h.crc,
                         crc);
  }
  if (out_capacity < h.decoded_size || (out == nullptr && h.decoded_size != 0)) {
    return Status::Error(-1, "output buffer of %zu bytes is smaller than the %llu "
                         "decoded bytes",
                         out_capacity, static_cast<unsigned long long>(h.decoded_size));
  }
  if (header != nullptr) *header = h;
  ByteReader body(p + kHeaderSize, n - kHeaderSize, kHeaderSize);
  return CodecFor(h.layout, h.value_kind)->Decode(h, &body, out);
}

}  // namespace tfedge
