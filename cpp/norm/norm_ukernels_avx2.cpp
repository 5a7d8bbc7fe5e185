// AVX2 + FMA normalization micro-kernels: the generic kernels (norm_generic.h) on 8 x float / 4 x double.
#include <immintrin.h>

#include "activation/vec_avx2.h"
#include "norm/norm_generic.h"

namespace nnx {

template <class T>
void norm_ukernels_fill_avx2(NormUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = norm_generic::make_table<V>(sizeof(T) == 4 ? "norm_avx2_f32" : "norm_avx2_f64");
}

template void norm_ukernels_fill_avx2<float>(NormUkernels<float>&);
template void norm_ukernels_fill_avx2<double>(NormUkernels<double>&);

}  // namespace nnx
