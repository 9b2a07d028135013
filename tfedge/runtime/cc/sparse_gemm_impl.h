// The inner loops of tfedge's sparse kernels: one product of a sparse weight matrix
// (CSR or blocked CSR) with a tile of T input rows.
//
// Included by sparse_kernels.cc once for the baseline instruction set and (x86-64 with
// GCC) once under `#pragma GCC target("avx2,fma")` and once under
// `#pragma GCC target("avx512f")`, each time inside its own namespace and with its own
// vector width; the library picks one at run time. No include guard on purpose.
//
// Shapes: `xt` is the tile transposed, [kpad][T] (input k of tile row t at xt[k*T+t],
// zero beyond the real input count); `acc` receives the raw dot products, [rows][T]
// (rows rounded up to 4 for the 4x1 layout). A is float (float32 weights) or int32
// (int8 weights, whose zero point is 0, so the products need no offset here).
//
// One loop body per layout serves every tile height: the T lanes of a tile are held
// as N = T / kLanes values of Lanes<A, T>::V, explicit vectors (GCC and Clang vector
// extensions) of up to TFEDGE_SPARSE_VBYTES bytes when T > 1, plain scalars when
// T = 1 (or without vector extensions). Independent accumulator chains let
// consecutive multiply-adds overlap: CSR keeps kChains partial sums (four when a row's
// sum is one register, two when it is several), blocks one per block column or row. The order of float sums
// differs from the dense kernel's, within the float tolerance.

// Scalar lanes: one value per register (T = 1, or no vector extensions).
template <typename A, int T, bool kVector = (T > 1)>
struct Lanes {
  using V = A;
  static constexpr int kLanes = 1;
  static V Load(const A* p) { return *p; }
  static void Store(A* p, V v) { *p = v; }
  static V Splat(A a) { return a; }
};

