// Per-ISA micro-kernels of the loss family: single-threaded sums over one chunk of elements, always
// accumulated in double (so float32 losses over millions of elements keep float32 accuracy). The portable twins
// are in loss_ukernels_portable.cpp, the AVX2 versions in loss_ukernels_avx2.cpp, and an AVX-512 BCE sum with the
// AVX2 one's bits and an AVX-512 plain sum in loss_ukernels_avx512.cpp (AVX-512 CPUs run the AVX2 MSE sum); loss.cpp picks the active
// ISA's table per call and splits the chunks across threads.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace nnx {

template <class T>
struct LossUkernels {
  const char* name;
  // sum_i (p_i - t_i)^2
  double (*mse_sum)(const T* p, const T* t, int64_t n);
  // sum_i max(z_i, 0) - z_i t_i + log1p(exp(-|z_i|))
  double (*bce_with_logits_sum)(const T* z, const T* t, int64_t n);
  // sum_i x_i (Tensor.sum and mean of all elements: nnx.ops.sum, sum_elements in loss.h)
  double (*sum)(const T* x, int64_t n);
};

// One term of the BCE-with-logits sum, max(z, 0) - z t + log1p(exp(-|z|)) (the exponential of a non-positive
// number only; log1p keeps the tail accurate when exp(-|z|) is tiny): the portable sum, and the vector sums' tails.
// In an anonymous namespace, as gemm/pack.h's copies: each ISA's file compiles its own (the AVX2 one may contract
// z t into a fused multiply-add), and none is linked into another's path, where it could run on a CPU without it.
namespace {
template <class T>
inline double bce_term_scalar(T z, T t) {
  return static_cast<double>(std::max(z, T(0)) - z * t + std::log1p(std::exp(-std::fabs(z))));
}

// The plain sum of doubles on the vector traits V of activation/vec_<isa>.h: four accumulators of V::W lanes (one
// would wait on its own additions), the rest one by one. The AVX2 and AVX-512 tables' float64 sum.
template <class V>
double sum_doubles(const double* x, int64_t n) {
  constexpr int W = V::W;
  auto a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = V::add(a0, V::load(x + i));
    a1 = V::add(a1, V::load(x + i + W));
    a2 = V::add(a2, V::load(x + i + 2 * W));
    a3 = V::add(a3, V::load(x + i + 3 * W));
  }
  for (; i + W <= n; i += W) a0 = V::add(a0, V::load(x + i));
  double s = V::hsum(V::add(V::add(a0, a1), V::add(a2, a3)));
  for (; i < n; ++i) s += x[i];
  return s;
}
}  // namespace

// Fills of the one dispatch idiom (common/isa_table.h), each in loss_ukernels_<isa>.cpp.
template <class T>
void loss_ukernels_fill_portable(LossUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void loss_ukernels_fill_avx2(LossUkernels<T>& table);
template <class T>
void loss_ukernels_fill_avx512(LossUkernels<T>& table);  // on top of the AVX2 table: the BCE sum
#endif

// The table of the active ISA (portable first, overridden by what the CPU has; looked up per call).
template <class T>
const LossUkernels<T>& loss_ukernels();

}  // namespace nnx
