// AVX-512 build of the convolution micro-kernels (simd/*.inc). The 32 registers hold larger register
// blocks: the implicit GEMM runs one zmm of 16 float (8 double) channels by 12 pixels (or 12 taps in its
// weight gradient), with 4-pixel tiles for the rest of a row of tiles, and its broadcasts become memory
// operands of the multiply-adds; the direct kernels keep 12 filters (forward, dx) and 4 (weight gradient)
// in registers. The other kernels are the AVX2 ones compiled with EVEX encodings. Every sum keeps the
// order it has in the AVX2 build (the blocking changes which outputs share a pass, not how one is summed),
// so this table gives the AVX2 table's bits, and conv.cpp may pick either per shape.
#define NNX_CONV_NS conv_avx512
#define NNX_CONV_IG_NV 1
#define NNX_CONV_IG_MR 12
#define NNX_CONV_IG_MRT 4
#define NNX_CONV_DIRECT_KB 12
#define NNX_CONV_DIRECT_DW_KB 4
#include "conv/simd/table.inc"

namespace nnx {

template <class T>
void conv_ukernels_fill_avx512(ConvUkernels<T>& table) {
  conv_avx512::fill(table, "avx512");
}

template void conv_ukernels_fill_avx512<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_avx512<double>(ConvUkernels<double>&);

}  // namespace nnx
