// The rANS stream encoder (docs/FORMAT.md section 2.3), the packer's fast path: the
// same bytes as tfedge.codecs' numpy encoder (`_rans.rans_encode`), which stays the
// reference and is used when this library is not built. See c_api.h.
#include <algorithm>
#include <vector>

#include "c_api.h"
#include "decoder.h"

namespace {

// The decoder's limits and state bound (decoder.h): what this writes, it reads.
constexpr uint32_t kStateLow = tfedge::kRansStateLow;
constexpr int kMaxLanes = tfedge::kMaxRansLanes;
constexpr int kMaxScaleBits = tfedge::kMaxRansScaleBits;

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

}  // namespace

extern "C" {

int tfedge_rans_encode(const int32_t* symbols, size_t count, const uint32_t* freqs,
                       size_t alphabet, int scale_bits, int lanes, size_t block_size,
                       uint8_t* out, size_t out_capacity, uint64_t* block_offsets,
                       size_t* out_size) {
  if (symbols == nullptr && count > 0) return TFEDGE_ARGUMENT_ERROR;
  if (freqs == nullptr || out_size == nullptr) return TFEDGE_ARGUMENT_ERROR;
  if (lanes < 1 || lanes > kMaxLanes || scale_bits < 1 || scale_bits > kMaxScaleBits ||
      block_size == 0 || alphabet == 0) {
    return TFEDGE_ARGUMENT_ERROR;
  }
  std::vector<uint32_t> cum(alphabet);
  uint64_t total = 0;
  for (size_t s = 0; s < alphabet; ++s) {
    cum[s] = static_cast<uint32_t>(total);
    total += freqs[s];
  }
  if (total != (uint64_t{1} << scale_bits)) return TFEDGE_ARGUMENT_ERROR;
  for (size_t i = 0; i < count; ++i) {
    const int32_t s = symbols[i];
    if (s < 0 || static_cast<size_t>(s) >= alphabet || freqs[s] == 0) {
      return TFEDGE_ARGUMENT_ERROR;
    }
  }
  const size_t nblocks = count == 0 ? 0 : (count + block_size - 1) / block_size;
  const size_t full_steps = (std::min(block_size, count) + lanes - 1) / lanes;
  // Each step of each lane emits at most one 16-bit word.
  const uint64_t worst = uint64_t{nblocks} * 4 * lanes + uint64_t{2} * count;
  if (out == nullptr || out_capacity < worst) return TFEDGE_ARGUMENT_ERROR;
  const uint32_t shift = 32 - scale_bits;
  std::vector<uint16_t> words(full_steps * lanes);
  std::vector<uint32_t> step_words(full_steps + 1);
  size_t at = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    const size_t first = b * block_size;
    const size_t n = std::min(block_size, count - first);
    const size_t steps = (n + lanes - 1) / lanes;
    const int32_t* sym = symbols + first;
    uint32_t x[kMaxLanes];
    for (int l = 0; l < lanes; ++l) x[l] = kStateLow;
    // Steps are encoded last to first; the words of a step are kept in lane order
    // and the steps written back in the decoder's (first to last) order.
    size_t emitted = 0;
    for (size_t t = steps; t-- > 0;) {
      step_words[t] = static_cast<uint32_t>(emitted);
      const size_t base = t * lanes;
      const int live = static_cast<int>(std::min<size_t>(lanes, n - base));
      for (int l = 0; l < live; ++l) {
        const uint32_t s = static_cast<uint32_t>(sym[base + l]);
        const uint32_t f = freqs[s];
        uint32_t v = x[l];
        if ((v >> shift) >= f) {
          words[emitted++] = static_cast<uint16_t>(v);
          v >>= 16;
        }
        const uint32_t q = v / f;
        x[l] = (q << scale_bits) + (v - q * f) + cum[s];
      }
    }
    if (b > 0) block_offsets[b - 1] = at;
    for (int l = 0; l < lanes; ++l) PutU32(out + at + 4 * l, x[l]);
    at += 4 * static_cast<size_t>(lanes);
    // Step t's words are words[step_words[t] .. step_words[t - 1]) (step t - 1 was
    // encoded after t); step 0's end is `emitted`.
    size_t end = emitted;
    for (size_t t = 0; t < steps; ++t) {
      const size_t begin = step_words[t];
      for (size_t w = begin; w < end; ++w) {
        out[at++] = static_cast<uint8_t>(words[w]);
        out[at++] = static_cast<uint8_t>(words[w] >> 8);
      }
      end = begin;
    }
  }
  *out_size = at;
  return TFEDGE_OK;
}

}  // extern "C"
