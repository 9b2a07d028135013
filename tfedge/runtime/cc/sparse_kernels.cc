// Sparse FULLY_CONNECTED / 1x1 CONV_2D kernels: see sparse_kernels.h.
#include "sparse_kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

namespace tfedge {
namespace sparse {

namespace {

using namespace tflite_abi;  // NOLINT: the TFLite names read better unqualified

// --- the inner loops, for the baseline instruction set and for AVX2 + FMA ------------

// The kernels' vector types never cross this file's boundary (internal linkage), so
// GCC's note that passing them changes the ABI without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

#define TFEDGE_SPARSE_VBYTES 32
namespace generic {
#include "sparse_gemm_impl.h"
}  // namespace generic

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TFEDGE_SPARSE_X86 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "sparse_gemm_impl.h"
}  // namespace avx2
#pragma GCC pop_options
#undef TFEDGE_SPARSE_VBYTES
#define TFEDGE_SPARSE_VBYTES 64
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
#include "sparse_gemm_impl.h"
}  // namespace avx512
#pragma GCC pop_options
#endif
#undef TFEDGE_SPARSE_VBYTES

Isa BestIsa() {
#ifdef TFEDGE_SPARSE_X86
  static const Isa isa = __builtin_cpu_supports("avx512f")
                             ? Isa::kAvx512
                             : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                                   ? Isa::kAvx2
                                   : Isa::kGeneric;
  return isa;
#else
  return Isa::kGeneric;
#endif
}

std::atomic<uint64_t> g_layers{0};
std::atomic<uint64_t> g_blocked{0};
std::atomic<uint64_t> g_runs{0};
std::atomic<uint64_t> g_nanos{0};

// --- TFLite structs the kernels read beyond tflite_abi.h -----------------------------
// (tensorflow/lite/core/c/common.h and builtin_op_data.h, TensorFlow 2.21; members
// are only ever appended, and only these leading ones are read.)

struct TfLiteFloatArray {
  int size;
  float data[];
};

constexpr int kTfLiteAffineQuantization = 1;

struct TfLiteAffineQuantization {
  TfLiteFloatArray* scale;
  TfLiteIntArray* zero_point;
  int32_t quantized_dimension;
};

enum FusedActivation : int {
  kActNone = 0,
  kActRelu = 1,
  kActReluN1To1 = 2,
  kActRelu6 = 3,
};

struct FullyConnectedParams {
  int activation;
  int weights_format;  // 0: default [O, I]
  bool keep_num_dims;
};

struct ConvParams {
  int padding;
  int stride_width;
  int stride_height;
  int activation;
};

// --- the sparse matrix ----------------------------------------------------------------

enum class Layout { kCsr, kBlock1x4, kBlock4x1 };

struct Plan {
  Layout layout = Layout::kCsr;
  int64_t entries = 0;  // stored CSR entries or blocks
  double cost_density = 1.0;  // entries x cost / (rows x cols)
};

template <typename W>
Plan ChoosePlan(const W* w, int rows, int cols) {
  int64_t nnz = 0, b14 = 0, b41 = 0;
  for (int r = 0; r < rows; ++r) {
    const W* row = w + static_cast<size_t>(r) * cols;
    for (int c = 0; c < cols; c += 4) {
      bool any = false;
      for (int k = c; k < std::min(c + 4, cols); ++k) {
        if (row[k] != W(0)) {
          ++nnz;
          any = true;
        }
      }
      b14 += any;
    }
  }
  for (int g = 0; g < rows; g += 4) {
    for (int c = 0; c < cols; ++c) {
      bool any = false;
      for (int r = g; r < std::min(g + 4, rows) && !any; ++r) {
        any = w[static_cast<size_t>(r) * cols + c] != W(0);
      }
      b41 += any;
    }
  }
  Plan p;
  p.entries = nnz;
  double cost = static_cast<double>(nnz);
  if (b14 * kBlockCost < cost) {
    p.layout = Layout::kBlock1x4;
    p.entries = b14;
    cost = b14 * kBlockCost;
  }
  if (b41 * kBlockCost < cost) {
    p.layout = Layout::kBlock4x1;
    p.entries = b41;
    cost = b41 * kBlockCost;
  }
  const double size = static_cast<double>(rows) * cols;
  p.cost_density = size > 0 ? cost / size : 1.0;
  return p;
}

struct Matrix {
  int rows = 0;
  int cols = 0;
  int kpad = 0;  // cols rounded up to 4
  Layout layout = Layout::kCsr;
  std::vector<int32_t> start;  // entries of row (group) i: [start[i], start[i+1])
  std::vector<uint16_t> index16;  // column of each entry, when cols <= 65536
  std::vector<int32_t> index32;   // otherwise
  std::vector<float> f;           // float32 values (4 per block)
  std::vector<int8_t> q;          // int8 values (4 per block)
  std::vector<int32_t> row_sum;   // int8: sum of each output row's weights
};

template <typename W>
void Build(const W* w, int rows, int cols, Layout layout, Matrix* m,
           std::vector<W>* values) {
  m->rows = rows;
  m->cols = cols;
  m->kpad = (cols + 3) / 4 * 4;
  m->layout = layout;
  const bool narrow = cols <= 65536;
  std::vector<int32_t> cols_of;
  auto at = [&](int r, int c) -> W {
    return (r < rows && c < cols) ? w[static_cast<size_t>(r) * cols + c] : W(0);
  };
  m->start.assign(1, 0);
  if (layout == Layout::kCsr) {
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        if (at(r, c) != W(0)) {
          cols_of.push_back(c);
          values->push_back(at(r, c));
        }
      }
      m->start.push_back(static_cast<int32_t>(cols_of.size()));
    }
  } else if (layout == Layout::kBlock1x4) {
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; c += 4) {
        if (at(r, c) != W(0) || at(r, c + 1) != W(0) || at(r, c + 2) != W(0) ||
            at(r, c + 3) != W(0)) {
          cols_of.push_back(c);
          for (int k = 0; k < 4; ++k) values->push_back(at(r, c + k));
        }
      }
      m->start.push_back(static_cast<int32_t>(cols_of.size()));
    }
  } else {
    for (int g = 0; g < rows; g += 4) {
      for (int c = 0; c < cols; ++c) {
        if (at(g, c) != W(0) || at(g + 1, c) != W(0) || at(g + 2, c) != W(0) ||
            at(g + 3, c) != W(0)) {
          cols_of.push_back(c);
          for (int k = 0; k < 4; ++k) values->push_back(at(g + k, c));
        }
      }
      m->start.push_back(static_cast<int32_t>(cols_of.size()));
    }
  }
  if (narrow) {
    m->index16.assign(cols_of.begin(), cols_of.end());
  } else {
    m->index32 = std::move(cols_of);
  }
  m->row_sum.assign(rows, 0);
  for (int r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int c = 0; c < cols; ++c) s += static_cast<int32_t>(at(r, c));
    m->row_sum[r] = s;
  }
}

