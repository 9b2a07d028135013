// The TFEDGE_DECODE operator, delivered as a TFLite external delegate.
//
// The TensorFlow and ai-edge-litert wheels export no C op-registration API, but both
// load external delegates (`load_delegate(path)`), which needs no symbols from them.
// The delegate claims every TFEDGE_DECODE node (an unresolved custom op until then)
// and replaces them with one kernel.
//
// Constant weights (the default): while the graph is partitioned (at interpreter
// construction, before XNNPACK is applied at the first allocate_tensors), each payload
// that passes every check is decoded, once, into a 64-byte-aligned buffer owned by the
// delegate, and its weight tensor becomes kTfLiteMmapRo, a constant. Consumers then see
// constant weights exactly as in the expanded model: same kernels (XNNPACK packs them),
// same outputs bit for bit, same speed.
//
// Otherwise (option constant_weights=0, or a payload that fails a check) the kernel's
// Prepare, for each decode node:
//   1. checks the payload header against the output tensor (bound = the tensor's byte
//      size, which the decoded size must equal; element type must match),
//   2. turns the output into a kTfLitePersistentRo tensor (allocated by the runtime,
//      kept across invokes; consumers see non-constant weights),
//   3. decodes the payload into it, once.
// Invoke does nothing unless the runtime moved the tensor, in which case it decodes
// again into the new buffer (never allocating). Errors are reported through the
// interpreter at allocate_tensors() as
// "TFEDGE_DECODE: tensor '<name>': byte <offset>: <problem>".
//
// `DecodeKernelRegistration()` is the one registration entry point of the op.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <new>
#include <string>
#include <vector>

#include "c_api.h"
#include "decoder.h"
#include "sparse_kernels.h"
#include "tflite_abi.h"

namespace tfedge {

const tflite_abi::TfLiteRegistration& DecodeKernelRegistration();

namespace {

using namespace tflite_abi;  // NOLINT: the TFLite names read better unqualified

constexpr char kOpName[] = "TFEDGE_DECODE";
constexpr char kKernelName[] = "TfedgeDecode";
constexpr int kMaxDims = 16;
// The resource bound (docs/FORMAT.md, "Resource bound"; tfedge/codecs/_limits.py): a
// payload of c bytes decodes to at most max(R x c, F) bytes unless the caller trusts
// the file (option trusted=1).
constexpr uint64_t kExpansionRatio = 1024;
constexpr uint64_t kExpansionFloor = uint64_t{1} << 24;

uint64_t DecodedBound(size_t coded) {
  const uint64_t c = static_cast<uint64_t>(coded);
  if (c > UINT64_MAX / kExpansionRatio) return UINT64_MAX;
  return std::max(kExpansionRatio * c, kExpansionFloor);
}

// Maps the payload's element type (flatbuffer TensorType) to the runtime's TfLiteType;
// -1 for types a weight payload cannot have.
int RuntimeType(uint8_t tensor_type) {
  static const int kMap[] = {
      kTfLiteFloat32,  kTfLiteFloat16, kTfLiteInt32,   kTfLiteUInt8,
      kTfLiteInt64,    -1 /*STRING*/,  kTfLiteBool,    kTfLiteInt16,
      kTfLiteComplex64, kTfLiteInt8,   kTfLiteFloat64, -1 /*COMPLEX128*/,
      kTfLiteUInt64,   -1 /*RESOURCE*/, -1 /*VARIANT*/, kTfLiteUInt32,
      kTfLiteUInt16,   -1 /*INT4*/,    kTfLiteBFloat16,
  };
  return tensor_type < sizeof(kMap) / sizeof(kMap[0]) ? kMap[tensor_type] : -1;
}

const char* TypeName(int t) {
  static const char* kNames[] = {
      "NOTYPE", "FLOAT32", "INT32",   "UINT8",      "INT64",  "STRING",  "BOOL",
      "INT16",  "COMPLEX64", "INT8",  "FLOAT16",    "FLOAT64", "COMPLEX128", "UINT64",
      "RESOURCE", "VARIANT", "UINT32", "UINT16",    "INT4",   "BFLOAT16"};
  return (t >= 0 && t < 20) ? kNames[t] : "UNKNOWN";
}

TfLiteIntArray* NewIntArray(int size) {
  // The runtime frees dims with free() (TfLiteIntArrayFree), so allocate with malloc.
  auto* a = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * static_cast<size_t>(size)));
  if (a != nullptr) a->size = size;
  return a;
}

