// AVX-512 build of the convolution micro-kernels (simd/*.inc) for CPUs that issue a 512-bit operation as two
// 256-bit halves (Zen 4; cpu.h's wide_vector_fma is false): the AVX2 kernels with EVEX encodings and
// register blocks sized for 32 registers. The implicit GEMM runs 12 pixels (forward) or 12 taps (weight
// gradient) by 2 x 8 float channels, 24 accumulators, and for layers of 32, 64, .. channels (the wide tile)
// 6 pixels or taps by 4 x 8 channels: as many accumulators, half the broadcasts per multiply-add and 6 base
// pointers instead of 12 (GCC had kept two of the 12 in vector registers, moved back each tap). Against the
// narrow tile (one process, alternated calls): 64 -> 128 stride 2 on 32x32 (16 images) forward 1.06-1.16x, dx
// 1.04-1.12x, dw 0.99-1.08x at 1 thread and 1.15x / 1.11x / 1.08x at 2; ResNet-20's 16 -> 32 and 32 -> 64
// stride-2 layers 1.00-1.21x. The direct kernels keep 8 filters (forward, dx) and 4 (weight gradient) in
// registers, kvec's dx 12 channels of a pixel pair.
//
// Why 32-byte vectors: on Zen 4, which issues a 512-bit operation as two 256-bit halves, an implicit GEMM
// of one zmm of 16 channels by 12 pixels (broadcasts folded into the multiply-adds, outputs stored through
// a 16 x 16 in-register transposition) measured 0.89-1.10x of the AVX2 kernel, below 1 on 10 of 12
// passes of ResNet-20's and the BatchNorm net's layers (1 thread, best of 30 interleaved calls), and
// 2 x 8 by 12 measured 0.94-1.02x; the direct weight gradient's 4-filter blocks gained 1.06-1.29x (the
// 1- and 3-channel stems). Every sum keeps its AVX2 order (the blocking changes which outputs share a
// pass, not how one is summed), so this table gives the AVX2 table's bits.
#define NNX_CONV_NS conv_avx512
#define NNX_CONV_IG_NV 2
#define NNX_CONV_IG_MR 12
#define NNX_CONV_IG_MRT 6
#define NNX_CONV_IG_WIDE_NV 4
#define NNX_CONV_IG_WIDE_BLOCK_BYTES 128
#define NNX_CONV_IG_WIDE_MR 6
#define NNX_CONV_IG_WIDE_MRT 6
#define NNX_CONV_DIRECT_KB 8
#define NNX_CONV_DIRECT_DW_KB 4
#define NNX_CONV_KVEC_CB 12
#include "common/cpu.h"
#include "conv/simd/table.inc"

namespace nnx {

// CPUs with full-width 512-bit FMA pipes take conv_ukernels_zmm_avx512.cpp's table instead (cpu.h).
template <class T>
void conv_ukernels_fill_avx512(ConvUkernels<T>& table) {
  if (wide_vector_fma())
    conv_ukernels_fill_avx512_zmm(table);
  else
    conv_avx512::fill(table, "avx512");
}

template void conv_ukernels_fill_avx512<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_avx512<double>(ConvUkernels<double>&);

}  // namespace nnx
