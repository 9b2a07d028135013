// Sparse FULLY_CONNECTED and 1x1 CONV_2D kernels of the TFEDGE_DECODE delegate.
//
// A layer whose weights come from a sparse payload (docs/FORMAT.md section 2, layout 1)
// and are mostly zero runs here instead of as a dense product (XNNPACK's or TFLite's):
// the delegate claims the node when the graph is partitioned, and the weights it has
// just decoded are turned, once, into a compressed sparse row matrix (CSR), or blocked
// CSR when the nonzeros come in aligned 1x4 or 4x1 blocks (one index per block). A
// layer stays dense when the sparse product would be slower: see kBreakEvenDensity.
//
// The payload format needs no change for blocks: a block-pruned kernel's sparse
// payload stores gaps of zero inside a (1, 4) block, which Huffman codes to about a
// bit each, and the blocked CSR built here keeps one index per block.
//
// Supported (anything else is left to the stock kernels): FULLY_CONNECTED with default
// weights format, CONV_2D with a [O, 1, 1, I] kernel and stride 1 (the same product per
// pixel); float32 (input, weights, bias, output) or int8 (int8 input and output, int8
// weights with zero point 0, per-tensor or per-output-channel scales, int32 bias); fused
// activation NONE, RELU, RELU_N1_TO_1 or RELU6; any batch (every leading dimension).
//
// Results: int8 outputs are bit-exact with TFLite's int8 kernels (the integer sums are
// exact and the requantization is TFLite's fixed-point multiply, same multipliers);
// float32 outputs differ from the dense ones by the order of the sums only.
#ifndef TFEDGE_RUNTIME_CC_SPARSE_KERNELS_H_
#define TFEDGE_RUNTIME_CC_SPARSE_KERNELS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "tflite_abi.h"

namespace tfedge {
namespace sparse {

// Break-even, measured with `scripts/bench_sparse.py --break_even` (one 1024x1024
// FULLY_CONNECTED layer with random masks, 1 thread, against XNNPACK's dense kernel in
// the same run; x86-64 with AVX-512, a shared machine, medians):
//
//   density                     0.05  0.10  0.15  0.20  0.30  0.40  0.50
//   CSR, batch 1    speed-up    3.7   2.0   1.07  0.99  0.69  0.50  0.30
//   CSR, batch 8                5.2   3.2   2.3   2.3   1.18  0.93  0.35
//   1x4 blocks, batch 1         5.1   3.6   1.9   1.4   0.99  0.89  0.58
//   1x4 blocks, batch 8         6.6   4.5   2.4   1.9   1.5   1.02  0.74
//
// so a layer pays off below about 0.2 density unstructured and 0.3 in blocks at batch 1
// (later at batch 8). The bound is on the layout's cost per weight: stored CSR entries,
// or stored blocks x kBlockCost, over rows x cols. A layer above it stays dense, so a
// claimed layer is not slower at batch 1 (the binding case).
inline constexpr double kBreakEvenDensity = 0.20;

// The cost of one stored 1x4 or 4x1 block relative to one CSR entry (one index and four
// products against one index and one gathered product), from the same table: blocks
// break even at density 0.3, i.e. 0.3 / 4 blocks per weight x 2.7 = 0.2. A layout is
// chosen by the lowest entries x cost.
inline constexpr double kBlockCost = 2.7;

// 1x1 CONV_2D layers over many pixels are XNNPACK's best case (a large dense GEMM),
// and the sparse kernel pays a cost per pixel that does not shrink with the density
// (packing each tile of pixels transposed, storing the outputs back): single
// random-mask 1x1 convs of the MobileNet-style CNN of `scripts/bench_sparse.py`,
// float32, batch 1, 1 thread, sparse_max_density=1, interleaved medians on a loaded
// machine, speed-up = dense / sparse, CSR (32-pixel tiles, 8x8 vector transposes in
// and out; before those, 16-pixel tiles and element-wise transposes gave 1.05x, 1.45x
// and 0.59x at density 0.1, and the bound here was 0.05, none under 64 channels):
//
//   pixels  channels     density 0.1   0.2
//   49      256 -> 256           1.99  1.28
//   196     128 -> 128           1.79  1.12
//   784      32 ->  64           1.55  0.98
//
// (`scripts/bench_sparse.py --break_even` measures the full table, with 4x1 blocks)
// so over more than kConvManyPixels pixels (batch x height x width, as shaped when the
// graph is partitioned) a 1x1 conv runs sparse up to cost density 0.15, a margin
// under the 0.2 where the 784-pixel one breaks even, and not with fewer than
// kConvMinChannels input channels (the fewest measured).
inline constexpr double kConvBreakEvenDensity = 0.15;
// Over at most 16 pixels (batch x height x width) a 1x1 conv is a fully-connected
// layer at a small batch and keeps kBreakEvenDensity (measured up to batch 8 above).
inline constexpr int64_t kConvManyPixels = 16;
inline constexpr int kConvMinChannels = 32;

// The cost-density bound of a layer: `max_density` when it is given (>= 0, the
// delegate's "sparse_max_density" option, which overrides the measured bounds); else,
// for a 1x1 conv over more than kConvManyPixels pixels, kConvBreakEvenDensity (or -1,
// never sparse, under kConvMinChannels input channels); else kBreakEvenDensity.
double DensityBound(bool conv, int64_t pixels, int channels, double max_density);

// The instruction sets the inner loops (sparse_gemm_impl.h) are built for: the
// baseline one ("generic"), and on x86-64 with GCC AVX2 + FMA ("avx2") and AVX-512
// ("avx512"). kAuto, the default, picks the best the CPU has; the delegate option
// "sparse_isa" forces one, so that tests can check every path the CPU runs.
enum class Isa : int { kAuto = -1, kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };
// Whether this build has `isa` and the CPU runs it (kAuto and kGeneric always).
bool IsaSupported(Isa isa);
// "auto", "generic", "avx2" or "avx512"; false for anything else.
bool ParseIsa(const char* name, Isa* isa);

// TFLite builtin operator codes of the operators the kernels take.
inline constexpr int32_t kBuiltinConv2d = 3;
inline constexpr int32_t kBuiltinFullyConnected = 9;

// Whether the delegate should take `node` (a FULLY_CONNECTED or CONV_2D) and run it
// sparse: its weights are a constant the delegate decoded from a payload
// (`weights_decoded`; any payload layout: a pruned kernel's smallest coding is often a
// dense codebook whose zero entry Huffman codes to a bit), everything else is
// supported, and the weights are sparse enough to be faster than dense (the cost
// density of the chosen layout at most DensityBound(..., `max_density`); a negative
// `max_density` keeps the measured bounds).
bool Claimable(tflite_abi::TfLiteContext* context, const tflite_abi::TfLiteNode* node,
               const tflite_abi::TfLiteRegistration* reg, bool weights_decoded,
               double max_density = -1.0);

struct Op;

// The sparse operators of one delegate kernel (a partition of the graph), in execution
// order. Tensors they produce that nothing outside the partition reads (the runtime
// does not allocate them) live in buffers owned here.
class Partition {
 public:
  Partition();
  ~Partition();
  Partition(const Partition&) = delete;
  Partition& operator=(const Partition&) = delete;