bool PlausibleArray(const TfLiteIntArray* a, size_t limit) {
  if (a == nullptr || a->size < 0 || a->size > 1024) return false;
  for (int i = 0; i < a->size; ++i) {
    if (a->data[i] < 0 || static_cast<size_t>(a->data[i]) >= limit) return false;
  }
  return true;
}

std::string DimsString(const TfLiteIntArray* dims) {
  std::string s = "[";
  if (dims != nullptr && dims->size >= 0 && dims->size <= kMaxDims) {
    for (int i = 0; i < dims->size; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims->data[i]);
    }
  }
  return s + "]";
}

// --- the probe report (the layout pin test reads it) -------------------------------

// Payloads decoded by the kernel since the library was loaded (tests check that a
// model's payloads are decoded once, not on every invoke).
std::atomic<uint64_t> g_decode_count{0};
// Bytes of weights decoded at partitioning time and not yet freed (tests check that an
// interpreter's weights go with it, not with the delegate).
std::atomic<uint64_t> g_held_bytes{0};

std::mutex g_probe_mutex;
std::string g_probe_report;

void WriteProbe(TfLiteContext* context, const TfLiteIntArray* plan) {
  std::string r;
  r += "tensors " + std::to_string(context->tensors_size) + "\n";
  for (size_t i = 0; i < context->tensors_size; ++i) {
    const TfLiteTensor& t = context->tensors[i];
    r += "T\t" + std::to_string(i) + "\t" + (t.name ? t.name : "") + "\t" +
         std::to_string(t.type) + "\t" + std::to_string(t.bytes) + "\t" +
         std::to_string(t.allocation_type) + "\t" + DimsString(t.dims) + "\n";
  }
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) !=
        kTfLiteOk) {
      continue;
    }
    r += "N\t" + std::to_string(plan->data[i]) + "\t" +
         std::to_string(reg->builtin_code) + "\t" +
         (reg->custom_name ? reg->custom_name : "") + "\t" + DimsString(node->inputs) +
         "\t" + DimsString(node->outputs) + "\n";
  }
  std::lock_guard<std::mutex> lock(g_probe_mutex);
  g_probe_report = r;
}

// --- the kernel ---------------------------------------------------------------------

struct DecodeNode {
  int node_index = -1;
  int n_inputs = 0;
  int n_outputs = 0;
  int payload = -1;
  int output = -1;
  const void* decoded_at = nullptr;  // the output buffer last decoded into
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A weight decoded at partitioning time: its buffer (the tensor's data, kTfLiteMmapRo)
// and the node whose payload it is.
struct Early {
  std::unique_ptr<uint8_t, FreeDeleter> buffer;
  size_t bytes = 0;
  int node = -1;
};

using TensorKey = std::pair<const void*, int>;  // (context, tensor index)

// State shared by the delegate and its kernels: each holds a reference, so whichever
// goes last (Python may collect a delegate before the interpreter that uses it) frees
// it.
struct Shared {
  std::mutex mutex;
  // Weights decoded at partitioning time, until the kernel that claims their nodes
  // takes them (KernelInit): the kernel, freed with its interpreter, owns them.
  std::map<TensorKey, Early> pending;
  // The node whose payload a weight tensor holds, once decoded: another decode node
  // with the same output must decode to the same bytes.
  std::map<TensorKey, int> producer;

  ~Shared() {
    for (const auto& entry : pending) {
      g_held_bytes.fetch_sub(entry.second.bytes, std::memory_order_relaxed);
    }
  }
  int Producer(const void* context, int tensor) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = producer.find({context, tensor});
    return it == producer.end() ? -1 : it->second;
  }
  void SetProducer(const void* context, int tensor, int node) {
    std::lock_guard<std::mutex> lock(mutex);
    producer[{context, tensor}] = node;
  }
};

// Owned by the delegate (which may outlive its interpreters and serve several).
struct DelegateData {
  bool probe = false;
  // Decode while the graph is partitioned, so that consumers see constant weights.
  bool constant_weights = true;
  // Lift the resource bound on decoded sizes.
  bool trusted = false;
  // Run sparse FULLY_CONNECTED / 1x1 CONV_2D layers with tfedge's sparse kernels
  // (sparse_kernels.h); option "sparse_kernels".
  bool sparse_kernels = true;
  // Layers whose sparse layout touches at most this fraction of the weights run
  // sparse (option "sparse_max_density", for measuring the break-even); negative:
  // the measured bounds (sparse::DensityBound).
  double sparse_max_density = -1.0;
  // The sparse kernels' instruction set (option "sparse_isa", for tests of every code
  // path; sparse::Isa).
  sparse::Isa sparse_isa = sparse::Isa::kAuto;
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();

