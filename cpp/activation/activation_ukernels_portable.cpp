// Portable twin of the activation micro-kernels: the generic kernels on a one-lane "vector" with the
// C library's exp / expm1 / tanh, built for the baseline ISA.
#include "activation/activation_generic.h"
#include "activation/vec_scalar.h"

namespace nnx {

using portable::ScalarVec;

template <class T>
void activation_ukernels_fill_portable(ActivationUkernels<T>& table) {
  table = act_generic::make_table<ScalarVec<T>>(sizeof(T) == 4 ? "act_portable_f32" : "act_portable_f64");
}

template void activation_ukernels_fill_portable<float>(ActivationUkernels<float>&);
template void activation_ukernels_fill_portable<double>(ActivationUkernels<double>&);

}  // namespace nnx
