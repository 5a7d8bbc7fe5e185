// Products of a few rows with B's columns contiguous along k (a linear layer's x W^T for a batch of 1 to
// kDotRowsMaxM rows): dot products of each row of a with n rows of W. Each sum runs in kGemvLanes partial sums
// (lane l takes k = l mod kGemvLanes, the last K mod kGemvLanes terms added to lanes 0.. in order) combined
// pairwise in a fixed order, so an output's value depends on K alone: not on which thread computes it, nor on
// the other rows and outputs computed beside it (a row alone has the bits it has in a batch of up to
// kDotRowsMaxM). The scalar form is the portable tables' entry and the model of the vector one, which runs a
// block of rows by a block of outputs at once: each vector of W loaded once for the block's rows, each of a
// once for its outputs, independent multiply-add chains in flight, each multiply-add rounded once (the last
// K mod kGemvLanes terms too, against zeros in the other lanes: a lane left at -0 becomes +0 there), and the
// lanes summed in registers in the portable form's order.
// One row with B's rows contiguous instead (a one-sample layer's dy W, or x W with W stored K x N) is the axpy
// form below: each output summed over k in order, a fused multiply-add a step in the vector form.
// Include only from gemm_ukernels_<isa>.cpp (internal linkage, one copy per ISA).
#pragma once
#include <cmath>
#include <cstdint>