  uint64_t Bound(size_t coded) const {
    return trusted ? UINT64_MAX : DecodedBound(coded);
  }
};

struct KernelState {
  std::vector<DecodeNode> nodes;
  bool trusted = false;
  std::shared_ptr<Shared> shared;  // null when the kernel has no delegate data
  // This kernel's early-decoded weights, by tensor index.
  std::map<int, Early> early;
  sparse::Partition sparse;  // the claimed sparse layers, in execution order
  bool sparse_failed = false;

  const void* EarlyBuffer(int tensor, int node) const {
    auto it = early.find(tensor);
    return (it == early.end() || it->second.node != node) ? nullptr
                                                           : it->second.buffer.get();
  }
};

TfLiteStatus Fail(TfLiteContext* context, const TfLiteTensor* out,
                  const std::string& message) {
  context->ReportError(context, "%s: tensor '%s': %s", kOpName,
                       (out && out->name) ? out->name : "?", message.c_str());
  return kTfLiteError;
}

TfLiteStatus FailStatus(TfLiteContext* context, const TfLiteTensor* out,
                        const Status& s) {
  std::string m;
  if (s.offset() >= 0) m = "byte " + std::to_string(s.offset()) + ": ";
  return Fail(context, out, m + s.message());
}

void* KernelInit(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* state = new (std::nothrow) KernelState;
  if (state == nullptr || params == nullptr || params->nodes_to_replace == nullptr) {
    return state;
  }
  if (params->delegate != nullptr && params->delegate->data_ != nullptr) {
    const auto* data = static_cast<const DelegateData*>(params->delegate->data_);
    state->trusted = data->trusted;
    state->shared = data->shared;
    state->sparse.set_isa(data->sparse_isa);
  }
  const TfLiteIntArray* nodes = params->nodes_to_replace;
  for (int i = 0; i < nodes->size; ++i) {
    DecodeNode d;
    d.node_index = nodes->data[i];
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, d.node_index, &node, &reg) ==
            kTfLiteOk &&
        reg != nullptr && reg->builtin_code != kBuiltinCustom) {
      // A sparse layer the delegate claimed (see DelegatePrepare).
      state->sparse_failed |= state->sparse.Add(context, d.node_index) != kTfLiteOk;
      continue;
    }
    if (node != nullptr) {
      d.n_inputs = node->inputs ? node->inputs->size : 0;
      d.n_outputs = node->outputs ? node->outputs->size : 0;
      if (d.n_inputs > 0) d.payload = node->inputs->data[0];
      if (d.n_outputs > 0) d.output = node->outputs->data[0];
    }
    state->nodes.push_back(d);
    Shared* shared = state->shared.get();
    if (shared != nullptr && d.output >= 0) {
      std::lock_guard<std::mutex> lock(shared->mutex);
      auto it = shared->pending.find({context, d.output});
      if (it != shared->pending.end() && it->second.node == d.node_index) {
        state->early[d.output] = std::move(it->second);
        shared->pending.erase(it);
      }
    }
  }
  return state;
}

// Frees the kernel's early-decoded weights with it (with its interpreter, or when the
// runtime undoes the delegation): a tensor still pointing at one is handed back to the
// arena, so a redone delegation decodes it again.
void KernelFree(TfLiteContext* context, void* buffer) {
  auto* state = static_cast<KernelState*>(buffer);
  if (state == nullptr) return;
  for (auto& [tensor, early] : state->early) {
    if (context != nullptr && tensor >= 0 &&
        static_cast<size_t>(tensor) < context->tensors_size) {
      TfLiteTensor* t = &context->tensors[tensor];
      if (t->data.raw == reinterpret_cast<char*>(early.buffer.get())) {
        t->data.raw = nullptr;
        t->allocation_type = kTfLiteArenaRw;
      }
    }
    g_held_bytes.fetch_sub(early.bytes, std::memory_order_relaxed);
  }
  if (state->shared != nullptr) {
    std::lock_guard<std::mutex> lock(state->shared->mutex);
    for (const DecodeNode& d : state->nodes) {
      state->shared->producer.erase({context, d.output});
    }
  }
  delete state;
}

