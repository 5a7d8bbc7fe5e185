// AVX2 + FMA step kernels of the recurrent family: rnn_generic.h on 8 x float / 4 x double.
#include "activation/vec_avx2.h"
#include "rnn/rnn_generic.h"

namespace nnx {

template <class T>
void rnn_ukernels_fill_avx2(RnnUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = rnn_generic::make_table<V>(sizeof(T) == 4 ? "rnn_avx2_f32" : "rnn_avx2_f64");
}

template void rnn_ukernels_fill_avx2<float>(RnnUkernels<float>&);
template void rnn_ukernels_fill_avx2<double>(RnnUkernels<double>&);

}  // namespace nnx
