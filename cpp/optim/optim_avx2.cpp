// The optimizer block loops compiled with -mavx2 -mfma (8 floats / 4 doubles per vector).
#define NNX_OPTIM_NS optim_avx2
#include "optim/optim_blocks.h"
#include "optim/optim_isa.h"

namespace nnx {

template <class T>
OptimBlocks<T> optim_blocks_avx2() {
  return {&optim_avx2::sgd_block<T>, &optim_avx2::adam_block<T>, &optim_avx2::rmsprop_block<T>,
          &optim_avx2::adagrad_block<T>, &optim_avx2::adadelta_block<T>};
}
template OptimBlocks<float> optim_blocks_avx2<float>();
template OptimBlocks<double> optim_blocks_avx2<double>();

}  // namespace nnx
