// Portable twin of the recurrent step kernels: rnn_generic.h on a one-lane scalar with std:: math.
#include "act/vec_scalar.h"
#include "rnn/rnn_generic.h"

namespace nnx {

template <class T>
void rnn_ukernels_fill_portable(RnnUkernels<T>& table) {
  table = rnn_generic::make_table<portable::ScalarVec<T>>(sizeof(T) == 4 ? "rnn_portable_f32" : "rnn_portable_f64");
}

template void rnn_ukernels_fill_portable<float>(RnnUkernels<float>&);
template void rnn_ukernels_fill_portable<double>(RnnUkernels<double>&);

}  // namespace nnx