// Decodes the payload into a temporary buffer and compares it with what another decode
// node already put in the output (two decode nodes with one output: both payloads must
// decode to the same bytes, as tfedge.expand requires).
TfLiteStatus CheckSameAsProducer(TfLiteContext* context, TfLiteTensor* out,
                                 const uint8_t* payload, size_t n, uint64_t bound,
                                 int producer) {
  if (out->data.raw == nullptr) {
    return Fail(context, out, "the tensor is the output of two TFEDGE_DECODE nodes");
  }
  std::unique_ptr<uint8_t, FreeDeleter> tmp(
      static_cast<uint8_t*>(std::malloc(std::max<size_t>(out->bytes, 1))));
  if (!tmp) return Fail(context, out, "out of memory");
  const Status s = DecodePayload(payload, n, bound, tmp.get(), out->bytes, nullptr);
  if (!s.ok()) return FailStatus(context, out, s);
  if (std::memcmp(tmp.get(), out->data.raw, out->bytes) != 0) {
    return Fail(context, out,
                "two payloads decode to different data for this tensor (node " +
                    std::to_string(producer) + " decoded the other)");
  }
  return kTfLiteOk;
}

// Validates one decode node and decodes its payload into its (persistent) output.
TfLiteStatus PrepareOne(TfLiteContext* context, DecodeNode* d, KernelState* state) {
  Shared* data = state->shared.get();
  const size_t n_tensors = context->tensors_size;
  if (d->output < 0 || static_cast<size_t>(d->output) >= n_tensors) {
    context->ReportError(context, "%s: node %d has no valid output tensor", kOpName,
                         d->node_index);
    return kTfLiteError;
  }
  TfLiteTensor* out = &context->tensors[d->output];
  if (d->n_inputs != 1 || d->n_outputs != 1) {
    return Fail(context, out,
                "the operator must have exactly one input and one output, it has " +
                    std::to_string(d->n_inputs) + " and " +
                    std::to_string(d->n_outputs));
  }
  if (d->payload < 0 || static_cast<size_t>(d->payload) >= n_tensors) {
    return Fail(context, out, "the payload tensor index is invalid");
  }
  // Decoded when the graph was partitioned (see DecodeEarly): nothing left to do.
  if (out->allocation_type == kTfLiteMmapRo && out->data.raw != nullptr &&
      out->data.raw == state->EarlyBuffer(d->output, d->node_index)) {
    d->decoded_at = out->data.raw;
    return kTfLiteOk;
  }
  // Another decode node already produced this tensor: this payload is checked all
  // the same, and must decode to the same bytes.
  const int producer = data != nullptr ? data->Producer(context, d->output) : -1;
  const bool second = producer >= 0 && producer != d->node_index;
  const TfLiteTensor* in = &context->tensors[d->payload];
  if (in->type != kTfLiteUInt8) {
    return Fail(context, out,
                std::string("the payload tensor is ") + TypeName(in->type) +
                    ", expected UINT8");
  }
  if (in->allocation_type != kTfLiteMmapRo || in->data.raw_const == nullptr) {
    return Fail(context, out, "the payload tensor is not a constant buffer");
  }
  const auto* payload = reinterpret_cast<const uint8_t*>(in->data.raw_const);
  const size_t n = in->bytes;
  const uint64_t limit = state->trusted ? UINT64_MAX : DecodedBound(n);
  if (out->bytes > limit) {
    return Fail(context, out,
                "the tensor's " + std::to_string(out->bytes) +
                    " bytes are over the resource bound of a " + std::to_string(n) +
                    "-byte payload, max(" + std::to_string(kExpansionRatio) + " x " +
                    std::to_string(n) + ", " + std::to_string(kExpansionFloor) +
                    ") bytes; a caller who trusts the file can lift it (trusted=True)");
  }
  const uint64_t bound = out->bytes;
  Header h;
  Status s = ParseHeader(payload, n, bound, &h);
  if (!s.ok()) return FailStatus(context, out, s);
  if (h.decoded_size != out->bytes) {
    return Fail(context, out,
                "the payload decodes to " + std::to_string(h.decoded_size) +
                    " bytes, the tensor " + TypeName(out->type) + DimsString(out->dims) +
                    " holds " + std::to_string(out->bytes));
  }
  if (RuntimeType(h.element_type) != out->type) {
    return Fail(context, out,
                std::string("the payload holds ") +
                    TypeName(RuntimeType(h.element_type)) + " elements (TensorType " +
                    std::to_string(h.element_type) + "), the tensor is " +
                    TypeName(out->type));
  }
  if (out->dims == nullptr || out->dims->size < 0 || out->dims->size > kMaxDims) {
    return Fail(context, out, "the tensor has no valid shape");
  }
  if (second) {
    if (d->decoded_at != nullptr && d->decoded_at == out->data.raw) return kTfLiteOk;
    TfLiteStatus st = CheckSameAsProducer(context, out, payload, n, bound, producer);
    if (st == kTfLiteOk) d->decoded_at = out->data.raw;
    return st;
  }
  // The output becomes persistent, read-only after Prepare: allocated by the runtime
  // (ResizeTensor reallocates kTfLitePersistentRo tensors), never reused by the arena.
  if (out->allocation_type != kTfLitePersistentRo) {
    out->allocation_type = kTfLitePersistentRo;
    out->data.raw = nullptr;  // the arena's pointer, if any, is not ours to free
    d->decoded_at = nullptr;
  }
  if (out->data.raw == nullptr) {
    TfLiteIntArray* dims = NewIntArray(out->dims->size);
    if (dims == nullptr) return Fail(context, out, "out of memory");
    std::memcpy(dims->data, out->dims->data, sizeof(int) * out->dims->size);
    if (context->ResizeTensor(context, out, dims) != kTfLiteOk) {
      return Fail(context, out, "the runtime could not allocate the tensor");
    }
    // Re-read: ResizeTensor may have grown context->tensors.
    out = &context->tensors[d->output];
    in = &context->tensors[d->payload];
    payload = reinterpret_cast<const uint8_t*>(in->data.raw_const);
    if (out->data.raw == nullptr || out->bytes != h.decoded_size) {
      return Fail(context, out,
                  "the runtime did not allocate the tensor (TFLite layout changed?)");
    }
  }
  if (d->decoded_at == out->data.raw) return kTfLiteOk;  // decoded once already
  s = DecodePayload(payload, n, bound, out->data.uint8, out->bytes, nullptr);
  if (!s.ok()) return FailStatus(context, out, s);
  g_decode_count.fetch_add(1, std::memory_order_relaxed);
  d->decoded_at = out->data.raw;
  if (data != nullptr) data->SetProducer(context, d->output, d->node_index);
  return kTfLiteOk;
}

