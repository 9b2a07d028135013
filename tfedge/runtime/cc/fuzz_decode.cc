// libFuzzer target over the payload decoder's parse-and-decode entry point.
//
// Built and run by scripts/fuzz_decoder.sh (clang, -fsanitize=fuzzer,address,undefined).
// Input: one mode byte, then a payload. Mode bit 0 set: the harness first rewrites the
// body size and CRC so that the mutation reaches the body checks behind them (a fuzzer
// cannot forge a CRC-32 by itself). Any crash, sanitizer report or allocation above
// the bound (libFuzzer's -malloc_limit_mb) is a finding; the harness itself aborts if
// the decoder breaks one of its promises:
//   * a decoded size above the bound is refused before any output is allocated,
//   * a refused payload reports a message,
//   * decoding is deterministic (two runs give the same bytes).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "decoder.h"

namespace {

// Outputs above this are refused by the header check, which is what is being tested;
// it also keeps executions fast.
constexpr uint64_t kBound = uint64_t{1} << 20;

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::vector<uint8_t> payload(data + 1, data + size);
  if ((mode & 1) && payload.size() >= tfedge::kHeaderSize) {
    const uint32_t body = static_cast<uint32_t>(payload.size() - tfedge::kHeaderSize);
    std::memcpy(&payload[20], &body, 4);  // little-endian hosts only (x86-64, arm64)
    uint32_t crc = tfedge::Crc32(0, payload.data(), 24);
    crc = tfedge::Crc32(crc, payload.data() + tfedge::kHeaderSize, body);
    std::memcpy(&payload[24], &crc, 4);
  }
  const uint8_t* p = payload.empty() ? nullptr : payload.data();

  tfedge::Header h;
  tfedge::Status s = tfedge::ParseHeader(p, payload.size(), kBound, &h);
  if (!s.ok()) {
    Check(!s.message().empty());
    return 0;
  }
  Check(h.decoded_size <= kBound);
  std::vector<uint8_t> out(h.decoded_size), again(h.decoded_size);
  s = tfedge::DecodePayload(p, payload.size(), kBound, out.data(), out.size(), nullptr);
  if (!s.ok()) {
    Check(!s.message().empty());
    return 0;
  }
  s = tfedge::DecodePayload(p, payload.size(), kBound, again.data(), again.size(),
                            nullptr);
  Check(s.ok() && out == again);
  // A smaller output buffer is refused, never overrun.
  if (h.decoded_size > 0) {
    s = tfedge::DecodePayload(p, payload.size(), kBound, again.data(),
                              again.size() - 1, nullptr);
    Check(!s.ok());
  }
  return 0;
}
