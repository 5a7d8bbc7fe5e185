// AVX-512 activation micro-kernels, float only: the element-wise forward and backward kernels of
// activation_generic.h on 16-lane zmm registers (vec_avx512.h), half the instructions per element of the
// AVX2 ones, which on Zen 4 (512-bit operations issued as two 256-bit halves) is what sigmoid and tanh were
// short of. Every element sees the arithmetic of an AVX2 lane. The softmax kernels and float64 keep the
// AVX2 entries (the table below them), so row sums keep their lane order.
#include <immintrin.h>

#include <type_traits>

#include "activation/activation_generic.h"
#include "activation/vec_avx512.h"

namespace nnx {

template <class T>
void activation_ukernels_fill_avx512(ActivationUkernels<T>& table) {
  if constexpr (std::is_same<T, float>::value) {
    using V = avx512::VecF32Avx512;
    table.name = "act_avx512_f32";
    table.forward = &act_generic::forward<V>;
    table.backward = &act_generic::backward<V>;
    table.backward_from_output = &act_generic::backward_from_output<V>;
  }
}

template void activation_ukernels_fill_avx512<float>(ActivationUkernels<float>&);
template void activation_ukernels_fill_avx512<double>(ActivationUkernels<double>&);

}  // namespace nnx
