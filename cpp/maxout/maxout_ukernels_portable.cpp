// Portable maxout micro-kernels: the generic kernels (maxout_generic.h) on one scalar lane, the twin the
// AVX2 kernels are tested against.
#include "activation/vec_scalar.h"
#include "maxout/maxout_generic.h"

namespace nnx {

template <class T>
void maxout_ukernels_fill_portable(MaxoutUkernels<T>& table) {
  table = maxout_generic::make_table<portable::ScalarVec<T>>(sizeof(T) == 4 ? "maxout_portable_f32"
                                                                             : "maxout_portable_f64");
}

template void maxout_ukernels_fill_portable<float>(MaxoutUkernels<float>&);
template void maxout_ukernels_fill_portable<double>(MaxoutUkernels<double>&);

}  // namespace nnx
