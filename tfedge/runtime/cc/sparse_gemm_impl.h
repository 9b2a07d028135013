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
// consecutive multiply-adds overlap: CSR keeps kChains partial sums (four for a single
// row, two for a tile), blocks one per block column or row. The order of float sums
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
  // A single row has only its own sum to add to: four chains hide the add latency.
  constexpr int kChains = T == 1 ? 4 : 2;
  for (int o = 0; o < rows; ++o) {
    const int32_t b = start[o], e = start[o + 1];
    V s[kChains][N] = {};
    int32_t j = b;
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
