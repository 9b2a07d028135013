// The subset of TensorFlow Lite's C structs that the TFEDGE_DECODE delegate touches,
// declared here because the TensorFlow and ai-edge-litert wheels ship no C headers.
//
// These are the layouts of tensorflow/lite/core/c/common.h as of TensorFlow 2.21 and
// LiteRT 2.x (x86-64 and arm64 LP64): `TfLiteContext` up to the last member used here,
// `TfLiteTensor`, `TfLiteNode`, `TfLiteRegistration`, `TfLiteDelegate` in full. They
// are internal to TFLite ("semi-ABI stable": members are only appended). The delegate
// checks what it reads for plausibility at run time, and
// tests/runtime/test_interpreter.py pins them against the running interpreter's own
// view of the model (names, shapes, types, operator codes): if a runtime changes them,
// that test fails loudly.
#ifndef TFEDGE_RUNTIME_CC_TFLITE_ABI_H_
#define TFEDGE_RUNTIME_CC_TFLITE_ABI_H_

#include <stddef.h>
#include <stdint.h>

namespace tfedge {
namespace tflite_abi {

enum TfLiteStatus : int {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2,
};

// Runtime tensor types (TfLiteType), which differ from the flatbuffer's TensorType.
enum TfLiteType : int {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteString = 5,
  kTfLiteBool = 6,
  kTfLiteInt16 = 7,
  kTfLiteComplex64 = 8,
  kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10,
  kTfLiteFloat64 = 11,
  kTfLiteComplex128 = 12,
  kTfLiteUInt64 = 13,
  kTfLiteResource = 14,
  kTfLiteVariant = 15,
  kTfLiteUInt32 = 16,
  kTfLiteUInt16 = 17,
  kTfLiteInt4 = 18,
  kTfLiteBFloat16 = 19,
  kTfLiteMaxKnownType = 23,
};

enum TfLiteAllocationType : int {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo = 1,
  kTfLiteArenaRw = 2,
  kTfLiteArenaRwPersistent = 3,
  kTfLiteDynamic = 4,
  kTfLitePersistentRo = 5,
  kTfLiteCustom = 6,
};

inline constexpr int32_t kBuiltinCustom = 32;    // BuiltinOperator_CUSTOM
inline constexpr int32_t kBuiltinDelegate = 51;  // BuiltinOperator_DELEGATE
inline constexpr int64_t kTfLiteDelegateFlagsAllowDynamicTensors = 1;

struct TfLiteIntArray {
  int size;
  int data[];
};

struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
};

struct TfLiteQuantization {
  int type;
  void* params;
};

struct TfLiteDelegate;
struct TfLiteContext;
struct TfLiteRegistration;

struct TfLiteTensor {
  TfLiteType type;
  union {
    void* data;
    char* raw;
    const char* raw_const;
    uint8_t* uint8;
  } data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  TfLiteDelegate* delegate;
  int buffer_handle;
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;
  const TfLiteIntArray* dims_signature;
};

struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  TfLiteDelegate* delegate;
  bool might_have_side_effect;
};

struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;
  void* (*async_kernel)(TfLiteContext* context, TfLiteNode* node);
  uint64_t inplace_operator;
};

struct TfLiteDelegateParams {
  TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
};

// Only the members up to ReplaceNodeSubsetsWithDelegateKernels are used; the struct
// is never allocated or copied here, so the remaining members are left out.
struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(TfLiteContext* context,
                                   TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(TfLiteContext*, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(TfLiteContext*, int tensors_to_add,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(TfLiteContext*, int node_index,
                                         TfLiteNode** node,
                                         TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      TfLiteContext*, TfLiteRegistration registration,
      const TfLiteIntArray* nodes_to_replace, TfLiteDelegate* delegate);
};

struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, TfLiteDelegate* delegate);
  TfLiteStatus (*CopyFromBufferHandle)(TfLiteContext* context, TfLiteDelegate* delegate,
                                       int buffer_handle, TfLiteTensor* tensor);
  TfLiteStatus (*CopyToBufferHandle)(TfLiteContext* context, TfLiteDelegate* delegate,
                                     int buffer_handle, TfLiteTensor* tensor);
  void (*FreeBufferHandle)(TfLiteContext* context, TfLiteDelegate* delegate,
                           int* handle);
  int64_t flags;
  void* opaque_delegate_builder;
};

// Layout facts of TensorFlow 2.21 on LP64 targets; a changed declaration above fails
// the build here, a changed runtime fails the pin test.
static_assert(sizeof(void*) != 8 || sizeof(TfLiteTensor) == 112, "TfLiteTensor");
static_assert(sizeof(void*) != 8 || sizeof(TfLiteNode) == 80, "TfLiteNode");
static_assert(sizeof(void*) != 8 || sizeof(TfLiteRegistration) == 88,
              "TfLiteRegistration");
static_assert(sizeof(void*) != 8 || sizeof(TfLiteDelegate) == 56, "TfLiteDelegate");
static_assert(sizeof(void*) != 8 || offsetof(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels) == 64,
              "TfLiteContext");

}  // namespace tflite_abi
}  // namespace tfedge

#endif  // TFEDGE_RUNTIME_CC_TFLITE_ABI_H_