// One tile product: picks the layout, index width and instruction set.
template <typename W, typename A, int T>
void Tile(Isa isa, const Matrix& m, const W* val, const A* xt, A* acc) {
  const int32_t* st = m.start.data();
#define TFEDGE_SPARSE_CALL(NS, IDX)                                    \
  switch (m.layout) {                                                  \
    case Layout::kCsr:                                                 \
      NS::CsrTile<IDX, W, A, T>(st, idx, val, m.rows, xt, acc);        \
      return;                                                          \
    case Layout::kBlock1x4:                                            \
      NS::Block1x4Tile<IDX, W, A, T>(st, idx, val, m.rows, xt, acc);   \
      return;                                                          \
    case Layout::kBlock4x1:                                            \
      NS::Block4x1Tile<IDX, W, A, T>(st, idx, val, m.rows, xt, acc);   \
      return;                                                          \
  }
#ifdef TFEDGE_SPARSE_X86
#define TFEDGE_SPARSE_DISPATCH(IDX)                \
  if (isa == Isa::kAvx512) {                       \
    TFEDGE_SPARSE_CALL(avx512, IDX)                \
  } else if (isa == Isa::kAvx2) {                  \
    TFEDGE_SPARSE_CALL(avx2, IDX)                  \
  }                                                \
  TFEDGE_SPARSE_CALL(generic, IDX)
#else
  (void)isa;
#define TFEDGE_SPARSE_DISPATCH(IDX) TFEDGE_SPARSE_CALL(generic, IDX)
#endif
  if (!m.index16.empty() || m.index32.empty()) {
    const uint16_t* idx = m.index16.data();
    TFEDGE_SPARSE_DISPATCH(uint16_t)
  } else {
    const int32_t* idx = m.index32.data();
    TFEDGE_SPARSE_DISPATCH(int32_t)
  }
#undef TFEDGE_SPARSE_DISPATCH
#undef TFEDGE_SPARSE_CALL
}

