// One-row products with B's columns contiguous along k (a batch-1 linear layer's x W^T): dot products of one
// row a with n rows of W. Each sum runs in kGemvLanes partial sums (lane l takes k = l mod kGemvLanes, the
// last K mod kGemvLanes terms added to lanes 0.. in order) combined pairwise in a fixed order, so an output's
// value depends on K alone: not on which thread computes it nor on how many outputs are computed beside it.
// The scalar form is the portable tables' entry and the model of the vector one, which runs several outputs at
// once (their loads of a shared, independent multiply-add chains in flight) and multiply-adds in one rounding.
// Include only from gemm_ukernels_<isa>.cpp (internal linkage, one copy per ISA).
#pragma once
#include <cmath>
#include <cstdint>

namespace nnx {
namespace {

constexpr int kGemvLanes = 16;

template <class T>
inline T reduce_gemv_lanes(T (&acc)[kGemvLanes]) {
  for (int w = kGemvLanes / 2; w >= 1; w /= 2)  // pairwise, in a fixed order
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// out[j] = sum over k < K of a[k] * b[j * ldb + k], for j < n.
template <class T>
void dot_rows_portable(int64_t n, int64_t K, const T* a, const T* b, int64_t ldb, T* out) {
  const int64_t kv = K / kGemvLanes * kGemvLanes;
  for (int64_t j = 0; j < n; ++j) {
    const T* bj = b + j * ldb;
    T acc[kGemvLanes] = {};
    for (int64_t k = 0; k < kv; k += kGemvLanes)
      for (int l = 0; l < kGemvLanes; ++l) acc[l] += a[k + l] * bj[k + l];
    for (int64_t k = kv; k < K; ++k) acc[k - kv] += a[k] * bj[k];
    out[j] = reduce_gemv_lanes(acc);
  }
}

// J outputs at once on vector traits V (gemm/ukernel_simd.h), kGemvLanes / V::W vectors of lanes each.
template <class V, int J>
inline void dot_rows_group(int64_t K, const typename V::T* a, const typename V::T* b, int64_t ldb,
                           typename V::T* out) {
  using T = typename V::T;
  constexpr int NV = kGemvLanes / V::W;
  static_assert(NV * V::W == kGemvLanes, "whole vectors of lanes");
  const int64_t kv = K / kGemvLanes * kGemvLanes;
  typename V::vec acc[J][NV];
  for (int j = 0; j < J; ++j)
    for (int v = 0; v < NV; ++v) acc[j][v] = V::zero();
  for (int64_t k = 0; k < kv; k += kGemvLanes) {
    typename V::vec av[NV];
    for (int v = 0; v < NV; ++v) av[v] = V::loadu(a + k + v * V::W);
    for (int j = 0; j < J; ++j)
      for (int v = 0; v < NV; ++v) acc[j][v] = V::fma(av[v], V::loadu(b + j * ldb + k + v * V::W), acc[j][v]);
  }
  for (int j = 0; j < J; ++j) {
    T lanes[kGemvLanes];
    for (int v = 0; v < NV; ++v) V::storeu(lanes + v * V::W, acc[j][v]);
    const T* bj = b + j * ldb;
    for (int64_t k = kv; k < K; ++k) lanes[k - kv] = std::fma(a[k], bj[k], lanes[k - kv]);
    out[j] = reduce_gemv_lanes(lanes);
  }
}

template <class V>
void dot_rows_simd(int64_t n, int64_t K, const typename V::T* a, const typename V::T* b, int64_t ldb,
                   typename V::T* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) dot_rows_group<V, 4>(K, a, b + j * ldb, ldb, out + j);
  for (; j < n; ++j) dot_rows_group<V, 1>(K, a, b + j * ldb, ldb, out + j);
}

}  // namespace
}  // namespace nnx
