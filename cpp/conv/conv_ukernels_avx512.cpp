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
// The dx model's rates (conv.cpp's conv_dx_path), fitted to 1-thread timings of the direct, implicit and kvec dx of
// 240 layers on Zen 4 (3-64 channels by 16-64 filters, 8x8 to 32x32, 3x3 and 5x5, stride 1, 1-64 images of about
// 0.3 GFLOP) and checked on 240 others (4-96 channels by 10-96 filters, 7x7 to 24x24, 3x3 to 7x7): the tiles'
// nominal rates with kvec's Xeon-fitted rate and bounds picked a path 5% or more slower than the best for 106 and 94
// of them (geometric mean 1.18x and 1.17x the best time, worst 1.75x and 2.29x: the direct dx, modelled as fast a
// lane as the implicit GEMM's, ran 1.5-2.2x its time from 16 channels up), these for 35 and 7 (1.025x and 1.004x;
// worst 1.64x and 1.22x). kvec ran here at the model's nominal rate (kvec_dx_rate 1.3 undoes the 1 / 1.3 fitted on
// the Xeon) and won up to 32x32 (dz up to 256 KB: 64 filters on 32x32), where the Xeon's bounds had kept it to
// 20x20. bench/conv_path_sweep.py's grids, before / after: dx 1.19x / 1.02x the
// best time (85 / 21 of 180 layers 5% or more slower, worst 2.70x / 1.49x), dx-heldout 1.19x / 1.015x (49 / 13 of
// 96, worst 2.00x / 1.27x).
#define NNX_CONV_IG_DX_RATE 1.3
#define NNX_CONV_IG_WIDE_DX_RATE 1.4
#define NNX_CONV_KVEC_DX_RATE 1.3
// The direct dx at 1.15x the model's rate since it keeps its accumulators in registers (simd/direct.inc's
// fwd_rows_outlined; 1.35-1.65x faster from 8 channels up), and weighed against the implicit GEMM where that
// applies (it had been taken unconditionally): bench/conv_path_sweep.py's grids before / after, the
// pick's time over the best's, dx 1.028x / 1.006x (34 / 7 of 180 layers 5% or more slower, worst 1.48x / 1.18x;
// with the rate at 1.3, 1.028x, 35), dx-heldout 1.018x (13 of 96, worst 1.27x) after.
#define NNX_CONV_DIRECT_DX_RATE 1.15
#define NNX_CONV_DIRECT_DX_AGAINST_IMPLICIT true
#define NNX_CONV_KVEC_MAX_DZ_PIXELS 1024
#define NNX_CONV_KVEC_MAX_DZ_ELEMS 65536
// The implicit GEMM up to 4096 taps, as on the full-width table: against im2col (1 thread, forward / dx / dw, ms,
// with the dx model above) 64 -> 64 7x7 on 32x32 (3136 taps, 16 images) 58.0 / 57.4 / 61.3 against 87.8 / 93.5 /
// 91.3, 128 -> 128 4x4 on 16x16 17.2 / 19.0 / 20.5 against 23.0 / 23.9 / 27.0, 256 -> 256 3x3 dilated 2 on 16x16
// 42.1 / 43.1 / 49.7 against 47.9 / 48.9 / 49.9, 128 -> 128 3x3 stride 2 on 32x32 11.9 / 13.2 / 12.5 against
// 16.4 / 15.6 / 16.2; the forward was ahead or even on every layer tried from 1152 to 3136 taps (stride 2 on 8x8
// to 16x16 outputs: 0.95-1.0 of im2col's time). Their strided dx in phases needs 100 output pixels past 1024 taps
// (col2im's time over the phases' on 64: 128 -> 256 0.95 / 0.87 at 1 / 2 threads, 256 -> 256 0.99 / 0.89, 256
// -> 512 0.91 / 0.82, 160 -> 160 0.85 / 0.72; on 100 and more 1.07-1.15); below 1024 taps 16 (on 16 to 49: 64 ->
// 128 1.03 / 1.42, 32 -> 64 1.18 / 1.19, 96 -> 96 1.10 / 1.14; on 64, 32 -> 64 1.16 / 1.16, 64 -> 128 even, 24
// -> 48 0.95 / 0.91).
#define NNX_CONV_IG_MAX_TAPS 4096
// The flat depthwise forward at stride 2 on rows of up to 48 (simd/depthwise_flat.inc; its phases are built row by
// row): against the lane kernels (3x3, bias and ReLU, one process alternating the builds, medians, 1 / 2 threads)
// 1.45x / 1.09x on 64 channels of 32x32 (batch 64), 1.19x / 1.05x on 48 of 48x48, 1.35x / 1.14x on 64 of 40x40
// (batch 32), but 0.84x / 0.92x on 96 of 56x56, 0.93x / 0.88x on 144 of 56x56, 0.81-0.84x / 0.88-0.89x on 32
// and 64 of 112x112 (batch 16).
#define NNX_CONV_DW_FLAT_STRIDED_MAX_WIDTH 48
// ... and its forward on rows of at least 15: below, the lane kernels (3x3 at stride 2, bias and ReLU, batch 64,
// one process alternating the builds, medians, 1 / 2 threads, ms) 0.37 / 0.20 against 0.74 / 0.38 on 256 channels
// of 8x8, 0.44 / 0.20 against 0.99 / 0.50 on 512 of 4x4, 0.22 / 0.12 against 0.47 / 0.24 on 160 of 7x7, 0.32 /
// 0.17 against 0.46 / 0.31 on 128 of 10x10, 0.57 / 0.29 against 0.71 / 0.36 on 128 of 14x14; on 15x15 and 16x16
// even or the flat planes ahead (0.64-0.65 against 0.66-0.73 at 1 thread), from 22x22 ahead (1.02 against 1.21-1.26,
// 64x64x32x32 1.03 against 1.64-1.75). Their dx by phases stays on the flat planes, ahead on these small rows too
// (0.72 against 0.83-0.86 on 8x8, 0.99 against 1.07 on 4x4, 1 thread).
#define NNX_CONV_DW_FLAT_STRIDED_FWD_MIN_WIDTH 15
#define NNX_CONV_DX_PHASES_MIN_PIXELS 16
#define NNX_CONV_DX_PHASES_MIN_PIXELS_MANY_TAPS 100
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
