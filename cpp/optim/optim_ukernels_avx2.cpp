// The optimizer block loops compiled with -mavx2 -mfma (8 floats / 4 doubles per vector).
#define NNX_OPTIM_NS optim_avx2
#include "optim/optim_blocks.h"
#include "optim/optim_ukernels.h"

namespace nnx {

template <class T>
void optim_ukernels_fill_avx2(OptimUkernels<T>& table) {
  table = {&optim_avx2::sgd_block<T>, &optim_avx2::adam_block<T>, &optim_avx2::rmsprop_block<T>,
           &optim_avx2::adagrad_block<T>, &optim_avx2::adadelta_block<T>};
}
template void optim_ukernels_fill_avx2<float>(OptimUkernels<float>&);
template void optim_ukernels_fill_avx2<double>(OptimUkernels<double>&);

}  // namespace nnx