TfLiteStatus KernelPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* state = static_cast<KernelState*>(node->user_data);
  if (state == nullptr) {
    context->ReportError(context, "%s: out of memory", kOpName);
    return kTfLiteError;
  }
  for (DecodeNode& d : state->nodes) {
    if (PrepareOne(context, &d, state) != kTfLiteOk) return kTfLiteError;
  }
  if (state->sparse_failed) return kTfLiteError;
  return state->sparse.empty() ? kTfLiteOk : state->sparse.Prepare(context, node);
}

TfLiteStatus KernelInvoke(TfLiteContext* context, TfLiteNode* node) {
  auto* state = static_cast<KernelState*>(node->user_data);
  if (state == nullptr) return kTfLiteError;
  for (DecodeNode& d : state->nodes) {
    TfLiteTensor* out = &context->tensors[d.output];
    if (out->data.raw == d.decoded_at) continue;
    // The runtime moved the tensor since Prepare: decode again, into its buffer.
    const TfLiteTensor* in = &context->tensors[d.payload];
    const Status s =
        DecodePayload(reinterpret_cast<const uint8_t*>(in->data.raw_const), in->bytes,
                      out->bytes, out->data.uint8, out->bytes, nullptr);
    if (!s.ok()) return FailStatus(context, out, s);
    g_decode_count.fetch_add(1, std::memory_order_relaxed);
    d.decoded_at = out->data.raw;
  }
  return state->sparse.empty() ? kTfLiteOk : state->sparse.Invoke(context);
}