namespace nnx {
namespace {

constexpr int kGemvLanes = 16;
constexpr int64_t kDotPrefetch = 256;  // elements of W ahead of the multiply-adds (dot_rows_block)

template <class T>
inline T reduce_gemv_lanes(T (&acc)[kGemvLanes]) {
  for (int w = kGemvLanes / 2; w >= 1; w /= 2)  // pairwise, in a fixed order
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// out[i * ldo + j] = sum over k < K of a[i * lda + k] * b[j * ldb + k], for i < m, j < n.
template <class T>
void dot_rows_portable(int64_t m, int64_t n, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* out,
                       int64_t ldo) {
  const int64_t kv = K / kGemvLanes * kGemvLanes;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const T* ai = a + i * lda;
      const T* bj = b + j * ldb;
      T acc[kGemvLanes] = {};
      for (int64_t k = 0; k < kv; k += kGemvLanes)
        for (int l = 0; l < kGemvLanes; ++l) acc[l] += ai[k + l] * bj[k + l];
      for (int64_t k = kv; k < K; ++k) acc[k - kv] += ai[k] * bj[k];
      out[i * ldo + j] = reduce_gemv_lanes(acc);
    }
}

// MI rows by J outputs at once on vector traits V (gemm/ukernel_simd.h), kGemvLanes / V::W vectors of lanes
// each.
template <class V, int MI, int J>
inline void dot_rows_block(int64_t K, const typename V::T* a, int64_t lda, const typename V::T* b, int64_t ldb,
                           typename V::T* out, int64_t ldo) {
  using T = typename V::T;
  constexpr int NV = kGemvLanes / V::W;
  static_assert(NV * V::W == kGemvLanes, "whole vectors of lanes");
  const int64_t kv = K / kGemvLanes * kGemvLanes;
  typename V::vec acc[MI][J][NV];
  for (int i = 0; i < MI; ++i)
    for (int j = 0; j < J; ++j)
      for (int v = 0; v < NV; ++v) acc[i][j][v] = V::zero();
  for (int64_t k = 0; k < kv; k += kGemvLanes) {
    // W's rows stream from the L2 or beyond, side by side: fetched kDotPrefetch elements ahead, which the
    // hardware's prefetchers did not do for four rows at once.
    for (int j = 0; j < J; ++j) __builtin_prefetch(b + j * ldb + k + kDotPrefetch);
    typename V::vec bv[J][NV];
    for (int j = 0; j < J; ++j)
      for (int v = 0; v < NV; ++v) bv[j][v] = V::loadu(b + j * ldb + k + v * V::W);
    for (int i = 0; i < MI; ++i)
      for (int v = 0; v < NV; ++v) {
        const typename V::vec av = V::loadu(a + i * lda + k + v * V::W);
        for (int j = 0; j < J; ++j) acc[i][j][v] = V::fma(av, bv[j][v], acc[i][j][v]);
      }
  }
  if (kv < K) {  // the last K mod kGemvLanes terms into lanes 0.., through zero-padded copies
    T at[MI][kGemvLanes] = {}, bt[J][kGemvLanes] = {};
    for (int64_t k = kv; k < K; ++k) {
      for (int i = 0; i < MI; ++i) at[i][k - kv] = a[i * lda + k];
      for (int j = 0; j < J; ++j) bt[j][k - kv] = b[j * ldb + k];
    }
    for (int i = 0; i < MI; ++i)
      for (int j = 0; j < J; ++j)
        for (int v = 0; v < NV; ++v)
          acc[i][j][v] = V::fma(V::loadu(at[i] + v * V::W), V::loadu(bt[j] + v * V::W), acc[i][j][v]);
  }
  // The pairwise sum of the lanes: lane l plus lane l + kGemvLanes / 2 and so on, first across the vectors, then
  // within one (V::sum_halves).
  for (int i = 0; i < MI; ++i)
    for (int j = 0; j < J; ++j) {
      typename V::vec* r = acc[i][j];
      for (int w = NV / 2; w >= 1; w /= 2)
        for (int v = 0; v < w; ++v) r[v] = V::add(r[v], r[v + w]);
      out[i * ldo + j] = V::sum_halves(r[0]);
    }
}

// Blocks of kDotBlock<V> rows by as many outputs (4 x 4 accumulators of one vector each on AVX-512 float, 2 x 2 of
// two on AVX2 float and AVX-512 double, one of four on AVX2 double), so a's and W's loads feed that many
// multiply-adds.
template <class V>
constexpr int kDotBlock = 4 / (kGemvLanes / V::W) > 0 ? 4 / (kGemvLanes / V::W) : 1;

// Every block of rows for J outputs: their J rows of W are read from memory once, then from the L1.
template <class V, int J>
inline void dot_rows_all_rows(int64_t m, int64_t K, const typename V::T* a, int64_t lda, const typename V::T* b,
                              int64_t ldb, typename V::T* out, int64_t ldo) {
  constexpr int MI = kDotBlock<V>;
  int64_t i = 0;
  for (; i + MI <= m; i += MI) dot_rows_block<V, MI, J>(K, a + i * lda, lda, b, ldb, out + i * ldo, ldo);
  switch (m - i) {  // the last rows in one block (kDotBlock is at most 4)
    case 3: dot_rows_block<V, 3, J>(K, a + i * lda, lda, b, ldb, out + i * ldo, ldo); break;
    case 2: dot_rows_block<V, 2, J>(K, a + i * lda, lda, b, ldb, out + i * ldo, ldo); break;
    case 1: dot_rows_block<V, 1, J>(K, a + i * lda, lda, b, ldb, out + i * ldo, ldo); break;
    default: break;
  }
}

template <class V>
void dot_rows_simd(int64_t m, int64_t n, int64_t K, const typename V::T* a, int64_t lda, const typename V::T* b,
                   int64_t ldb, typename V::T* out, int64_t ldo) {
  constexpr int J = kDotBlock<V>;
  int64_t j = 0;
  for (; j + J <= n; j += J) dot_rows_all_rows<V, J>(m, K, a, lda, b + j * ldb, ldb, out + j, ldo);
  for (; j < n; ++j) dot_rows_all_rows<V, 1>(m, K, a, lda, b + j * ldb, ldb, out + j, ldo);
}

// out[j] = sum over k < K, in order, of a[k * cs_a] * b[k * rs_b + j], for j < n.
template <class T>
void axpy_row_portable(int64_t n, int64_t K, const T* a, int64_t cs_a, const T* b, int64_t rs_b, T* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T ak = a[k * cs_a];
    const T* bk = b + k * rs_b;
    for (int64_t j = 0; j < n; ++j) out[j] += ak * bk[j];
  }
}

// NB vectors of outputs held in registers over all of k (NB independent multiply-add chains); the first cnt
// lanes of the last vector only where cnt < V::W (V::load_first / store_first: the x86 traits).
template <class V, int NB>
inline void axpy_row_block(int64_t K, const typename V::T* a, int64_t cs_a, const typename V::T* b, int64_t rs_b,
                           typename V::T* out, int64_t cnt = V::W) {
  typename V::vec acc[NB];
  for (int v = 0; v < NB; ++v) acc[v] = V::zero();
  for (int64_t k = 0; k < K; ++k) {
    const typename V::vec ak = V::set1(a[k * cs_a]);
    const typename V::T* bk = b + k * rs_b;
    for (int v = 0; v < NB; ++v)
      acc[v] = V::fma(ak, cnt < V::W ? V::load_first(bk + v * V::W, cnt) : V::loadu(bk + v * V::W), acc[v]);
  }
  for (int v = 0; v < NB; ++v) {
    if (cnt < V::W) V::store_first(out + v * V::W, acc[v], cnt);
    else V::storeu(out + v * V::W, acc[v]);
  }
}

// axpy_row_portable's sums on vector traits V, 8 vectors of columns at a time. Compiled in the baseline driver,
// the loop kept its outputs in memory and ran SSE2 multiplies and adds: 1 x 512 by 512 x 512 took 22 us at 1
// thread where PyTorch took 8 (Xeon).
template <class V>
void axpy_row_simd(int64_t n, int64_t K, const typename V::T* a, int64_t cs_a, const typename V::T* b, int64_t rs_b,
                   typename V::T* out) {
  constexpr int NB = 8, W = V::W;
  int64_t j = 0;
  for (; j + NB * W <= n; j += NB * W) axpy_row_block<V, NB>(K, a, cs_a, b + j, rs_b, out + j);
  for (; j + W <= n; j += W) axpy_row_block<V, 1>(K, a, cs_a, b + j, rs_b, out + j);
  if (j < n) axpy_row_block<V, 1>(K, a, cs_a, b + j, rs_b, out + j, n - j);
}

}  // namespace
}  // namespace nnx
