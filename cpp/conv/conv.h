// 2-D convolution (cross-correlation, PyTorch's conv2d) forward and backward, NCHW, on raw pointers.
//
// Contract shared by every entry point:
// - x (N, C, H, W), w (K, C/groups, R, S), y / dy (N, K, P, Q), b (K) are C-contiguous; dx, dw, db too.
//   P = (H + 2 ph - dh (R - 1) - 1) / sh + 1, Q likewise; the caller has checked P, Q >= 1, that groups
//   divides C and K, and that all sizes are >= 1 except N, which may be 0.
// - Forward writes y = act(conv(x, w) + b) (b may be null), the bias and activation applied while each
//   output tile is in cache (Epilogue with bias_per_row: one bias per output channel).
// - Backward takes dy and, when act != none, the forward output y (the activation's derivative is taken
//   from it); any of dx, dw, db may be null to skip that gradient. y == nullptr with act == none.
// - Kernels never allocate: scratch comes from nnx::workspace slots kWsConvCol / kWsConvAux (per thread)
//   and kWsConvAux2 / kWsMisc / kWsConvPack (the calling thread; packed or flipped filters, tap offsets).
// - Results are bitwise identical for any nthreads: forward tiles and dx images are each computed by one
//   thread in a fixed order; dw and db are reduced over the batch in chunks whose boundaries depend only
//   on the shape, each chunk into its own buffer, the chunks then added in index order.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "common/epilogue.h"

namespace nnx {

struct ConvGeom {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // filters
  int64_t P, Q;        // output
  int64_t sh, sw, ph, pw, dh, dw, groups;
  int64_t Cg() const { return C / groups; }
  int64_t Kg() const { return K / groups; }
  int64_t PQ() const { return P * Q; }
  int64_t CgRS() const { return C / groups * R * S; }
};

// The algorithms one can force by name; `automatic` picks per shape (conv_pick_algorithm).
//   gemm1x1:   1x1 kernel, stride 1, no padding: per image Y(K, HW) = W(K, C) X(C, HW), no copy of x.
//   im2col:    any conv: columns of a tile of output pixels (CgRS x tile) in a reused workspace, then
//              the GEMM of gemm.h; tiles span several whole images when images are small.
//   direct:    few input channels: SIMD over output pixels of a row, all filter taps in registers;
//              for stride 1 its dx is a direct convolution too (flipped filters over the padded dz).
//   depthwise: C/groups == 1 (each output channel reads one input channel): the forward on flat planes where
//              it applies (simd/depthwise_flat.inc: vectors of outputs across rows, a masked load a tap; conv.cpp's
//              dwise_flat_forward; strided, on rows from the table's dwise_flat_strided_fwd_min_width), and with
//              one filter per channel its dx too (at stride 1 the flat forward over
//              dz, at stride 2 on the AVX-512 tables, where the strided forward runs flat, four phases of it);
//              otherwise, and for the weight gradient, with one filter per channel SIMD across a block of
//              channels (each vector one pixel's channels); with more, per-plane SIMD kernels (also the forward
//              and dx at stride 1 on output rows of 32, 48, .. columns).
//   implicit:  implicit GEMM, SIMD over output channels: (pixels x channels) = (pixels x taps) (taps x
//              channels), the first operand read from x through offsets instead of im2col columns; for
//              at least 16 filters and up to 1024 taps (4096 on the AVX-512 tables: the table's igemm_max_taps
//              or its tile's rate), the layers Winograd does not take (conv_pick_algorithm). Its dx: see
//              ConvDxPath; its dw past 1 MiB of partial sums is im2col's GEMM.
//   winograd:  3x3 or 5x5, stride 1, no dilation, one group: Winograd F(4x4) or F(2x2) tiles (by shape,
//              conv_winograd_tile; winograd.h), 36 (3x3) or 64 (5x5) multiply-adds per 4x4 outputs, channel
//              and filter instead of 144 or 400, or 16 or 36 per 2x2 instead of 36 or 100; its dx is the same
//              algorithm over dz, its dw the sum over tiles of the transformed dz and x (one GEMM per
//              transform point), transformed back.
// The convolution algorithms, the one list of them (names: conv_algo_name; exported to Python as
// nnx._C.CONV_ALGORITHMS, in this order).
enum class ConvAlgo : int {
  automatic = 0,
  gemm1x1 = 1,
  im2col = 2,
  direct = 3,
  depthwise = 4,
  implicit = 5,
  winograd = 6
};
constexpr ConvAlgo kConvAlgoLast = ConvAlgo::winograd;

const char* conv_algo_name(ConvAlgo a);
bool conv_algo_parse(const std::string& name, ConvAlgo* out);
// True when `a` can run this shape; otherwise `why` says what it needs.
bool conv_algo_applies(ConvAlgo a, const ConvGeom& g, std::string* why);
// The algorithm `automatic` runs for this shape (never `automatic`).
ConvAlgo conv_pick_algorithm(const ConvGeom& g);

// How conv2d_backward computes dx for a plan's algorithm (direct and implicit choose per shape among
// direct, implicit and kvec by a modelled cost; strided layers between implicit, in phases, and col2im).
//   col2im:    GEMM of the filters with dz into columns, scattered back (im2col, gemm1x1, strided);
//   direct:    stride 1: the direct kernel over dz zero-padded by the kernel's extent, flipped filters;
//   implicit:  stride 1: the implicit GEMM of that transposed convolution (SIMD along the channels);
//              strided (dilation 1): the same per phase, each residue class of dx's rows and columns being
//              a stride-1 correlation of dz with the filter taps of that class (conv.cpp's DxPhases);
//   kvec:      stride 1: per dx element, only the taps that land on dz, SIMD along the filters;
//   depthwise: the depthwise algorithm's own;
//   winograd:  3x3 or 5x5 stride 1 with padding at most R - 1 (a transposed padding of at least 0):
//              Winograd over dz.
enum class ConvDxPath : int { automatic = 0, col2im, direct, implicit, kvec, depthwise, winograd };
constexpr ConvDxPath kConvDxPathLast = ConvDxPath::winograd;
ConvDxPath conv_dx_path(const ConvGeom& g, ConvAlgo algo);
const char* conv_dx_path_name(ConvDxPath p);
// For tests and benchmarks: run this dx path wherever it applies (direct and implicit plans; automatic
// restores the choice). Not thread-safe against running convolutions.
void conv_force_dx_path(ConvDxPath p);

template <class T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, Act act, T slope,
                    ConvAlgo algo, int nthreads);

template <class T>
void conv2d_backward(const ConvGeom& g, const T* dy, const T* x, const T* w, const T* y, Act act, T slope,
                     T* dx, T* dw, T* db, ConvAlgo algo, int nthreads);

// conv2d_forward without y: each image's output (K, P, Q), act(conv(x_n, w) + b), is handed to
// image(n, y_n) on the thread that computed it, from a buffer of that thread's that the next image
// overwrites. For a consumer that reduces it at once (a pooling): the direct and implicit algorithms run
// image by image, so the output never leaves the cache; the others compute the whole batch into the
// calling thread's kWsMisc workspace first. image must not use kWsConvCol, kWsConvAux or kWsMisc. The
// same values as conv2d_forward, bit for bit.
template <class T>
void conv2d_forward_each_image(const ConvGeom& g, const T* x, const T* w, const T* b, Act act, T slope,
                               ConvAlgo algo, int nthreads, const std::function<void(int64_t, const T*)>& image);

}  // namespace nnx