// --- requantization -----------------------------------------------------------------
//
// The stock interpreter runs int8 FULLY_CONNECTED and CONV_2D with XNNPACK (TFLite
// applies it by default), whose int8 kernels requantize in float: the int32 sum times
// a float scale (input scale x weight scale / output scale, in float), clamped to the
// activation range, rounded to nearest even, plus the output zero point. Doing the same
// keeps the sparse kernels bit-exact with the model's stock outputs.
// (TFLite's own non-XNNPACK kernels use a fixed-point multiplier instead and differ
// from XNNPACK's outputs by one step in about 0.1% of outputs; measured by
// tests/runtime/test_sparse_kernels.py.)
inline int8_t Requantize(int32_t acc, float scale, float lo, float hi, int32_t zp) {
  float v = static_cast<float>(acc) * scale;
  v = std::min(std::max(v, lo), hi);
  return static_cast<int8_t>(static_cast<int32_t>(std::nearbyint(v)) + zp);
}

// --- helpers --------------------------------------------------------------------------

int64_t NumElements(const TfLiteIntArray* dims) {
  if (dims == nullptr || dims->size < 0 || dims->size > 16) return -1;
  int64_t n = 1;
  for (int i = 0; i < dims->size; ++i) {
    if (dims->data[i] < 0) return -1;
    n *= dims->data[i];
  }
  return n;
}

const TfLiteAffineQuantization* Affine(const TfLiteTensor& t) {
  if (t.quantization.type != kTfLiteAffineQuantization) return nullptr;
  return static_cast<const TfLiteAffineQuantization*>(t.quantization.params);
}

bool SupportedActivation(int a) {
  return a == kActNone || a == kActRelu || a == kActReluN1To1 || a == kActRelu6;
}

// Everything about a node that decides whether it can run sparse, and how.
struct NodeInfo {
  bool conv = false;
  int input = -1, weights = -1, bias = -1, output = -1;
  int activation = kActNone;
  bool keep_num_dims = false;
  bool int8 = false;
  int rows = 0, cols = 0;
};

