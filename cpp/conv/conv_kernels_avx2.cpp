// AVX2/FMA build of the direct/depthwise kernels (same source as the portable twin, conv_simd.inc).
#define NNX_CONV_NS avx2
#include "conv/conv_simd.inc"

namespace nnx {

void conv_fill_avx2(ConvDirectKernels<float>& f, ConvDirectKernels<double>& d) {
  avx2::fill(f, "avx2");
  avx2::fill(d, "avx2");
}

}  // namespace nnx
