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
// For T = 1 the loops are scalar (the compiler may vectorize the 1x4 block), the CSR
// loop keeping four partial sums to hide the add latency. For T = 8 and 16 (with GCC or
// Clang) the T lanes are explicit vectors held in registers, with independent
// accumulators so consecutive multiply-adds overlap. The order of float sums differs
// from the dense kernel's, within the float tolerance.


template <typename Idx, typename W, typename A, int T>
void CsrTile(const int32_t* start, const Idx* idx, const W* val, int rows,
             const A* __restrict xt, A* __restrict acc) {
  for (int o = 0; o < rows; ++o) {
    const int32_t b = start[o], e = start[o + 1];
    if constexpr (T == 1) {
      A s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int32_t j = b;
      for (; j + 4 <= e; j += 4) {
        s0 += static_cast<A>(val[j]) * xt[idx[j]];
        s1 += static_cast<A>(val[j + 1]) * xt[idx[j + 1]];
        s2 += static_cast<A>(val[j + 2]) * xt[idx[j + 2]];
        s3 += static_cast<A>(val[j + 3]) * xt[idx[j + 3]];
      }
      for (; j < e; ++j) s0 += static_cast<A>(val[j]) * xt[idx[j]];
      acc[o] = (s0 + s1) + (s2 + s3);
    } else {
      // Two accumulator sets, so consecutive entries' multiply-adds overlap.
      A s[T] = {}, u[T] = {};
      int32_t j = b;
      for (; j + 2 <= e; j += 2) {
        const A v0 = static_cast<A>(val[j]), v1 = static_cast<A>(val[j + 1]);
        const A* x0 = xt + static_cast<size_t>(idx[j]) * T;
        const A* x1 = xt + static_cast<size_t>(idx[j + 1]) * T;
        for (int t = 0; t < T; ++t) s[t] += v0 * x0[t];
        for (int t = 0; t < T; ++t) u[t] += v1 * x1[t];
      }
      if (j < e) {
        const A v = static_cast<A>(val[j]);
        const A* x = xt + static_cast<size_t>(idx[j]) * T;
        for (int t = 0; t < T; ++t) s[t] += v * x[t];
      }
      for (int t = 0; t < T; ++t) acc[static_cast<size_t>(o) * T + t] = s[t] + u[t];
    }
  }
}

// 1x4 blocks: each stored block is four consecutive inputs (columns c..c+3) of one
// output row; one index per block.
template <typename Idx, typename W, typename A, int T>
void Block1x4Tile(const int32_t* start, const Idx* idx, const W* val, int rows,
                  const A* __restrict xt, A* __restrict acc) {
  for (int o = 0; o < rows; ++o) {
    // One accumulator set per block column: four independent multiply-add chains.
    A s0[T] = {}, s1[T] = {}, s2[T] = {}, s3[T] = {};
    for (int32_t j = start[o]; j < start[o + 1]; ++j) {
      const W* v = val + static_cast<size_t>(j) * 4;
      const A v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      for (int t = 0; t < T; ++t) s0[t] += v0 * x[t];
      for (int t = 0; t < T; ++t) s1[t] += v1 * x[T + t];
      for (int t = 0; t < T; ++t) s2[t] += v2 * x[2 * T + t];
      for (int t = 0; t < T; ++t) s3[t] += v3 * x[3 * T + t];
    }
    for (int t = 0; t < T; ++t) {
      acc[static_cast<size_t>(o) * T + t] = (s0[t] + s1[t]) + (s2[t] + s3[t]);
    }
  }
}

// 4x1 blocks: each stored block is one input column of four consecutive output rows
// (4g..4g+3); `start` runs over groups of four rows, one index per block.
template <typename Idx, typename W, typename A, int T>
void Block4x1Tile(const int32_t* start, const Idx* idx, const W* val, int rows,
                  const A* __restrict xt, A* __restrict acc) {
  const int groups = (rows + 3) / 4;
  for (int g = 0; g < groups; ++g) {
    A s[4][T] = {};
    for (int32_t j = start[g]; j < start[g + 1]; ++j) {
      const W* v = val + static_cast<size_t>(j) * 4;
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      for (int r = 0; r < 4; ++r) {
        const A vr = v[r];
        for (int t = 0; t < T; ++t) s[r][t] += vr * x[t];
      }
    }
    for (int r = 0; r < 4; ++r) {
      for (int t = 0; t < T; ++t) acc[(static_cast<size_t>(g) * 4 + r) * T + t] = s[r][t];
    }
  }
}

#if defined(__GNUC__)
// Vectors of TFEDGE_SPARSE_VBYTES bytes (set by the includer): 32 (8 floats or int32s:
// one AVX2 register, two SSE2 ones) or 64 (one AVX-512 register).
template <typename A>
struct Lanes {
  typedef A V __attribute__((vector_size(TFEDGE_SPARSE_VBYTES)));
  static constexpr int kLanes = TFEDGE_SPARSE_VBYTES / sizeof(A);
  static V Load(const A* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(v));
    return v;
  }
  static void Store(A* p, V v) { __builtin_memcpy(p, &v, sizeof(v)); }
  static V Splat(A a) { return V{} + a; }
};

template <typename Idx, typename W, typename A, int T>
void CsrTileV(const int32_t* start, const Idx* idx, const W* val, int rows,
              const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  if constexpr (T % L::kLanes != 0) {  // fewer rows than one vector holds
    CsrTile<Idx, W, A, T>(start, idx, val, rows, xt, acc);
    return;
  }
  for (int o = 0; o < rows; ++o) {
    const int32_t b = start[o], e = start[o + 1];
    V s[N] = {}, u[N] = {};
    int32_t j = b;
    for (; j + 2 <= e; j += 2) {
      const V v0 = L::Splat(static_cast<A>(val[j]));
      const V v1 = L::Splat(static_cast<A>(val[j + 1]));
      const A* x0 = xt + static_cast<size_t>(idx[j]) * T;
      const A* x1 = xt + static_cast<size_t>(idx[j + 1]) * T;
      for (int n = 0; n < N; ++n) s[n] += v0 * L::Load(x0 + n * L::kLanes);
      for (int n = 0; n < N; ++n) u[n] += v1 * L::Load(x1 + n * L::kLanes);
    }
    if (j < e) {
      const V v = L::Splat(static_cast<A>(val[j]));
      const A* x = xt + static_cast<size_t>(idx[j]) * T;
      for (int n = 0; n < N; ++n) s[n] += v * L::Load(x + n * L::kLanes);
    }
    for (int n = 0; n < N; ++n) {
      L::Store(acc + static_cast<size_t>(o) * T + n * L::kLanes, s[n] + u[n]);
    }
  }
}

template <typename Idx, typename W, typename A, int T>
void Block1x4TileV(const int32_t* start, const Idx* idx, const W* val, int rows,
                   const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  if constexpr (T % L::kLanes != 0) {  // fewer rows than one vector holds
    Block1x4Tile<Idx, W, A, T>(start, idx, val, rows, xt, acc);
    return;
  }
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

template <typename Idx, typename W, typename A, int T>
void Block4x1TileV(const int32_t* start, const Idx* idx, const W* val, int rows,
                   const A* __restrict xt, A* __restrict acc) {
  using L = Lanes<A>;
  using V = typename L::V;
  constexpr int N = T / L::kLanes;
  if constexpr (T % L::kLanes != 0) {  // fewer rows than one vector holds
    Block4x1Tile<Idx, W, A, T>(start, idx, val, rows, xt, acc);
    return;
  }
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
#endif