// Fills `info`; returns an empty string when the node is supported, else why not.
std::string Inspect(TfLiteContext* context, const TfLiteNode* node,
                    const TfLiteRegistration* reg, NodeInfo* info) {
  if (reg == nullptr || node == nullptr || node->inputs == nullptr ||
      node->outputs == nullptr || node->builtin_data == nullptr) {
    return "not a builtin operator";
  }
  const int n_in = node->inputs->size;
  if (node->outputs->size != 1 || n_in < 2 || n_in > 3) return "unexpected arity";
  const auto ok_index = [&](int i) {
    return i >= 0 && static_cast<size_t>(i) < context->tensors_size;
  };
  info->input = node->inputs->data[0];
  info->weights = node->inputs->data[1];
  info->bias = n_in == 3 ? node->inputs->data[2] : -1;
  info->output = node->outputs->data[0];
  if (!ok_index(info->input) || !ok_index(info->weights) || !ok_index(info->output) ||
      (info->bias != -1 && !ok_index(info->bias))) {
    return "invalid tensor index";
  }
  const TfLiteTensor& in = context->tensors[info->input];
  const TfLiteTensor& w = context->tensors[info->weights];
  const TfLiteTensor& out = context->tensors[info->output];
  if (w.dims == nullptr || in.dims == nullptr) return "no shape";
  if (reg->builtin_code == kBuiltinFullyConnected) {
    const auto* p = static_cast<const FullyConnectedParams*>(node->builtin_data);
    if (p->weights_format != 0) return "shuffled weights";
    info->activation = p->activation;
    info->keep_num_dims = p->keep_num_dims;
    if (w.dims->size != 2) return "weights not 2-D";
    info->rows = w.dims->data[0];
    info->cols = w.dims->data[1];
    const int64_t n = NumElements(in.dims);
    if (info->cols <= 0 || n < 0 || n % info->cols != 0) return "input size";
  } else if (reg->builtin_code == kBuiltinConv2d) {
    const auto* p = static_cast<const ConvParams*>(node->builtin_data);
    info->conv = true;
    info->activation = p->activation;
    if (p->stride_width != 1 || p->stride_height != 1) return "strided";
    if (w.dims->size != 4 || w.dims->data[1] != 1 || w.dims->data[2] != 1) {
      return "not a 1x1 kernel";
    }
    info->rows = w.dims->data[0];
    info->cols = w.dims->data[3];
    if (in.dims->size != 4 || in.dims->data[3] != info->cols) return "grouped";
  } else {
    return "operator";
  }
  if (info->rows <= 0 || info->cols <= 0) return "empty weights";
  if (!SupportedActivation(info->activation)) return "activation";
  const TfLiteTensor* b = info->bias >= 0 ? &context->tensors[info->bias] : nullptr;
  if (b != nullptr && NumElements(b->dims) != info->rows) return "bias size";
  if (w.type == kTfLiteFloat32) {
    if (in.type != kTfLiteFloat32 || out.type != kTfLiteFloat32) return "types";
    if (b != nullptr && b->type != kTfLiteFloat32) return "bias type";
  } else if (w.type == kTfLiteInt8) {
    info->int8 = true;
    if (in.type != kTfLiteInt8 || out.type != kTfLiteInt8) return "types";
    if (b != nullptr && b->type != kTfLiteInt32) return "bias type";
    if (!(in.params.scale > 0) || !(out.params.scale > 0)) return "quantization";
    const TfLiteAffineQuantization* q = Affine(w);
    if (q == nullptr || q->scale == nullptr || q->zero_point == nullptr) {
      return "weight quantization";
    }
    const int ns = q->scale->size;
    if (ns != 1 && !(ns == info->rows && q->quantized_dimension == 0)) {
      return "weight scales";
    }
    if (q->zero_point->size != ns && q->zero_point->size != 1) return "zero points";
    for (int i = 0; i < q->zero_point->size; ++i) {
      if (q->zero_point->data[i] != 0) return "weight zero point";
    }
    for (int i = 0; i < ns; ++i) {
      if (!(q->scale->data[i] > 0)) return "weight scale";
    }
  } else {
    return "types";
  }
  return std::string();
}

}  // namespace

// --- one sparse operator ----------------------------------------------------------------

struct Op {
  int node_index = -1;
  Isa isa = Isa::kGeneric;  // the instruction set its products run with
  NodeInfo info;
  Matrix m;
  int rows_pad = 0;  // output rows rounded up to 4 (the 4x1 accumulators)
  // float32
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
  // int8
  int32_t input_offset = 0, output_offset = 0, act_min = -128, act_max = 127;
  std::vector<float> scale;  // per output channel, or one
  // scratch, sized at Prepare
  int64_t batch = 0;  // input rows (batch x pixels)
  std::vector<float> xf, accf;
  std::vector<int32_t> xi, acci;
};

