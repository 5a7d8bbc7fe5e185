// Portable twin of the activation micro-kernels: the generic kernels on a one-lane "vector" with the
// C library's exp / expm1 / tanh, built for the baseline ISA.
#include "act/act_generic.h"
#include "act/vec_scalar.h"

namespace nnx {

using portable::ScalarVec;

template <class T>
void act_ukernels_fill_portable(ActUkernels<T>& table) {
  table = act_generic::make_table<ScalarVec<T>>(sizeof(T) == 4 ? "act_portable_f32" : "act_portable_f64");
}

template void act_ukernels_fill_portable<float>(ActUkernels<float>&);
template void act_ukernels_fill_portable<double>(ActUkernels<double>&);

}  // namespace nnx
