// AVX2 + FMA normalization micro-kernels: the generic kernels (norm_generic.h) on 8 x float / 4 x double.
#include <immintrin.h>

#include <type_traits>

#include "norm/norm_generic.h"

namespace nnx {
namespace {

struct VecF32Avx2 {
  using T = float;
  using R = __m256;
  using M = __m256;
  static constexpr int W = 8;
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static __m256i lanes_below(int64_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_partial(const T* p, int64_t cnt, T pad) {
    const __m256i m = lanes_below(cnt);
    return _mm256_blendv_ps(_mm256_set1_ps(pad), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm256_maskstore_ps(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm256_set1_ps(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static M gt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static R select(M m, R a, R b) { return _mm256_blendv_ps(b, a, m); }
  static T hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

struct VecF64Avx2 {
  using T = double;
  using R = __m256d;
  using M = __m256d;
  static constexpr int W = 4;
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static __m256i lanes_below(int64_t cnt) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static R load_partial(const T* p, int64_t cnt, T pad) {
    const __m256i m = lanes_below(cnt);
    return _mm256_blendv_pd(_mm256_set1_pd(pad), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm256_maskstore_pd(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm256_set1_pd(v); }
  static R zero() { return _mm256_setzero_pd(); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static M gt(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static R select(M m, R a, R b) { return _mm256_blendv_pd(b, a, m); }
  static T hsum(R a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

}  // namespace

template <class T>
void norm_ukernels_fill_avx2(NormUkernels<T>& table) {
  using V = typename std::conditional<std::is_same<T, float>::value, VecF32Avx2, VecF64Avx2>::type;
  table = norm_generic::make_table<V>(sizeof(T) == 4 ? "norm_avx2_f32" : "norm_avx2_f64");
}

template void norm_ukernels_fill_avx2<float>(NormUkernels<float>&);
template void norm_ukernels_fill_avx2<double>(NormUkernels<double>&);

}  // namespace nnx
