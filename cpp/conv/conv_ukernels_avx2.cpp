// AVX2/FMA build of the convolution micro-kernels (simd/*.inc): the 32-byte vectors are ymm registers and
// a*b+c becomes an FMA.
#define NNX_CONV_NS conv_avx2
#include "conv/simd/table.inc"

namespace nnx {

template <class T>
void conv_ukernels_fill_avx2(ConvUkernels<T>& table) {
  conv_avx2::fill(table, "avx2");
}

template void conv_ukernels_fill_avx2<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_avx2<double>(ConvUkernels<double>&);

}  // namespace nnx
