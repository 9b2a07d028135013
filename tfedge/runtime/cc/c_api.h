// The C ABI of tfedge's native library (loaded from Python with ctypes, and by
// TFLite runtimes as an external delegate). All functions are thread-safe.
#ifndef TFEDGE_RUNTIME_CC_C_API_H_
#define TFEDGE_RUNTIME_CC_C_API_H_

#include <stddef.h>
#include <stdint.h>

#define TFEDGE_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

// Return codes.
enum {
  TFEDGE_OK = 0,
  TFEDGE_FORMAT_ERROR = 1,    // the payload is malformed (docs/FORMAT.md section 2)
  TFEDGE_ARGUMENT_ERROR = 2,  // the caller's buffer is too small or null
};

// The payload format version this library reads (and older ones).
TFEDGE_EXPORT int tfedge_format_version(void);

// Checks the header up to the decoded-size bound (everything that must hold before
// allocating the output) and stores the decoded size. On error writes a
// NUL-terminated message to `err` (at most `err_len` bytes) and the payload byte
// offset of the problem to `*err_offset` (-1 when none applies); either may be null.
TFEDGE_EXPORT int tfedge_decoded_size(const uint8_t* payload, size_t n,
                                      uint64_t max_decoded, uint64_t* decoded_size,
                                      char* err, size_t err_len, int64_t* err_offset);

// Checks the whole payload and decodes it into `out` (`out_capacity` >= decoded size).
TFEDGE_EXPORT int tfedge_decode(const uint8_t* payload, size_t n, uint8_t* out,
                                size_t out_capacity, uint64_t max_decoded, char* err,
                                size_t err_len, int64_t* err_offset);

// zlib-compatible CRC-32 of `n` bytes continuing from `crc` (0 to start).
TFEDGE_EXPORT uint32_t tfedge_crc32(uint32_t crc, const uint8_t* data, size_t n);

// Encodes `count` symbols (each in [0, alphabet) with a non-zero frequency) as the
// data of a rANS stream (docs/FORMAT.md section 2.3): frequencies `freqs` summing to
// 2**scale_bits, `lanes` interleaved states (1..32), blocks of `block_size` symbols.
// Writes each block's final states and its words, blocks in order, to `out`
// (`out_capacity` >= nblocks * 4 * lanes + 2 * count), the byte offset of each block
// after the first to `block_offsets` (nblocks - 1 entries) and the bytes written to
// `*out_size`. The same bytes as the numpy encoder, tfedge.codecs' reference.
// TFEDGE_ARGUMENT_ERROR on a bad argument or symbol; nothing is written then.
TFEDGE_EXPORT int tfedge_rans_encode(const int32_t* symbols, size_t count,
                                     const uint32_t* freqs, size_t alphabet,
                                     int scale_bits, int lanes, size_t block_size,
                                     uint8_t* out, size_t out_capacity,
                                     uint64_t* block_offsets, size_t* out_size);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // TFEDGE_RUNTIME_CC_C_API_H_
