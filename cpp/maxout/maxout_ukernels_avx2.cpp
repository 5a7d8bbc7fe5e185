// AVX2 maxout micro-kernels: the generic kernels (maxout_generic.h) on 8 x float / 4 x double, ragged
// tails through masked loads and stores.
#include <immintrin.h>

#include "activation/vec_avx2.h"
#include "maxout/maxout_generic.h"

namespace nnx {

template <class T>
void maxout_ukernels_fill_avx2(MaxoutUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = maxout_generic::make_table<V>(sizeof(T) == 4 ? "maxout_avx2_f32" : "maxout_avx2_f64");
}

template void maxout_ukernels_fill_avx2<float>(MaxoutUkernels<float>&);
template void maxout_ukernels_fill_avx2<double>(MaxoutUkernels<double>&);

}  // namespace nnx
