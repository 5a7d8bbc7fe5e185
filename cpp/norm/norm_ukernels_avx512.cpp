// AVX-512 normalization micro-kernels: the generic kernels (norm_generic.h) on 16 x float / 8 x double, except
// the plane-wise batch-norm passes and the layer-norm backward rows, which keep the AVX2 entries.
//
// Measured on the full-width AVX-512 Xeon (1 thread, fastest of 3 x 30 alternated calls, this table against
// the AVX2 one): with every entry at 16 lanes the layer-norm forward gained 1.11-1.14x on 8192 x 512 and
// 1.07x on 2048 x 1024 (the row moments: with AVX2 moments and AVX-512 ln_apply it gained nothing), but the
// batch-norm element-wise passes over 14 x 14 planes lost (forward 0.93-0.94x, backward 0.96-0.99x on
// 64 x 32 x 14 x 14; their 196-element runs end in a masked vector either way) and the layer-norm backward
// on 2048 x 1024 rows lost (0.90x in three runs). With those entries kept at AVX2: batch norm 0.98-1.06x on
// every shape tried, the layer-norm forward 1.05-1.13x on the large rows.
#include <immintrin.h>

#include "activation/vec_avx512.h"
#include "norm/norm_generic.h"

namespace nnx {

template <class T>
void norm_ukernels_fill_avx512(NormUkernels<T>& table) {
  using V = avx512::VecOf<T>;
  table = norm_generic::make_table<V>(sizeof(T) == 4 ? "norm_avx512_f32" : "norm_avx512_f64");
  NormUkernels<T> avx2;
  norm_ukernels_fill_avx2<T>(avx2);
  table.affine = avx2.affine;
  table.grad_sums = avx2.grad_sums;
  table.grad_apply = avx2.grad_apply;
  table.ln_grad_sums = avx2.ln_grad_sums;
  table.ln_grad_apply = avx2.ln_grad_apply;
}

template void norm_ukernels_fill_avx512<float>(NormUkernels<float>&);
template void norm_ukernels_fill_avx512<double>(NormUkernels<double>&);

}  // namespace nnx
