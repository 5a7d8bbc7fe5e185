// The convolution family's table lookup (the one dispatch idiom, common/isa_table.h) and the facts its
// kernels and drivers share; portable code, built for the baseline ISA.
#include "conv/conv_ukernels.h"

#include "common/isa_table.h"

namespace nnx {

int64_t conv_igemm_channels(const ConvGeom& g, int64_t kblock) {
  return (g.Kg() + kblock - 1) / kblock * kblock;
}

template <class T>
const ConvUkernels<T>& conv_ukernels() {
  static const IsaTable<ConvUkernels<T>> table(
      IsaFills<ConvUkernels<T>>{conv_ukernels_fill_portable<T>, NNX_X86_FILL(conv_ukernels_fill_avx2<T>),
                                NNX_X86_FILL(conv_ukernels_fill_avx512<T>)});
  return table.active();
}
template const ConvUkernels<float>& conv_ukernels<float>();
template const ConvUkernels<double>& conv_ukernels<double>();

}  // namespace nnx
