// Portable build of the convolution micro-kernels: the kernels of simd/*.inc on 32-byte GCC/Clang vectors
// that the compiler lowers to pairs of SSE2 operations (same lanes, so same sums, as the AVX2 build).
#define NNX_CONV_NS conv_portable
#include "conv/simd/table.inc"

namespace nnx {

template <class T>
void conv_ukernels_fill_portable(ConvUkernels<T>& table) {
  conv_portable::fill(table, "portable");
}

template void conv_ukernels_fill_portable<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_portable<double>(ConvUkernels<double>&);

}  // namespace nnx