// --- the delegate ---------------------------------------------------------------------

// Padded so that a runtime reading a few more (newer) members reads zeros.
struct PaddedDelegate {
  TfLiteDelegate delegate;
  char padding[64];
};

// Decodes one claimed node's payload into a buffer the delegate owns and makes the
// weight tensor a read-only constant (kTfLiteMmapRo), before any other delegate
// (XNNPACK is applied at the first allocate_tensors) looks at the graph: consumers then
// see constant weights and keep their constant-weight fast paths. Anything unusual is
// left to the kernel's Prepare, which reports it. Returns whether it decoded.
bool DecodeEarly(TfLiteContext* context, DelegateData* data, int node_index,
                 const TfLiteNode* node) {
  if (node->inputs->size != 1 || node->outputs->size != 1) return false;
  const int output = node->outputs->data[0];
  const TfLiteTensor* in = &context->tensors[node->inputs->data[0]];
  TfLiteTensor* out = &context->tensors[output];
  if (in->type != kTfLiteUInt8 || in->allocation_type != kTfLiteMmapRo ||
      in->data.raw_const == nullptr || out->allocation_type != kTfLiteArenaRw ||
      out->data.raw != nullptr || out->bytes == 0 || out->bytes > data->Bound(in->bytes)) {
    return false;
  }
  const auto* payload = reinterpret_cast<const uint8_t*>(in->data.raw_const);
  Header h;
  if (!ParseHeader(payload, in->bytes, out->bytes, &h).ok() ||
      h.decoded_size != out->bytes || RuntimeType(h.element_type) != out->type) {
    return false;
  }
  // TFLite aligns tensor data to 64 bytes; so do we.
  const size_t size = (out->bytes + 63) / 64 * 64;
  std::unique_ptr<uint8_t, FreeDeleter> buffer(
      static_cast<uint8_t*>(std::aligned_alloc(64, size)));
  if (!buffer) return false;
  if (!DecodePayload(payload, in->bytes, out->bytes, buffer.get(), out->bytes, nullptr)
           .ok()) {
    return false;
  }
  g_decode_count.fetch_add(1, std::memory_order_relaxed);
  g_held_bytes.fetch_add(size, std::memory_order_relaxed);
  out->data.raw = reinterpret_cast<char*>(buffer.get());
  out->allocation_type = kTfLiteMmapRo;
  Shared& shared = *data->shared;
  std::lock_guard<std::mutex> lock(shared.mutex);
  auto stale = shared.pending.find({context, output});
  if (stale != shared.pending.end()) {
    g_held_bytes.fetch_sub(stale->second.bytes, std::memory_order_relaxed);
  }
  Early& e = shared.pending[{context, output}];
  e.buffer = std::move(buffer);
  e.bytes = size;
  e.node = node_index;
  shared.producer[{context, output}] = node_index;
  return true;
}

bool IsDecodeOp(const TfLiteRegistration* reg) {
  return reg != nullptr && reg->builtin_code == kBuiltinCustom &&
         reg->custom_name != nullptr && std::strcmp(reg->custom_name, kOpName) == 0;
}

