// AVX-512 build of the convolution micro-kernels (simd/*.inc) for CPUs with two full-width 512-bit FMA pipes
// (cpu.h's wide_vector_fma), where a 512-bit multiply-add does twice the work of a 256-bit one in the same
// time. The implicit GEMM runs whole 64-byte vectors: 12 pixels (forward) or taps (weight gradient) by one
// vector of 16 float channels for groups of at most 16 channels, by two vectors (32 channels, 24
// accumulators) for wider ones, so each broadcast input feeds two multiply-adds. Measured against the
// 32-byte table on such a CPU (Xeon, 1 thread, fastest of 3 x 15 alternated calls): ResNet-20's 16->32 stride-2
// layer forward 1.47x and weight gradient 1.47x, its 32->64 stride-2 layer 1.55x and 1.46x, LeNet-5's conv2
// (16 channels, one vector) 1.43x and 1.30x. Gathers (AVX2's, on 32-byte vectors) cost less here than on Zen
// 4, so the Winograd transforms gather their tiles across rows up to rows of 3/4 of the lanes
// (NNX_CONV_WINO_SPAN_MAX_FILL, simd/winograd.inc). The other kernels are the 32-byte ones of
// conv_ukernels_avx512.cpp.
// Each output's sum keeps its tap order, so the bits are those of the other tables.
#define NNX_CONV_NS conv_avx512_zmm
#define NNX_CONV_IG_NV 1
#define NNX_CONV_IG_MR 12
#define NNX_CONV_IG_MRT 6
#define NNX_CONV_IG_WIDE_NV 2
#define NNX_CONV_IG_WIDE_BLOCK_BYTES 128
#define NNX_CONV_IG_WIDE_RATE 2
// The dx model's rates (conv.cpp's conv_dx_path), fitted to 1-thread timings of the direct, implicit and kvec
// dx of 180 layers (3-64 channels by 16-64 filters, 8x8 to 32x32, 3x3 and 5x5, stride 1; this Xeon): against
// the direct kernel the narrow tile ran 1.27x and the wide one 0.78x the modelled rates on images of up to 16x16,
// and both 0.6-0.7 of that on 28x28 and 32x32 (where the direct dx runs wide tiles or whole rows). With the
// tiles' nominal rates the model picked a path 5% or more slower for 38 of the 180, up to 1.75x.
#define NNX_CONV_IG_DX_RATE 1.27
#define NNX_CONV_IG_WIDE_DX_RATE 1.56
#define NNX_CONV_IG_DX_LARGE_IMAGE_RATE 0.6
// kvec's dz bound: 64 KB of float32, as measured with this Xeon's 48 KB of L1 (conv.cpp's conv_dx_path).
#define NNX_CONV_KVEC_MAX_DZ_ELEMS 16384
#define NNX_CONV_DIRECT_KB 8
// The direct forward (and dx) in 32-column tiles of two 64-byte vectors where the padded row holds them:
// LeNet-5's conv1 forward 1.18x, ResNet-20's 3 -> 16 stem 1.26x (1 thread); same bits. Up to 6 filters
// (LeNet-5's conv1) two output rows at a time: 0.177 -> 0.144 ms. The weight gradient stays 32-byte: two
// taps a 64-byte multiply-add (same bits) measured 0.86x / 1.06x, the joins of the halves sharing the port of
// the second FMA unit; 16 columns a multiply-add (other bits) took 0.84-0.90x the time in 4-filter blocks
// (ResNet-20's stem, the BatchNorm net's conv1) but 1.01-1.13x in LeNet-5's 3-filter blocks.
#define NNX_CONV_DIRECT_WIDE 2
#define NNX_CONV_DIRECT_ROWS 2
#define NNX_CONV_DIRECT_DW_KB 4
#define NNX_CONV_DIRECT_DW_ROWS 2
#define NNX_CONV_KVEC_CB 12
// kvec's dx with 16 float (8 double) filters a multiply-add: LeNet-5's conv2 0.34 ms against 0.44 ms (1.29x)
// with the 32-byte vectors (1 thread), other bits (simd/kvec_dx.inc).
#define NNX_CONV_KVEC_WIDE 2
#define NNX_CONV_KVEC_WIDE_RATE 1.29
#define NNX_CONV_WINO_SPAN_MAX_FILL 75
// 5x5 32 -> 64 on 7x7 (4 tiles a row, its rows gathered): Winograd 1.28 / 1.73 / 1.25x the implicit GEMM
// (forward / dx / dw, 1 thread), where Zen 4's measurements put the threshold at 5.
#define NNX_CONV_WINO5_MIN_TILES_Q 4
#define NNX_CONV_WINO_PAIR_ROWS 1
#include "conv/simd/table.inc"

namespace nnx {

template <class T>
void conv_ukernels_fill_avx512_zmm(ConvUkernels<T>& table) {
  conv_avx512_zmm::fill(table, "avx512");
}

template void conv_ukernels_fill_avx512_zmm<float>(ConvUkernels<float>&);
template void conv_ukernels_fill_avx512_zmm<double>(ConvUkernels<double>&);

}  // namespace nnx