namespace {

// Input rows per tile (then 16, 8 and 1): each stored weight (one index, one value)
// then feeds 32 rows, two AVX-512 vectors of products (1x1 convs over many pixels).
constexpr int kTile = 32;

template <typename W, typename A>
const W* Values(const Matrix& m);
template <>
const float* Values<float, float>(const Matrix& m) {
  return m.f.data();
}
template <>
const int8_t* Values<int8_t, int32_t>(const Matrix& m) {
  return m.q.data();
}

// Applies bias, activation (and for int8 the requantization) to a tile's sums and
// stores output rows [r0, r0 + n) of y.
void EpilogueF(const Op& op, const float* acc, int tile, int n, const float* bias,
               float* y) {
  const int rows = op.m.rows;
  for (int t = 0; t < n; ++t) {
    float* yr = y + static_cast<size_t>(t) * rows;
    for (int o = 0; o < rows; ++o) {
      float v = acc[static_cast<size_t>(o) * tile + t];
      if (bias != nullptr) v += bias[o];
      yr[o] = std::min(std::max(v, op.lo), op.hi);
    }
  }
}

void EpilogueQ(const Op& op, const int32_t* acc, int tile, int n, const int32_t* bias,
               int8_t* y) {
  const int rows = op.m.rows;
  const bool per_channel = op.scale.size() > 1;
  // The activation range relative to the zero point, as floats (exact integers).
  const float lo = static_cast<float>(op.act_min - op.output_offset);
  const float hi = static_cast<float>(op.act_max - op.output_offset);
  for (int t = 0; t < n; ++t) {
    int8_t* yr = y + static_cast<size_t>(t) * rows;
    for (int o = 0; o < rows; ++o) {
      int32_t v = acc[static_cast<size_t>(o) * tile + t] +
                  op.input_offset * op.m.row_sum[o];
      if (bias != nullptr) v += bias[o];
      yr[o] = Requantize(v, op.scale[per_channel ? o : 0], lo, hi, op.output_offset);
    }
  }
}

// Calls NS::CALL for the namespace of instruction set `isa`.
#ifdef TFEDGE_SPARSE_X86
#define DISPATCH_ISA(isa, CALL)       \
  do {                                \
    if ((isa) == Isa::kAvx512) {      \
      avx512::CALL;                   \
    } else if ((isa) == Isa::kAvx2) { \
      avx2::CALL;                     \
    } else {                          \
      generic::CALL;                  \
    }                                 \
  } while (0)
#else
#define DISPATCH_ISA(isa, CALL) generic::CALL
#endif

// y[batch][rows] = x[batch][cols] * W^T, tile by tile.
template <typename W, typename A, typename X, typename B, typename Y, typename Epi>
void Run(const Op& op, const X* x, const B* bias, Y* y, std::vector<A>* xt_buf,
         std::vector<A>* acc_buf, Epi epilogue) {
  const Matrix& m = op.m;
  const W* val = Values<W, A>(m);
  const int K = m.cols;
  A* xt = xt_buf->data();
  A* acc = acc_buf->data();
  int64_t b = 0;
  // Tiles of 32 input rows, then 16, 8, then single rows.
  auto tiles = [&](auto tile_const) {
    constexpr int T = decltype(tile_const)::value;
    for (; b + T <= op.batch; b += T) {
      const X* xb = x + b * K;
      if constexpr (std::is_same_v<X, float>) {
        DISPATCH_ISA(op.isa, PackTileF<T>(xb, K, m.kpad, xt));
        Tile<W, A, T>(op.isa, m, val, xt, acc);
        DISPATCH_ISA(op.isa, StoreTileF<T>(acc, m.rows, bias, op.lo, op.hi, y + b * m.rows));
        continue;
      }
      for (int t = 0; t < T; ++t) {
        for (int k = 0; k < K; ++k) xt[static_cast<size_t>(k) * T + t] = xb[t * K + k];
      }
      for (int k = K; k < m.kpad; ++k) {
        for (int t = 0; t < T; ++t) xt[static_cast<size_t>(k) * T + t] = 0;
      }
      Tile<W, A, T>(op.isa, m, val, xt, acc);
      epilogue(op, acc, T, T, bias, y + b * m.rows);
    }
  };
  tiles(std::integral_constant<int, kTile>());
  tiles(std::integral_constant<int, kTile / 2>());
  tiles(std::integral_constant<int, kTile / 4>());
  for (; b < op.batch; ++b) {
    const X* xb = x + b * K;
    for (int k = 0; k < K; ++k) xt[k] = static_cast<A>(xb[k]);
    for (int k = K; k < m.kpad; ++k) xt[k] = 0;
    Tile<W, A, 1>(op.isa, m, val, xt, acc);
    epilogue(op, acc, 1, 1, bias, y + b * m.rows);
  }
}

}  // namespace