TfLiteStatus LayoutError(TfLiteContext* context, const char* what) {
  context->ReportError(context,
                       "tfedge delegate: %s; this TFLite runtime's struct layout is not "
                       "the one tfedge was built for (TensorFlow 2.21). Use "
                       "tfedge.expand() instead of the decoder op.",
                       what);
  return kTfLiteDelegateError;
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* delegate) {
  auto* data = static_cast<DelegateData*>(delegate->data_);
  if (context->tensors_size > (size_t{1} << 31)) {
    return LayoutError(context, "implausible tensor count");
  }
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || plan == nullptr ||
      plan->size < 0 || plan->size > (1 << 24)) {
    return LayoutError(context, "implausible execution plan");
  }
  if (data != nullptr && data->probe) WriteProbe(context, plan);
  std::vector<int> claim;
  std::vector<bool> decoded;  // by tensor: decoded above (DecodeEarly)
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) !=
        kTfLiteOk) {
      return LayoutError(context, "GetNodeAndRegistration failed");
    }
    if (!IsDecodeOp(reg)) {
      const bool sparse_op = data != nullptr && data->sparse_kernels && reg != nullptr &&
                             (reg->builtin_code == sparse::kBuiltinFullyConnected ||
                              reg->builtin_code == sparse::kBuiltinConv2d) &&
                             node->inputs != nullptr && node->inputs->size >= 2 &&
                             node->inputs->size <= 3 && node->inputs->data[1] >= 0;
      if (sparse_op) {
        const size_t w = static_cast<size_t>(node->inputs->data[1]);
        if (sparse::Claimable(context, node, reg, w < decoded.size() && decoded[w],
                              data->sparse_max_density)) {
          claim.push_back(plan->data[i]);
        }
      }
      continue;
    }
    if (!PlausibleArray(node->inputs, context->tensors_size) ||
        !PlausibleArray(node->outputs, context->tensors_size)) {
      return LayoutError(context, "a TFEDGE_DECODE node has implausible tensor lists");
    }
    claim.push_back(plan->data[i]);
    if (data != nullptr && data->constant_weights) {
      if (DecodeEarly(context, data, plan->data[i], node)) {
        decoded.resize(context->tensors_size, false);
        decoded[node->outputs->data[0]] = true;
      }
    }
  }
  if (claim.empty()) return kTfLiteOk;
  TfLiteIntArray* nodes = NewIntArray(static_cast<int>(claim.size()));
  if (nodes == nullptr) return kTfLiteError;
  std::memcpy(nodes->data, claim.data(), sizeof(int) * claim.size());
  const TfLiteStatus status = context->ReplaceNodeSubsetsWithDelegateKernels(
      context, DecodeKernelRegistration(), nodes, delegate);
  std::free(nodes);
  return status;
}

}  // namespace

// The one registration entry point of the TFEDGE_DECODE kernel.
const tflite_abi::TfLiteRegistration& DecodeKernelRegistration() {
  static const tflite_abi::TfLiteRegistration reg = [] {
    tflite_abi::TfLiteRegistration r{};
    r.init = KernelInit;
    r.free = KernelFree;
    r.prepare = KernelPrepare;
    r.invoke = KernelInvoke;
    r.builtin_code = tflite_abi::kBuiltinDelegate;
    r.custom_name = kKernelName;
    r.version = 1;
    return r;
  }();
  return reg;
}

}  // namespace tfedge

