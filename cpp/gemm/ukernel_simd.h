// The register-blocked micro-kernel written once over a small vector-traits type V (AVX2, AVX-512, ...),
// instantiated in each ISA's file. Contract: ukernel.h. V provides:
//   T, vec, W (lanes), zero(), load(p) (aligned), loadu(p), storeu(p, v), set1(x), fma(a, b, c) = a*b+c,
//   mul(a, b); and stream(p, v) (a non-temporal store to an aligned p) where kStreamC is used.
// The tile is MR rows by NV vectors (NR = NV * W columns): MR * NV accumulators, NV loads of B and MR
// broadcasts of A per k step.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace nnx {
namespace {

// Whether V has load_first / store_first (the first cnt < W lanes).
template <class V, class = void>
struct HasPartialStores : std::false_type {};
template <class V>
struct HasPartialStores<V, std::void_t<decltype((void)V::load_first(std::declval<const typename V::T*>(), int64_t{}))>>
    : std::true_type {};

// The value a tile writes for accumulator acc: alpha * acc where beta is 0 (C not read), else alpha * acc +
// beta * c_old as one product and one fused multiply-add. Every path of the epilogue below (full tiles, masked
// edges, the buffer) writes through these two, so an element's bits never depend on which path its tile took.
template <class V>
inline typename V::vec tile_value(typename V::vec va, typename V::vec acc) {
  return V::mul(va, acc);
}
template <class V>
inline typename V::vec tile_value(typename V::vec va, typename V::vec acc, typename V::vec vb, typename V::vec c_old) {
  return V::fma(va, acc, V::mul(vb, c_old));
}

// kStridedA: A is read in place, A(i, p) = a[i * rs_a + p * cs_a] (rows >= m are never read: they
// repeat row m - 1 and are dropped at the store); otherwise a is a packed sliver (rs_a, cs_a ignored).
// kStreamC: a full tile with beta == 0 goes to memory with non-temporal stores, past the caches (the
// ukernel_stream_c contract of ukernel.h: each row of the tile starts on a cache line); the same values.
// kStridedB (with kStridedA): B read in place too, row p of the sliver at b + p * ldb (any alignment).
// kRowB: the packed sliver's row length, NV * W except in the narrower tail tiles below.
template <class V, int MR, int NV, bool kStridedA, bool kStreamC = false, bool kStridedB = false,
          int kRowB = NV * V::W>
void ukernel_simd(int64_t k, const typename V::T* __restrict a, int64_t rs_a, int64_t cs_a,
                  const typename V::T* __restrict b, typename V::T* c, int64_t rs_c, int64_t cs_c,
                  int64_t m, int64_t n, typename V::T alpha, typename V::T beta, int64_t ldb = NV * V::W) {
  using T = typename V::T;
  using vec = typename V::vec;
  constexpr int W = V::W;
  constexpr int NR = NV * W;
  // A tile whose columns fit in fewer vectors (C's last sliver, n <= (NV - 1) W) multiplies only those: the
  // zero-padded columns' multiply-adds were up to half of a sliver's (N = 196 = 6 x 32 + 4 on the 8 x 32 tile:
  // 28 of 224 columns computed for nothing; im2col convolutions on 14x14 maps ran 1.04-1.06x faster without
  // them on Zen 4). Each element it writes gets the same multiply-adds in the same order, so the same bits.
  // (Such a tile is never full, so it never streams C.)
  if constexpr (NV > 1) {
    if (n <= (NV - 1) * W) {
      ukernel_simd<V, MR, NV - 1, kStridedA, false, kStridedB, kRowB>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha,
                                                                      beta, ldb);
      return;
    }
  }
  vec acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

