// Portable twin of the normalization micro-kernels: the generic kernels on a one-lane "vector", built for
// the baseline ISA.
#include "activation/vec_scalar.h"
#include "norm/norm_generic.h"

namespace nnx {

using portable::ScalarVec;

template <class T>
void norm_ukernels_fill_portable(NormUkernels<T>& table) {
  table = norm_generic::make_table<ScalarVec<T>>(sizeof(T) == 4 ? "norm_portable_f32" : "norm_portable_f64");
}

template void norm_ukernels_fill_portable<float>(NormUkernels<float>&);
template void norm_ukernels_fill_portable<double>(NormUkernels<double>&);

}  // namespace nnx
