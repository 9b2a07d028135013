// The inner loops of tfedge's sparse kernels: one product of a sparse weight matrix
// (CSR or blocked CSR) with a tile of T input rows.
//
// Included twice by sparse_kernels.cc, once for the baseline instruction set and once
// (x86-64 with GCC) under `#pragma GCC target("avx2,fma")`, each time inside its own
// namespace; the library picks one at run time. No include guard on purpose.
//
// Shapes: `xt` is the tile transposed, [kpad][T] (input k of tile row t at xt[k*T+t],
// zero beyond the real input count); `acc` receives the raw dot products, [rows][T]
// (rows rounded up to 4 for the 4x1 layout). A is float (float32 weights) or int32
// (int8 weights, whose zero point is 0, so the products need no offset here).
//
// The T loops have a compile-time trip count, so the compiler turns them into vector
// code; for T = 1 the CSR loop keeps four partial sums to hide the add latency (the
// order of float sums differs from the dense kernel's, within the float tolerance).

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