  // C's tile is needed only after the k loop; touching it now overlaps its cache misses with the
  // arithmetic (BLIS's kernels do the same). Not with B in place: those products are small (B at most
  // kInPlaceBMaxBytes), their C in cache, and the 16 requests cost more than they hid (32 products of 64 x 64 by
  // 64 x 128, Xeon, 1 thread: 1.04-1.06x without them).
  if (cs_c == 1 && !(kStreamC && beta == T(0)) && !kStridedB) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      __builtin_prefetch(c + i * rs_c, 1, 3);
      __builtin_prefetch(c + i * rs_c + NR - 1, 1, 3);
    }
  }
  if (kStridedA) {
    const T* ar[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) ar[i] = a + (i < m ? i : m - 1) * rs_a;
    auto step = [&](int64_t off) __attribute__((always_inline)) {
      vec bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = kStridedB ? V::loadu(b + j * W) : V::load(b + j * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        vec av = V::set1(ar[i][off]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
      }
      b += kStridedB ? ldb : kRowB;
    };
    int64_t p = 0;
    // A one-vector tile (the narrow tables' 16 x 16 and 16 x 8, a wider tile's last columns) does one multiply-add
    // per element of A it reads, so it runs at the speed A streams in: its MR rows, each a stream of its own. Rows
    // contiguous along k are read a cache line at a time, unrolled so that each load instruction steps one line
    // (the hardware's per-instruction stride prefetch then fetches the next), and each row's line kAheadLines on
    // is asked for, past the row's end the same line of the row MR below (the next tile: gemm_block's ir loop).
    // Measured on the Xeon against the plain loop (1 thread, alternated calls, medians, M x N x K): float 4096 x
    // 16 x 256 1.39-1.47x (2 threads 1.34-1.39x), 1024 x 16 x 256 1.03-1.11x, 4096 x 16 x 64 1.11-1.15x; double
    // 4096 x 8 x 256 1.15-1.21x. Wider tiles do NV multiply-adds per element and gained nothing where A sat in the
    // L2 (0.96-0.98x with the prefetches), 1.05x on 2048 x 64 x 512, so they keep the plain loop. The same
    // multiply-adds in the same order, so the same bits.
    if (NV == 1 && cs_a == 1) {
      constexpr int kLine = 64 / sizeof(T);
      constexpr int64_t kAheadLines = 4;
      const uintptr_t next_tile = static_cast<uintptr_t>(MR * rs_a * static_cast<int64_t>(sizeof(T)));
      for (; p + kLine <= k; p += kLine) {
        const int64_t q = p + kAheadLines * kLine;
        // An address past A (the last tile's next rows) is only ever prefetched, which never faults.
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i)
          __builtin_prefetch(reinterpret_cast<const void*>(
              q < k ? reinterpret_cast<uintptr_t>(ar[i] + q)
                    : reinterpret_cast<uintptr_t>(ar[i]) + next_tile + static_cast<uintptr_t>((q - k) * sizeof(T))));
#pragma GCC unroll 16
        for (int u = 0; u < kLine; ++u) step(p + u);
      }
    }
#pragma GCC unroll 4
    for (; p < k; ++p) step(p * cs_a);
  } else {
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; ++p) {
      vec bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        vec av = V::set1(a[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
      }
      a += MR;
      b += kRowB;
    }
  }

  const vec va = V::set1(alpha);
  if (m == MR && n == NR && cs_c == 1) {
    if (beta == T(0) && alpha == T(1)) {  // 1 * x is x: the product as summed (a tile's 16 multiplies spared)
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          if constexpr (kStreamC) V::stream(c + i * rs_c + j * W, acc[i][j]);
          else V::storeu(c + i * rs_c + j * W, acc[i][j]);
        }
    } else if (beta == T(0)) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          if constexpr (kStreamC) V::stream(c + i * rs_c + j * W, tile_value<V>(va, acc[i][j]));
          else V::storeu(c + i * rs_c + j * W, tile_value<V>(va, acc[i][j]));
        }
    } else {
      const vec vb = V::set1(beta);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          T* ci = c + i * rs_c + j * W;
          V::storeu(ci, tile_value<V>(va, acc[i][j], vb, V::loadu(ci)));
        }
    }
    return;
  }
  // An edge tile of a row-major C, on traits with partial loads and stores (V::load_first / store_first: the
  // x86 ones): its rows and columns straight from the registers, with the full tile's arithmetic. Through the
  // buffer below, the copy of a row's n < NR columns compiled to `rep movsq`, a string copy that costs tens of
  // cycles to start: nearly half the time of a 6-column edge tile (8 products of 100 x 50 by 50 x 70, Xeon).
  if constexpr (HasPartialStores<V>::value) {
    if (cs_c == 1) {
      const vec vb = V::set1(beta);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        if (i >= m) break;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) {
          T* ci = c + i * rs_c + j * W;
          const int64_t cnt = n - j * W;
          if (cnt >= W) {
            V::storeu(ci, beta == T(0) ? tile_value<V>(va, acc[i][j]) : tile_value<V>(va, acc[i][j], vb, V::loadu(ci)));
          } else if (cnt > 0) {
            V::store_first(ci, beta == T(0) ? tile_value<V>(va, acc[i][j])
                                            : tile_value<V>(va, acc[i][j], vb, V::load_first(ci, cnt)), cnt);
          }
        }
      }
      return;
    }
  }
  // Edge tile or strided C: go through a buffer, with the same arithmetic as the full-tile path so an
  // element's value never depends on whether its tile is full. (The contract's m <= MR, n <= NR, told to the
  // compiler: without it, GCC's range analysis of the narrower tiles' copies warns of writes past the buffer.)
  if (m > MR || n > NR) __builtin_unreachable();
  alignas(64) T tile[MR * NR];
  if (beta == T(0)) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) V::storeu(tile + i * NR + j * W, tile_value<V>(va, acc[i][j]));
  } else {
    for (int i = 0; i < MR * NR; ++i) tile[i] = T(0);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) tile[i * NR + j] = c[i * rs_c + j * cs_c];
    const vec vb = V::set1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        T* ti = tile + i * NR + j * W;
        V::storeu(ti, tile_value<V>(va, acc[i][j], vb, V::loadu(ti)));
      }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * rs_c + j * cs_c] = tile[i * NR + j];
}

}  // namespace
}  // namespace nnx