#if defined(__GNUC__)
// Vectors of TFEDGE_SPARSE_VBYTES bytes (set by the includer: 32, 8 floats or int32s,
// one AVX2 register or two SSE2 ones; 64, one AVX-512 register), narrower when the
// tile holds fewer values than one such vector.
template <typename A, int T>
struct Lanes<A, T, true> {
  static constexpr int kBytes = T * static_cast<int>(sizeof(A)) < TFEDGE_SPARSE_VBYTES
                                    ? T * static_cast<int>(sizeof(A))
                                    : TFEDGE_SPARSE_VBYTES;
  typedef A V __attribute__((vector_size(kBytes)));
  static constexpr int kLanes = kBytes / static_cast<int>(sizeof(A));
  static V Load(const A* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(A* p, V v) { __builtin_memcpy(p, &v, sizeof(v)); }
  static V Splat(A a) { return V{} + a; }
};
#endif

template <typename Idx, typename W, typename A, int T>
void CsrTile(const int32_t* start, const Idx* idx, const W* val, int rows,
             const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A, T>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  static_assert(N * L::kLanes == T, "a tile is a whole number of vectors");
  // Four independent chains hide the multiply-add latency when a row's sum is one
  // register (a single row, or a tile that fills one vector); two when it is several.
  constexpr int kChains = N >= 2 ? 2 : 4;
  for (int o = 0; o < rows; ++o) {
    const int32_t b = start[o], e = start[o + 1];
    V s[kChains][N] = {};
    int32_t j = b;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if constexpr (T == 1 && kChains == 4 && sizeof(Idx) == 2) {
      // One row at a time is bound by loads (index, value and input per weight):
      // here four 16-bit indices come in one 64-bit load, four values in one vector
      // load, and the four chains are the lanes of one vector (measured about 1.0
      // cycle per weight against 1.4-1.5). Lane c is chain c below: the same sums.
      using V4 = typename Lanes<A, 4>::V;
      V4 s4 = {};
      for (; j + 4 <= e; j += 4) {
        uint64_t q;
        std::memcpy(&q, idx + j, sizeof(q));
        V4 w;
        if constexpr (std::is_same_v<W, A>) {
          std::memcpy(&w, val + j, sizeof(w));
        } else {
          w = V4{static_cast<A>(val[j]), static_cast<A>(val[j + 1]),
                 static_cast<A>(val[j + 2]), static_cast<A>(val[j + 3])};
        }
        const V4 x = {xt[q & 0xffffu], xt[(q >> 16) & 0xffffu], xt[(q >> 32) & 0xffffu],
                      xt[q >> 48]};
        s4 += w * x;
      }
      for (int c = 0; c < 4; ++c) s[c][0] = s4[c];
    }
#endif
    for (; j + kChains <= e; j += kChains) {
      for (int c = 0; c < kChains; ++c) {
        const V v = L::Splat(static_cast<A>(val[j + c]));
        const A* x = xt + static_cast<size_t>(idx[j + c]) * T;
        for (int n = 0; n < N; ++n) s[c][n] += v * L::Load(x + n * L::kLanes);
      }
    }
    for (; j < e; ++j) {
      const V v = L::Splat(static_cast<A>(val[j]));
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      for (int n = 0; n < N; ++n) s[0][n] += v * L::Load(x + n * L::kLanes);
    }
    for (int n = 0; n < N; ++n) {
      V sum;
      if constexpr (kChains == 4) {
        sum = (s[0][n] + s[1][n]) + (s[2][n] + s[3][n]);
      } else {
        sum = s[0][n] + s[1][n];
      }
      L::Store(acc + static_cast<size_t>(o) * T + n * L::kLanes, sum);
    }
  }
}

// 1x4 blocks: each stored block is four consecutive inputs (columns c..c+3) of one
// output row; one index per block. One accumulator set per block column: four
// independent multiply-add chains.
template <typename Idx, typename W, typename A, int T>
void Block1x4Tile(const int32_t* start, const Idx* idx, const W* val, int rows,
                  const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A, T>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  static_assert(N * L::kLanes == T, "a tile is a whole number of vectors");
  for (int o = 0; o < rows; ++o) {
    V s[4][N] = {};
    for (int32_t j = start[o]; j < start[o + 1]; ++j) {
      const W* v = val + static_cast<size_t>(j) * 4;
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      for (int c = 0; c < 4; ++c) {
        const V vc = L::Splat(static_cast<A>(v[c]));
        for (int n = 0; n < N; ++n) s[c][n] += vc * L::Load(x + c * T + n * L::kLanes);
      }
    }
    for (int n = 0; n < N; ++n) {
      L::Store(acc + static_cast<size_t>(o) * T + n * L::kLanes,
               (s[0][n] + s[1][n]) + (s[2][n] + s[3][n]));
    }
  }
}

// 4x1 blocks: each stored block is one input column of four consecutive output rows
// (4g..4g+3); `start` runs over groups of four rows, one index per block. Each loaded
// input feeds four independent multiply-adds.
template <typename Idx, typename W, typename A, int T>
void Block4x1Tile(const int32_t* start, const Idx* idx, const W* val, int rows,
                  const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A, T>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  static_assert(N * L::kLanes == T, "a tile is a whole number of vectors");
  const int groups = (rows + 3) / 4;
  for (int g = 0; g < groups; ++g) {
    V s[4][N] = {};
    for (int32_t j = start[g]; j < start[g + 1]; ++j) {
      const W* v = val + static_cast<size_t>(j) * 4;
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      V xv[N];
      for (int n = 0; n < N; ++n) xv[n] = L::Load(x + n * L::kLanes);
      for (int r = 0; r < 4; ++r) {
        const V vr = L::Splat(static_cast<A>(v[r]));
        for (int n = 0; n < N; ++n) s[r][n] += vr * xv[n];
      }
    }
    for (int r = 0; r < 4; ++r) {
      for (int n = 0; n < N; ++n) {
        L::Store(acc + (static_cast<size_t>(g) * 4 + r) * T + n * L::kLanes, s[r][n]);
      }
    }
  }
}

// --- float tiles in and out: the transposes -----------------------------------------
//
// A tile enters as T input rows of K values (row-major, as the tensor holds them) and
// is packed transposed, [kpad][T]; its sums leave as [rows][T] and are stored, with
// bias and activation, as T output rows. Over many rows with few nonzeros (1x1 convs)
// these transposes cost as much as the products, so with GCC they go 8 x 8 values at
// a time through vector shuffles; the rest (and other compilers) element by element.
// The float results are the same either way (only copies, one add, one clamp).

#if defined(__GNUC__) && !defined(__clang__)
#define TFEDGE_SPARSE_SHUFFLE 1
typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

inline F8 LoadF8(const float* p) {
  F8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void StoreF8(float* p, F8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// c[j][i] = r[i][j]: unpack within 128-bit halves, pairwise shuffle, swap halves.
inline void Transpose8(const F8 r[8], F8 c[8]) {
  const I8 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
  const I8 s44 = {0, 1, 8, 9, 4, 5, 12, 13}, see = {2, 3, 10, 11, 6, 7, 14, 15};
  const I8 p20 = {0, 1, 2, 3, 8, 9, 10, 11}, p31 = {4, 5, 6, 7, 12, 13, 14, 15};
  F8 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], lo);
    t[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], hi);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then 4-7
    const F8* th = t + 4 * h;
    u[4 * h + 0] = __builtin_shuffle(th[0], th[2], s44);
    u[4 * h + 1] = __builtin_shuffle(th[0], th[2], see);
    u[4 * h + 2] = __builtin_shuffle(th[1], th[3], s44);
    u[4 * h + 3] = __builtin_shuffle(th[1], th[3], see);
  }
  for (int j = 0; j < 4; ++j) {
    c[j] = __builtin_shuffle(u[j], u[4 + j], p20);
    c[j + 4] = __builtin_shuffle(u[j], u[4 + j], p31);
  }
}
#endif

