// The C ABI over decoder.h; see c_api.h.
#include "c_api.h"

#include <cstdio>
#include <cstring>

#include "decoder.h"

namespace {

int Report(const tfedge::Status& s, int code, char* err, size_t err_len,
           int64_t* err_offset) {
  if (err != nullptr && err_len > 0) {
    std::snprintf(err, err_len, "%s", s.message().c_str());
  }
  if (err_offset != nullptr) *err_offset = s.offset();
  return code;
}

}  // namespace

extern "C" {

int tfedge_format_version(void) { return tfedge::kFormatVersion; }

int tfedge_decoded_size(const uint8_t* payload, size_t n, uint64_t max_decoded,
                        uint64_t* decoded_size, char* err, size_t err_len,
                        int64_t* err_offset) {
  tfedge::Header h;
  const tfedge::Status s = tfedge::ParseHeader(payload, n, max_decoded, &h);
  if (!s.ok()) return Report(s, TFEDGE_FORMAT_ERROR, err, err_len, err_offset);
  if (decoded_size != nullptr) *decoded_size = h.decoded_size;
  return TFEDGE_OK;
}

int tfedge_decode(const uint8_t* payload, size_t n, uint8_t* out, size_t out_capacity,
                  uint64_t max_decoded, char* err, size_t err_len,
                  int64_t* err_offset) {
  tfedge::Header h;
  const tfedge::Status s =
      tfedge::DecodePayload(payload, n, max_decoded, out, out_capacity, &h);
  if (!s.ok()) {
    // DecodePayload reports a too-small output buffer with offset -1 after the
    // header has validated; everything else is the payload's fault.
    const bool argument = s.offset() == -1 && s.message().rfind("output buffer", 0) == 0;
    return Report(s, argument ? TFEDGE_ARGUMENT_ERROR : TFEDGE_FORMAT_ERROR, err,
                  err_len, err_offset);
  }
  return TFEDGE_OK;
}

uint32_t tfedge_crc32(uint32_t crc, const uint8_t* data, size_t n) {
  return tfedge::Crc32(crc, data, n);
}

}  // extern "C"
