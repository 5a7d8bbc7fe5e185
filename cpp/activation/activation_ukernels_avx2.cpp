// AVX2 + FMA activation micro-kernels: the generic kernels (activation_generic.h) on 8 x float / 4 x double
// with the polynomial exp / expm1 / tanh of vecmath_avx2.h.
#include <immintrin.h>

#include "activation/activation_generic.h"
#include "activation/vec_avx2.h"

namespace nnx {

template <class T>
void activation_ukernels_fill_avx2(ActivationUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = act_generic::make_table<V>(sizeof(T) == 4 ? "act_avx2_f32" : "act_avx2_f64");
}

template void activation_ukernels_fill_avx2<float>(ActivationUkernels<float>&);
template void activation_ukernels_fill_avx2<double>(ActivationUkernels<double>&);

}  // namespace nnx