// --- Claimable ----------------------------------------------------------------------

bool IsaSupported(Isa isa) {
  if (isa == Isa::kAuto || isa == Isa::kGeneric) return true;
#ifdef TFEDGE_SPARSE_X86
  if (isa == Isa::kAvx2) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return isa == Isa::kAvx512 && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool ParseIsa(const char* name, Isa* isa) {
  static const struct {
    const char* name;
    Isa isa;
  } kNames[] = {{"auto", Isa::kAuto},
                {"generic", Isa::kGeneric},
                {"avx2", Isa::kAvx2},
                {"avx512", Isa::kAvx512}};
  for (const auto& n : kNames) {
    if (name != nullptr && std::strcmp(name, n.name) == 0) {
      *isa = n.isa;
      return true;
    }
  }
  return false;
}

double DensityBound(bool conv, int64_t pixels, int channels, double max_density) {
  if (max_density >= 0) return max_density;
  if (!conv || pixels <= kConvManyPixels) return kBreakEvenDensity;
  return channels < kConvMinChannels ? -1.0 : kConvBreakEvenDensity;
}

bool Claimable(TfLiteContext* context, const TfLiteNode* node,
               const TfLiteRegistration* reg, bool weights_decoded,
               double max_density) {
  if (!weights_decoded) return false;
  NodeInfo info;
  const std::string why = Inspect(context, node, reg, &info);
  if (!why.empty()) return false;
  const TfLiteTensor& w = context->tensors[info.weights];
  if (w.allocation_type != kTfLiteMmapRo || w.data.raw_const == nullptr) return false;
  const Plan p = info.int8 ? ChoosePlan(reinterpret_cast<const int8_t*>(w.data.raw_const),
                                        info.rows, info.cols)
                           : ChoosePlan(reinterpret_cast<const float*>(w.data.raw_const),
                                        info.rows, info.cols);
  const TfLiteTensor& in = context->tensors[info.input];
  const int64_t pixels = info.conv ? NumElements(in.dims) / info.cols : 0;
  return p.cost_density <= DensityBound(info.conv, pixels, info.cols, max_density);
}

// --- Partition ------------------------------------------------------------------------

Partition::Partition() = default;
Partition::~Partition() = default;

TfLiteStatus Partition::Add(TfLiteContext* context, int node_index) {
  TfLiteNode* node = nullptr;
  TfLiteRegistration* reg = nullptr;
  if (context->GetNodeAndRegistration(context, node_index, &node, &reg) != kTfLiteOk) {
    return kTfLiteError;
  }
  auto op = std::make_unique<Op>();
  op->node_index = node_index;
  op->isa = isa_ == Isa::kAuto ? BestIsa() : isa_;
  std::string why = Inspect(context, node, reg, &op->info);
  if (why.empty() && context->tensors[op->info.weights].data.raw_const == nullptr) {
    why = "the weights have no data";
  }
  if (!why.empty()) {
    // Claimable accepted this node when the graph was partitioned: the runtime
    // changed it since.
    context->ReportError(context, "%s: node %d: the sparse kernel cannot run it (%s)",
                         "TFEDGE_DECODE", node_index, why.c_str());
    return kTfLiteError;
  }
  const TfLiteTensor& w = context->tensors[op->info.weights];
  const NodeInfo& info = op->info;
  if (info.int8) {
    const auto* wq = reinterpret_cast<const int8_t*>(w.data.raw_const);
    const Plan p = ChoosePlan(wq, info.rows, info.cols);
    Build(wq, info.rows, info.cols, p.layout, &op->m, &op->m.q);
  } else {
    const auto* wf = reinterpret_cast<const float*>(w.data.raw_const);
    const Plan p = ChoosePlan(wf, info.rows, info.cols);
    Build(wf, info.rows, info.cols, p.layout, &op->m, &op->m.f);
  }
  op->rows_pad = (info.rows + 3) / 4 * 4;
  const TfLiteTensor& out = context->tensors[info.output];
  if (info.int8) {
    const TfLiteTensor& in = context->tensors[info.input];
    const TfLiteAffineQuantization* q = Affine(w);
    op->input_offset = -in.params.zero_point;
    op->output_offset = out.params.zero_point;
    for (int i = 0; i < q->scale->size; ++i) {
      // As XNNPACK computes it: in float.
      op->scale.push_back(in.params.scale * q->scale->data[i] / out.params.scale);
    }
    const float scale = out.params.scale;
    const int32_t zp = out.params.zero_point;
    auto quantize = [&](float f) {
      return zp + static_cast<int32_t>(std::round(f / scale));
    };
    if (info.activation == kActRelu) {
      op->act_min = std::max(-128, quantize(0.0f));
    } else if (info.activation == kActRelu6) {
      op->act_min = std::max(-128, quantize(0.0f));
      op->act_max = std::min(127, quantize(6.0f));
    } else if (info.activation == kActReluN1To1) {
      op->act_min = std::max(-128, quantize(-1.0f));
      op->act_max = std::min(127, quantize(1.0f));
    }
  } else {
    if (info.activation == kActRelu) {
      op->lo = 0.0f;
      op->hi = std::numeric_limits<float>::max();
    } else if (info.activation == kActRelu6) {
      op->lo = 0.0f;
      op->hi = 6.0f;
    } else if (info.activation == kActReluN1To1) {
      op->lo = -1.0f;
      op->hi = 1.0f;
    } else {
      op->lo = std::numeric_limits<float>::lowest();
      op->hi = std::numeric_limits<float>::max();
    }
  }
  g_layers.fetch_add(1, std::memory_order_relaxed);
  if (op->m.layout != Layout::kCsr) g_blocked.fetch_add(1, std::memory_order_relaxed);
  ops_.push_back(std::move(op));
  return kTfLiteOk;
}

const int* Partition::Dims(TfLiteContext* context, int tensor, int* rank) const {
  auto it = internal_.find(tensor);
  if (it != internal_.end()) {
    *rank = static_cast<int>(it->second.dims.size());
    return it->second.dims.data();
  }
  const TfLiteIntArray* d = context->tensors[tensor].dims;
  if (d == nullptr) {
    *rank = 0;
    return nullptr;
  }
  *rank = d->size;
  return d->data;
}

void* Partition::Data(TfLiteContext* context, int tensor) {
  auto it = internal_.find(tensor);
  if (it != internal_.end()) return it->second.bytes.data();
  return context->tensors[tensor].data.data;
}

TfLiteStatus Partition::Prepare(TfLiteContext* context, const TfLiteNode* kernel_node) {
  auto visible = [&](int tensor) {
    const TfLiteIntArray* outs = kernel_node->outputs;
    for (int i = 0; outs != nullptr && i < outs->size; ++i) {
      if (outs->data[i] == tensor) return true;
    }
    return false;
  };
  for (auto& op : ops_) {
    const NodeInfo& info = op->info;
    TfLiteTensor* out = &context->tensors[info.output];
    int rank = 0;
    const int* in_dims = Dims(context, info.input, &rank);
    if (in_dims == nullptr || rank < 1) {
      return kTfLiteError;
    }
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= in_dims[i];
    std::vector<int> out_dims;
    if (info.conv) {
      if (rank != 4 || in_dims[3] != info.cols) {
        context->ReportError(context, "TFEDGE_DECODE: tensor '%s': input channels changed",
                             out->name ? out->name : "?");
        return kTfLiteError;
      }
      out_dims = {in_dims[0], in_dims[1], in_dims[2], info.rows};
    } else {
      if (n % info.cols != 0) {
        context->ReportError(context,
                             "TFEDGE_DECODE: tensor '%s': input size %lld is not a "
                             "multiple of %d",
                             out->name ? out->name : "?", static_cast<long long>(n),
                             info.cols);
        return kTfLiteError;
      }
      if (info.keep_num_dims) {
        out_dims.assign(in_dims, in_dims + rank);
        out_dims.back() = info.rows;
      } else {
        out_dims = {static_cast<int>(n / info.cols), info.rows};
      }
    }
    op->batch = n / info.cols;
    const size_t elem = info.int8 ? 1 : 4;
    const size_t out_bytes = static_cast<size_t>(op->batch) * info.rows * elem;
    if (visible(info.output)) {
      bool same = out->dims != nullptr && out->dims->size == static_cast<int>(out_dims.size());
      for (size_t i = 0; same && i < out_dims.size(); ++i) {
        same = out->dims->data[i] == out_dims[i];
      }
      if (!same) {
        auto* d = static_cast<TfLiteIntArray*>(
            std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * out_dims.size()));
        if (d == nullptr) return kTfLiteError;
        d->size = static_cast<int>(out_dims.size());
        std::memcpy(d->data, out_dims.data(), sizeof(int) * out_dims.size());
        if (context->ResizeTensor(context, out, d) != kTfLiteOk) return kTfLiteError;
      }
    } else {
      Buffer& buf = internal_[info.output];
      buf.dims = out_dims;
      buf.bytes.resize(out_bytes);
    }
    const size_t xt = static_cast<size_t>(op->m.kpad) * kTile;
    const size_t acc = static_cast<size_t>(op->rows_pad) * kTile;
    if (info.int8) {
      op->xi.assign(xt, 0);
      op->acci.assign(acc, 0);
    } else {
      op->xf.assign(xt, 0.0f);
      op->accf.assign(acc, 0.0f);
    }
  }
  return kTfLiteOk;
}

