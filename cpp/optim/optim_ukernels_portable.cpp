// The optimizer block loops for the baseline ISA (the portable twins of optim_ukernels_avx2.cpp).
#define NNX_OPTIM_NS optim_portable
#include "optim/optim_blocks.h"
#include "optim/optim_ukernels.h"

namespace nnx {

template <class T>
void optim_ukernels_fill_portable(OptimUkernels<T>& table) {
  table = {&optim_portable::sgd_block<T>, &optim_portable::adam_block<T>, &optim_portable::rmsprop_block<T>,
           &optim_portable::adagrad_block<T>, &optim_portable::adadelta_block<T>};
}
template void optim_ukernels_fill_portable<float>(OptimUkernels<float>&);
template void optim_ukernels_fill_portable<double>(OptimUkernels<double>&);

}  // namespace nnx