  // Builds the sparse operator of node `node_index` (one Claimable accepted), its
  // sparse matrix included. Reports and fails on anything Claimable would refuse.
  tflite_abi::TfLiteStatus Add(tflite_abi::TfLiteContext* context, int node_index);
  bool empty() const { return ops_.empty(); }
  // The instruction set of the operators Add builds from now on (kAuto: the best
  // the CPU has; the caller checks IsaSupported).
  void set_isa(Isa isa) { isa_ = isa; }
  // Shapes every output (resizing graph tensors when the input shapes changed) and
  // sizes the scratch buffers. `kernel_node` is the delegate kernel's node.
  tflite_abi::TfLiteStatus Prepare(tflite_abi::TfLiteContext* context,
                                   const tflite_abi::TfLiteNode* kernel_node);
  tflite_abi::TfLiteStatus Invoke(tflite_abi::TfLiteContext* context);

 private:
  struct Buffer {
    std::vector<int> dims;
    std::vector<uint8_t> bytes;
  };
  const int* Dims(tflite_abi::TfLiteContext* context, int tensor, int* rank) const;
  void* Data(tflite_abi::TfLiteContext* context, int tensor);

  std::vector<std::unique_ptr<Op>> ops_;
  Isa isa_ = Isa::kAuto;
  std::map<int, Buffer> internal_;  // tensors only this partition reads
};

// Sparse layers built and sparse operator runs since the library was loaded, and the
// time spent in those runs (the operators' own timer, for benchmarks and tests).
uint64_t LayersBuilt();
uint64_t BlockedLayersBuilt();  // of those, with a 1x4 or 4x1 block layout
uint64_t OpRuns();
uint64_t OpNanos();

}  // namespace sparse
}  // namespace tfedge

#endif  // TFEDGE_RUNTIME_CC_SPARSE_KERNELS_H_