extern "C" {

// The external-delegate plugin interface (TFLite's delegate_loader / load_delegate).
// Options: "probe" = "1" records the graph as the delegate saw it (for the layout
// pin test; see tfedge_delegate_probe_report). "constant_weights" = "0" turns off the
// decoding at graph-partitioning time (weights are then decoded in Prepare into
// persistent, non-constant tensors). "sparse_kernels" = "0" leaves sparse
// FULLY_CONNECTED / 1x1 CONV_2D layers to the stock dense kernels (default "1": the
// delegate runs them with its sparse kernels, sparse_kernels.h; needs
// constant_weights). "sparse_max_density" = a number overrides the break-even
// densities (sparse_kernels.h kBreakEvenDensity, kConvBreakEvenDensity), for
// measuring them. "sparse_isa" = "auto" (default: the best the CPU has), "avx512",
// "avx2" or "generic" forces the sparse kernels' instruction set, for tests of every
// code path (creation fails when the CPU lacks it; tfedge_sparse_isa_supported).
TFEDGE_EXPORT tfedge::tflite_abi::TfLiteDelegate* tflite_plugin_create_delegate(
    char** keys, char** values, size_t num_options, void (*report_error)(const char*)) {
  auto* data = new (std::nothrow) tfedge::DelegateData;
  if (data == nullptr) return nullptr;
  for (size_t i = 0; i < num_options; ++i) {
    const char* k = keys[i] ? keys[i] : "";
    const char* v = values[i] ? values[i] : "";
    if (std::strcmp(k, "probe") == 0) {
      data->probe = std::strcmp(v, "1") == 0;
    } else if (std::strcmp(k, "constant_weights") == 0) {
      data->constant_weights = std::strcmp(v, "0") != 0;
    } else if (std::strcmp(k, "trusted") == 0) {
      data->trusted = std::strcmp(v, "1") == 0;
    } else if (std::strcmp(k, "sparse_kernels") == 0) {
      data->sparse_kernels = std::strcmp(v, "0") != 0;
    } else if (std::strcmp(k, "sparse_max_density") == 0) {
      data->sparse_max_density = std::strtod(v, nullptr);
    } else if (std::strcmp(k, "sparse_isa") == 0) {
      if (!tfedge::sparse::ParseIsa(v, &data->sparse_isa) ||
          !tfedge::sparse::IsaSupported(data->sparse_isa)) {
        if (report_error != nullptr) {
          std::string m = std::string("tfedge delegate: sparse_isa '") + v +
                          "' is not one this build and CPU run; options are 'auto', "
                          "'generic', 'avx2' and 'avx512' "
                          "(tfedge_sparse_isa_supported tells which run here)";
          report_error(m.c_str());
        }
        delete data;
        return nullptr;
      }
    } else {
      if (report_error != nullptr) {
        std::string m = std::string("tfedge delegate: unknown option '") + k +
                        "'; options are 'probe', 'constant_weights', 'trusted', "
                        "'sparse_kernels', 'sparse_max_density' and 'sparse_isa'";
        report_error(m.c_str());
      }
      delete data;
      return nullptr;
    }
  }
  auto* padded = new (std::nothrow) tfedge::PaddedDelegate{};
  if (padded == nullptr) {
    delete data;
    return nullptr;
  }
  padded->delegate.data_ = data;
  padded->delegate.Prepare = tfedge::DelegatePrepare;
  padded->delegate.flags = tfedge::tflite_abi::kTfLiteDelegateFlagsAllowDynamicTensors;
  return &padded->delegate;
}

TFEDGE_EXPORT void tflite_plugin_destroy_delegate(
    tfedge::tflite_abi::TfLiteDelegate* delegate) {
  if (delegate == nullptr) return;
  delete static_cast<tfedge::DelegateData*>(delegate->data_);
  delete reinterpret_cast<tfedge::PaddedDelegate*>(delegate);
}

// Copies the last probe report (NUL-terminated) into buf; returns its full length.
TFEDGE_EXPORT size_t tfedge_delegate_probe_report(char* buf, size_t len) {
  std::lock_guard<std::mutex> lock(tfedge::g_probe_mutex);
  if (buf != nullptr && len > 0) {
    std::snprintf(buf, len, "%s", tfedge::g_probe_report.c_str());
  }
  return tfedge::g_probe_report.size();
}

// Bytes of weights decoded at partitioning time that are still held (by kernels, or
// pending a kernel); they are freed with the interpreter that uses them.
TFEDGE_EXPORT uint64_t tfedge_delegate_held_bytes(void) {
  return tfedge::g_held_bytes.load(std::memory_order_relaxed);
}

// 1 when the sparse kernels' instruction set `name` ("auto", "generic", "avx2",
// "avx512") is in this build and runs on this CPU, 0 when not, -1 for an unknown name.
TFEDGE_EXPORT int tfedge_sparse_isa_supported(const char* name) {
  tfedge::sparse::Isa isa;
  if (!tfedge::sparse::ParseIsa(name, &isa)) return -1;
  return tfedge::sparse::IsaSupported(isa) ? 1 : 0;
}

// Sparse layers built (and of those, blocked ones), sparse operator runs, and
// nanoseconds spent in those runs, in this process (sparse_kernels.h).
TFEDGE_EXPORT void tfedge_sparse_stats(uint64_t* layers, uint64_t* blocked,
                                       uint64_t* runs, uint64_t* nanos) {
  if (layers != nullptr) *layers = tfedge::sparse::LayersBuilt();
  if (blocked != nullptr) *blocked = tfedge::sparse::BlockedLayersBuilt();
  if (runs != nullptr) *runs = tfedge::sparse::OpRuns();
  if (nanos != nullptr) *nanos = tfedge::sparse::OpNanos();
}

// The number of payloads the TFEDGE_DECODE kernel has decoded in this process.
TFEDGE_EXPORT uint64_t tfedge_delegate_decode_count(void) {
  return tfedge::g_decode_count.load(std::memory_order_relaxed);
}

}  // extern "C"