// xt[k][t] = xb[t][k] for k < K, 0 for K <= k < kpad.
template <int T>
void PackTileF(const float* __restrict xb, int K, int kpad, float* __restrict xt) {
  int k = 0;
#ifdef TFEDGE_SPARSE_SHUFFLE
  if constexpr (T % 8 == 0) {
    for (; k + 8 <= K; k += 8) {
      for (int t0 = 0; t0 < T; t0 += 8) {
        F8 r[8], c[8];
        for (int i = 0; i < 8; ++i) r[i] = LoadF8(xb + static_cast<size_t>(t0 + i) * K + k);
        Transpose8(r, c);
        for (int i = 0; i < 8; ++i) StoreF8(xt + static_cast<size_t>(k + i) * T + t0, c[i]);
      }
    }
  }
#endif
  for (; k < K; ++k) {
    for (int t = 0; t < T; ++t) xt[static_cast<size_t>(k) * T + t] = xb[t * K + k];
  }
  for (; k < kpad; ++k) {
    for (int t = 0; t < T; ++t) xt[static_cast<size_t>(k) * T + t] = 0.0f;
  }
}

// y[t][o] = min(max(acc[o][t] + bias[o], lo), hi) for the T rows of a tile.
template <int T>
void StoreTileF(const float* __restrict acc, int rows, const float* bias, float lo,
                float hi, float* __restrict y) {
  int o = 0;
#ifdef TFEDGE_SPARSE_SHUFFLE
  if constexpr (T % 8 == 0) {
    const F8 lov = F8{} + lo, hiv = F8{} + hi;
    for (; o + 8 <= rows; o += 8) {
      const F8 b = bias != nullptr ? LoadF8(bias + o) : F8{};
      for (int t0 = 0; t0 < T; t0 += 8) {
        F8 r[8], c[8];
        for (int i = 0; i < 8; ++i) r[i] = LoadF8(acc + static_cast<size_t>(o + i) * T + t0);
        Transpose8(r, c);
        for (int i = 0; i < 8; ++i) {
          F8 v = bias != nullptr ? c[i] + b : c[i];
          v = v < lov ? lov : v;  // std::max(v, lo)
          v = hiv < v ? hiv : v;  // std::min(v, hi)
          StoreF8(y + static_cast<size_t>(t0 + i) * rows + o, v);
        }
      }
    }
  }
#endif
  for (int t = 0; t < T; ++t) {
    float* yr = y + static_cast<size_t>(t) * rows;
    for (int oo = o; oo < rows; ++oo) {
      float v = acc[static_cast<size_t>(oo) * T + t];
      if (bias != nullptr) v += bias[oo];
      yr[oo] = std::min(std::max(v, lo), hi);
    }
  }
}
#undef TFEDGE_SPARSE_SHUFFLE
