// AVX2/FMA build of the convolution micro-kernels (simd/*.inc): the 32-byte vectors are ymm registers and
// a*b+c becomes an FMA.
#define NNX_CONV_NS conv_avx2
// F(4x4, 5x5) against the implicit GEMM on this table (1 thread, the full-width Xeon with NNX_ISA=avx2, forward
// + dx + dw, fastest of 5 alternated calls, ms): it lost with 8 channels (8 -> 16 on 16x16 4.20 against 2.99,
// on 28x28 14.3 against 9.7) and 16 -> 16 (on 14x14 5.34 against 4.21, on 16x16 even), and won from 16 -> 32
// (on 28x28 30.1 against 33.6, on 8x8 1.39 against 2.81), 24 -> 24 (on 14x14 8.7 against 11.3) and 32 -> 64
// (on 7x7 4.4 against 8.9).
#define NNX_CONV_WINO45_MIN_CHANNELS 16
#define NNX_CONV_WINO45_MIN_CHANNEL_SUM 48
// The flat depthwise forward against the lane kernels at stride 2 on this table (1 thread, batch 64, 3x3, the Xeon
// with NNX_ISA=avx2, ms): 1.95 against 1.40 (64 channels, 32x32), 1.11 against 0.68 (128, 16x16); at stride 1 it
// won 2.5x on 32x32 and ran even on 16x16 and 8x8, 0.92x on 56x56.
#define NNX_CONV_DW_FLAT_STRIDED_MAX_WIDTH 0
#include "conv/simd/table.inc"

namespace nnx {

template <class T>
void conv_ukernels_fill_avx2(ConvUkernels<T>& table) {
  conv_avx2::fill(table, "avx2");
}

template void conv_ukernels_fill_avx2<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_avx2<double>(ConvUkernels<double>&);

}  // namespace nnx
