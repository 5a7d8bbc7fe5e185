// AVX2 + FMA activation micro-kernels: the generic kernels (act_generic.h) on 8 x float / 4 x double
// with the polynomial exp / expm1 / tanh of vecmath_avx2.h.
#include <immintrin.h>

#include <type_traits>

#include "act/act_generic.h"
#include "act/vec_avx2.h"

namespace nnx {

using avx2::VecF32Avx2;
using avx2::VecF64Avx2;

template <class T>
void act_ukernels_fill_avx2(ActUkernels<T>& table) {
  using V = typename std::conditional<std::is_same<T, float>::value, VecF32Avx2, VecF64Avx2>::type;
  table = act_generic::make_table<V>(sizeof(T) == 4 ? "act_avx2_f32" : "act_avx2_f64");
}

template void act_ukernels_fill_avx2<float>(ActUkernels<float>&);
template void act_ukernels_fill_avx2<double>(ActUkernels<double>&);

}  // namespace nnx