TfLiteStatus Partition::Invoke(TfLiteContext* context) {
  for (auto& op : ops_) {
    const auto t0 = std::chrono::steady_clock::now();
    const NodeInfo& info = op->info;
    const void* x = Data(context, info.input);
    void* y = Data(context, info.output);
    const void* bias =
        info.bias >= 0 ? context->tensors[info.bias].data.raw_const : nullptr;
    if (x == nullptr || y == nullptr || (info.bias >= 0 && bias == nullptr)) {
      context->ReportError(context, "TFEDGE_DECODE: node %d: a tensor has no data",
                           op->node_index);
      return kTfLiteError;
    }
    if (info.int8) {
      Run<int8_t, int32_t>(*op, static_cast<const int8_t*>(x),
                           static_cast<const int32_t*>(bias), static_cast<int8_t*>(y),
                           &op->xi, &op->acci, EpilogueQ);
    } else {
      Run<float, float>(*op, static_cast<const float*>(x),
                        static_cast<const float*>(bias), static_cast<float*>(y), &op->xf,
                        &op->accf, EpilogueF);
    }
    const auto t1 = std::chrono::steady_clock::now();
    g_runs.fetch_add(1, std::memory_order_relaxed);
    g_nanos.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(),
        std::memory_order_relaxed);
  }
  return kTfLiteOk;
}

uint64_t LayersBuilt() { return g_layers.load(std::memory_order_relaxed); }
uint64_t BlockedLayersBuilt() { return g_blocked.load(std::memory_order_relaxed); }
uint64_t OpRuns() { return g_runs.load(std::memory_order_relaxed); }
uint64_t OpNanos() { return g_nanos.load(std::memory_order_relaxed); }

}  // namespace sparse
}  // namespace tfedge
