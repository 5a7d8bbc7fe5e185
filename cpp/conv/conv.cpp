// Convolution drivers: algorithm choice, im2col/col2im tiles around the GEMM of gemm.h, the batch
// reductions of the weight and bias gradients, and the calls into the direct/depthwise kernel tables.
#include "conv/conv.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "activation/activation.h"
#include "common/int_math.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "conv/conv_ukernels.h"
#include "conv/winograd.h"
#include "gemm/gemm.h"

namespace nnx {

// ---------------------------------------------------------------------------------------------------
// Algorithm names and choice

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::automatic: return "auto";
    case ConvAlgo::gemm1x1: return "gemm1x1";
    case ConvAlgo::im2col: return "im2col";
    case ConvAlgo::direct: return "direct";
    case ConvAlgo::depthwise: return "depthwise";
    case ConvAlgo::implicit: return "implicit";
    case ConvAlgo::winograd: return "winograd";
  }
  return "?";
}

bool conv_algo_parse(const std::string& name, ConvAlgo* out) {
  for (int c = 0; c <= static_cast<int>(kConvAlgoLast); ++c)
    if (name == conv_algo_name(static_cast<ConvAlgo>(c))) {
      *out = static_cast<ConvAlgo>(c);
      return true;
    }
  return false;
}

// Fraction of the lanes doing useful work when n items are processed in units of `unit`.
static double lane_fill(int64_t n, int64_t unit) { return double(n) / double((n + unit - 1) / unit * unit); }

// The implicit GEMM's useful multiply-add lanes per cycle over the direct kernels' (16-lane row tiles of
// 32-byte vectors) for this many output channels and pixels: the lanes of its tile's channel block and
// pixel rows that work, times the tile's rate (the float table's, so that the choice does not depend on
// the dtype).
static double implicit_rate(int64_t channels, int64_t pixels) {
  const auto& ig = conv_ukernels<float>().igemm_for_channels(channels);
  return lane_fill(channels, ig.kblock) * lane_fill(pixels, ig.mr) * ig.rate;
}

// implicit_rate for dx (the tile over dz into dx's channels and pixels), from the table's dx calibration
// (ConvUkernels::Igemm::dx_rate, igemm_dx_large_image_rate).
constexpr int64_t kIgemmDxSmallImagePixels = 400;
static double implicit_dx_rate(int64_t channels, int64_t pixels) {
  const auto& kern = conv_ukernels<float>();
  const auto& ig = kern.igemm_for_channels(channels);
  const double size = pixels > kIgemmDxSmallImagePixels ? kern.igemm_dx_large_image_rate : 1.0;
  return lane_fill(channels, ig.kblock) * lane_fill(pixels, ig.mr) * ig.dx_rate * size;
}

// The direct forward kernel's useful lanes per cycle along an output row of Q, over its 16-column tiles of 32-byte
// vectors: Q of round_up(Q, 16), and where the table has wider tiles (direct_wide: 32 columns of 64-byte vectors,
// twice the lanes a cycle), the whole ones of them count double. A row of 32 or 64 outputs runs at twice a
// 16-column row's rate there: measured (full-width AVX-512 Xeon, 1 thread, 64 images, forward + weight gradient)
// 3 -> 32 and 3 -> 64 3x3 on 32x32 1.31-1.35x faster direct than the implicit GEMM (forward alone 1.6-1.7x), 1 ->
// 32 and 1 -> 64 5x5 1.35-1.48x, 8 -> 64 3x3 on 64x64 1.09x; on 28x28 (wide tiles with 4 columns idle) the implicit
// GEMM stayed ahead or even, as the 16-column model says.
static double direct_row_rate(int64_t Q) {
  const int64_t wide = conv_ukernels<float>().direct_wide;
  const int64_t whole_wide = wide > 1 ? Q / (16 * wide) : 0;
  const int64_t rest = Q - whole_wide * 16 * wide;
  const double time = static_cast<double>(whole_wide * 16 + (rest + 15) / 16 * 16);
  return static_cast<double>(Q) / time;
}

static bool is_plain_1x1(const ConvGeom& g) {
  return g.R == 1 && g.S == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

bool conv_algo_applies(ConvAlgo a, const ConvGeom& g, std::string* why) {
  switch (a) {
    case ConvAlgo::gemm1x1:
      if (!is_plain_1x1(g)) {
        if (why) *why = "a 1x1 kernel with stride 1 and padding 0";
        return false;
      }
      return true;
    case ConvAlgo::depthwise:
      if (g.Cg() != 1) {
        if (why) *why = "one input channel per group (groups == C)";
        return false;
      }
      return true;
    case ConvAlgo::winograd: return conv_winograd_applies(g, why);
    default: return true;
  }
}

// Taps (C/groups x R x S) up to which the implicit GEMM beats im2col (see conv_pick_algorithm): 1024 for a
// tile at the 32-byte rate (measured on Zen 4 before its dx model was fitted), 4096 where it runs at twice that
// (full-width 512-bit pipes, measured on the Xeon), or the table's own bound (igemm_max_taps: Zen 4's, measured
// since, conv_ukernels_avx512.cpp). 4096 also bounds the taps of one phase of a strided dx (dx_phases_apply).
constexpr int64_t kImplicitMaxTaps = 1024, kImplicitMaxTapsWide = 4096;

static int64_t implicit_max_taps(const ConvGeom& g) {
  const auto& kern = conv_ukernels<float>();
  if (kern.igemm_max_taps > 0) return kern.igemm_max_taps;
  return kern.igemm_for(g).rate > 1 ? kImplicitMaxTapsWide : kImplicitMaxTaps;
}

// The implicit GEMM's weight gradient adds each image's products into dwT (taps x Kp per group): up to this
// many bytes of it; past them the GEMM's weight gradient (im2col's, with its large-dw chunks and tiles,
// kLargeFiltersBytes) instead. Measured (Xeon, 2 MiB of L2, float32, 3x3 stride 2, dw alone, the GEMM's time
// over the implicit GEMM's, 1 / 2 threads): dwT 0.28 MiB 1.15-1.30x / 1.13-1.40x, 0.63 MiB 1.15x / 1.22x,
// 1.12 MiB 0.90x on 28x28 maps and 0.56x on 8x8, 2.25 MiB 0.56x, 4.5 MiB (before the large-dw tiles) 0.50x.
constexpr int64_t kImplicitDwMaxBytes = int64_t{1} << 20;

// Layers whose filters (K x CgRS) pass kLargeFiltersBytes run their GEMMs (forward, dx, dw) on tiles at least
// kDeepTileCols columns deep, several small images a tile: a tile's GEMM reads (or, for dw, reads and writes)
// all the filters, which the 512 KiB of columns a tile is otherwise sized to (48 columns for 2304 taps) would
// not pay for. Measured on im2col (Xeon, 1 thread, 3x3 stride 2, 16 images, forward / dx, ms, before / after):
// 512 -> 512 on 8x8 13.1 / 12.5 and 24.5 / 16.2 (PyTorch's dx 18.2), 256 -> 512 on 14x14 19.2 / 15.1 and 27.9 /
// 21.5, 256 -> 256 on 16x16 11.0 / 11.1 and 17.4 / 14.8; the dw figures at kDwGemmPartialsBytes.
constexpr int64_t kLargeFiltersBytes = int64_t{1} << 20, kDeepTileCols = 256, kTileMinCols = 48;

inline bool large_filters(const ConvGeom& g, size_t elem) {
  return g.K * g.CgRS() * static_cast<int64_t>(elem) > kLargeFiltersBytes;
}

inline int64_t tile_min_cols(const ConvGeom& g, size_t elem) {
  return large_filters(g, elem) ? kDeepTileCols : kTileMinCols;
}

// Winograd transforms (and packs) all K x C filters on every call, alpha^2 points of them, whatever the batch;
// its savings grow with the tiles the call computes. It needs at least kWinoMinTiles output tiles in the batch
// (N x tiles per image), kWinoMinTilesLargeU where those transformed filters pass kWinoLargeUBytes (out of L2
// and then memory-bound). Measured (Xeon, 1 thread, forward / forward + dx + dw against the best of the
// implicit GEMM and im2col): at 16 tiles it lost 1.24-1.31x / up to 1.33x on 3x3 (32 -> 32 on 16x16 and 64 ->
// 64, 128 -> 128 on 16x16, one image; 64 -> 64 and 128 -> 128 on 8x8, four) and 1.22-1.35x on 5x5 (32 -> 64 on
// 14x14, one image; 16 -> 32, 64 -> 64 on 8x8, 32 -> 64 on 7x7, four), 2.2-3.8x on 4 tiles (batch-1 inference
// of 8x8 maps), and from 32 tiles it won every case (1.2-2.2x) but 512 -> 512 on 4x4 maps (16.8 MB of
// F(2x2, 3x3) filters): 2.1x slower at 32 tiles, even at 64. F(2x2, 3x3), which saves less than F(4x4, 3x3), also
// needs 64 tiles from kWinoLargeU2Bytes of transformed filters (128 -> 256 and wider, on 8x8 maps): against im2col
// at 32 tiles (2 images, 1 / 2 threads) forward 0.88-0.90x / 0.75-0.89x, and at 32 and 48 tiles forward + dx + dw
// 0.72-1.0x / 0.50-0.96x (256 -> 512 at 2 images worst), ahead from 64 (256 -> 256, 4 images, forward 1.29 /
// 1.44x); F(4x4, 3x3) won at 32 tiles with 2.4 MB (128 -> 128 on 16x16, 2 images, forward + dx + dw: 1.38x / 1.0x
// against the implicit GEMM).
constexpr int64_t kWinoMinTiles = 32, kWinoMinTilesLargeU = 64;
constexpr int64_t kWinoLargeUBytes = int64_t{8} << 20, kWinoLargeU2Bytes = int64_t{2} << 20;

static bool winograd_enough_tiles(const ConvGeom& g) {
  const int64_t u_bytes = int64_t{wino_points(g)} * g.K * g.C * static_cast<int64_t>(sizeof(float));
  const int64_t tiles = g.N * wino_tiles_p(g) * wino_tiles_q(g);
  const bool large = u_bytes > kWinoLargeUBytes ||
                     (g.R == 3 && conv_winograd_tile(g) == 2 && u_bytes >= kWinoLargeU2Bytes);
  return tiles >= (large ? kWinoMinTilesLargeU : kWinoMinTiles);
}

ConvAlgo conv_pick_algorithm(const ConvGeom& g) {
  if (g.Cg() == 1 && g.groups > 1) return ConvAlgo::depthwise;
  if (is_plain_1x1(g)) return ConvAlgo::gemm1x1;
  const bool winograd = conv_winograd_applies(g, nullptr) && winograd_enough_tiles(g);
  // 5x5 on F(4x4, 5x5) tiles (64 multiplies per 16 outputs, channel and filter, against 400 direct): from 8
  // channels each way and 4 outputs a row it beat the implicit GEMM and direct (1 thread, full-width AVX-512
  // Xeon, forward + dx + dw, 64 images, fastest of 5 alternated calls, ms): 8 -> 16 on 16x16 2.18 against
  // direct's 3.15, 8 -> 8 on 8x8 0.41 against 0.49 (implicit), 16 -> 32 on 8x8 1.14 against 2.06, 32 -> 64 on
  // 4x4 1.00 against 2.10, on 5x5 2.98 against 3.40, 16 -> 16 on 14x14 2.48 against 3.16. With fewer channels
  // it lost (6 -> 16 on 12x12 0.61 / 0.98 against 0.54 / 0.94 implicit, with and without padding; 3 -> 16 on
  // 32x32 4.60 against 4.01; 1 -> 32 on 28x28 5.84 against 1.74), and on 2-wide outputs (16 channels, 6x6
  // without padding, 0.36 against 0.18). The AVX2 table needs more channels (wino45_min_channels and
  // wino45_min_channel_sum, conv_ukernels_avx2.cpp).
  if (winograd && g.R == 5 && conv_winograd_tile(g) == 4 && g.Q >= 4) {
    const auto& kern = conv_ukernels<float>();
    if (std::min(g.C, g.K) >= kern.wino45_min_channels && g.C + g.K >= kern.wino45_min_channel_sum)
      return ConvAlgo::winograd;
  }
  // Few input channels: a GEMM with CRS as its inner dimension would be short and im2col would copy
  // each input value R*S times for little work; the direct kernel keeps every tap in registers.
  // (LeNet's conv2, 6 channels 5x5, measured faster direct than through im2col's short columns.)
  if (g.Cg() <= 8 && g.sh == 1 && g.sw == 1 && g.CgRS() <= 256) {
    // A modelled cost per output element, in vector multiply-adds: both kernels issue CgRS / 8 of them
    // when every lane works, divided by the fraction of lanes that do (direct runs its 16-lane tiles along
    // an output row, Q of round_up(Q, 16); implicit along the filters, a channel block at a time, MR output
    // pixels at a time, at its tile's rate: implicit_rate); implicit also stores each output through a
    // transposition, about one multiply-add's time. Ties go to direct. On Zen 4 LeNet's conv1 (6 filters,
    // 28-wide rows) and the 1 -> 32 5x5 stem of the BatchNorm network (25 taps: the stores weigh, measured
    // 2.15 ms direct against 2.94 ms implicit) are direct, LeNet's conv2 (16 filters, 10-wide rows, 150 taps)
    // implicit. With full-width 512-bit pipes (the wide tile's rate 2) that stem goes implicit (1 thread,
    // forward / weight gradient: 0.83 / 1.25 ms against direct's 1.10 / 1.31), as do 8 -> 32 and 4 -> 64 3x3
    // on 16x16 (0.55 / 0.64 against 0.71 / 1.01; 0.75 / 0.95 against 0.79 / 1.18), and ResNet's 3 -> 16 stem
    // stays direct (0.67 / 0.89 against 0.90 / 0.91). Rows of whole wide tiles: direct_row_rate.
    const double taps = static_cast<double>(g.CgRS()) / 8.0;
    const double direct_cost = taps / direct_row_rate(g.Q);
    const double implicit_cost = taps / implicit_rate(g.Kg(), g.PQ()) + 1.0;
    return implicit_cost < direct_cost ? ConvAlgo::implicit : ConvAlgo::direct;
  }
  // Winograd multiplies 36/144 (F(4x4, 3x3)), 16/36 (F(2x2, 3x3)) or 36/100 (F(2x2, 5x5)) as much, but its
  // transforms cost per tile and channel. 5x5 layers wider than F(4x4, 5x5)'s 128 channels (F(2x2, 5x5),
  // vectors along a row of 2x2 tiles; the thresholds measured when it was the only 5x5 variant): it won with
  // both channel counts at least 16, channels x TQ at least 128 and at least 5 tiles a row (1 thread, AVX-512
  // Zen 4, forward / dx against the implicit GEMM: the BatchNorm net's 32 -> 64 on 14x14 1.33 / 1.23x, 64 on
  // 14x14 1.46 / 1.48x) and lost below (32 -> 64 on 7x7 0.96 / 0.90x); the full-width AVX-512 table wins from
  // 4 tiles a row (wino5_min_tiles_q, conv_ukernels_zmm_avx512.cpp). 3x3 (forward + backward against the
  // implicit GEMM or im2col, whichever the rule below picks, 64 images): with at least 64 channels it won on
  // every map size tried (64 on 4x4 1.7x, 64 on 5x5 1.2x, 128 on 5x5 1.5x, 256 on 4x4 1.9x, 64 on 2x2 1.5x;
  // 512 channels on 4x4, 16 images, even), with 32 from 6x6 maps up (1.3x; on 5x5 0.89x), with 16 from 8x8
  // up (1.19x; on 6x6 0.80x, on 7x7 even; ResNet-20's 16-channel 32x32 layer 1.3x), and with fewer than 16
  // channels it lost (8 -> 16 on 16x16 0.80x).
  if (winograd) {
    const int64_t channels = std::min(g.C, g.K), tq = wino_tiles(g.Q, 2);
    if (g.R == 5 && conv_winograd_tile(g) == 2 && channels >= 16 && channels * tq >= 128 &&
        tq >= conv_ukernels<float>().wino5_min_tiles_q)
      return ConvAlgo::winograd;
    if (g.R == 3 && (channels >= 64 || (channels >= 32 && g.Q >= 6) || (channels >= 16 && g.Q >= 8)))
      return ConvAlgo::winograd;
  }
  // Up to implicit_max_taps: the implicit GEMM skips im2col's copies and the GEMM's packing of the columns.
  // Measured 1.2-1.4x faster than im2col for 64-channel 3x3 and the TensorFlow-tutorial 32->64 5x5 layer
  // (AVX-512 Zen 4, 1 thread, interleaved runs), where with more taps its dx and dw fell behind (128 and 256
  // channels, 3x3). With the wide tile of full-width 512-bit pipes, the strided dx in phases and the weight
  // gradient through the GEMM past kImplicitDwMaxBytes, it stays ahead up to 4096 taps (Xeon, 1 thread,
  // forward / dx / dw against im2col's, ms): 64 -> 64 7x7 on 32x32 (3136 taps) 22.3 / 23.2 / 25.7 against
  // 42.8 / 58.6 / 43.0; 128 -> 128 4x4 on 16x16 17.0 / 15.7 / 21.9 against 26.6 / 36.8 / 30.8; 256 -> 256 3x3
  // dilated 2 on 16x16 35.0 / 35.8 / 52.3 against 46.6 / 66.2 / 62.6; 128 -> 256 3x3 stride 2 on 28x28 (1152
  // taps, 32 images) 29.9 / 34.6 / 35.0 against 37.6 / 44.0 / 40.9; 256 -> 512 stride 2 on 14x14 (2304 taps,
  // 16 images) 16.5 / 27.1 / (the GEMM's) against 19.9 / 28.2 / 27.1; 512 -> 512 stride 2 on 8x8 (4608 taps)
  // even (14.2 / 25.9 against 13.9 / 25.9). Strided layers too (CPU time per call, 1 thread, forward / weight
  // gradient, ms: ResNet-20's 16->32 3x3 s2 2.17 / 2.65 against im2col's 3.58 / 3.91, 32->64 1.96 / 2.70
  // against 2.93 / 3.20, a 7x7 s2 stem 0.95 / 1.43 against 1.32 / 1.59), except 1x1 kernels, a plain
  // subsampling GEMM (ResNet's stride-2 projections: 1.45 ms against im2col's 1.32 for both passes), unless the
  // implicit GEMM's tile for these filters runs at twice the 32-byte rate (full-width 512-bit pipes: those
  // projections' forward and weight gradient 0.62 / 0.44 ms against im2col's 0.83 / 0.53, Xeon, 1 thread).
  // Where large filters (kLargeFiltersBytes) meet a batch of under 256 output pixels in all, im2col's deep tiles of
  // several images win the forward: the implicit GEMM packs all the filters per call for little work. (The dx and
  // dw of such layers go through the GEMM under either algorithm.) Measured (Zen 4, forward, im2col's time over
  // the implicit GEMM's, 1 / 2 threads): 4x4 outputs, 128 -> 256 up to 512 -> 512 stride 2, 0.69-0.98x /
  // 0.53-0.82x at 1 and 4 images; 256 -> 512 stride 2 on 8x8 outputs 0.95-0.97x / 0.85-0.90x at 1 and 2 images
  // (256 -> 256 stride 1 there 0.91-1.09x). The rule goes by pixels alone, so 7x7 and 6x6 outputs at 1 and 4
  // images stay with im2col, though the implicit GEMM measured 1.07-1.33x / 0.95-1.19x there. From 256 pixels
  // on, small outputs no longer favour im2col now that the implicit GEMM's pixel tiles are of nearly equal size
  // (no tail tile of repeated pixels): 7x7 outputs (128 -> 256, 256 -> 512) 1.10-1.28x at 16 and 64 images, 6x6
  // (192 -> 384) 1.13x / 1.23x, 4x4 1.03-1.10x / 1.04-1.10x. (With the tail tile, on the Xeon, 256 -> 512 on 7x7
  // outputs had measured 15.1 ms im2col against 16.4, and this rule had sent every output under 64 pixels to
  // im2col.)
  const bool strided_1x1 = g.sh * g.sw > 1 && g.R * g.S == 1;
  const bool small_output_large_filters = g.N * g.PQ() < 256 && large_filters(g, sizeof(float));
  if (g.Kg() >= 16 && g.CgRS() <= implicit_max_taps(g) && !small_output_large_filters &&
      (!strided_1x1 || conv_ukernels<float>().igemm_for_channels(g.Kg()).rate > 1))
    return ConvAlgo::implicit;
  return ConvAlgo::im2col;
}

namespace {

// ---------------------------------------------------------------------------------------------------
// Parallel loops

// One image, tile, filter or batch chunk is worth a thread of its own.
constexpr Grain kConvUnitGrain{1};

// Calls fn(unit, gemm_threads) for every unit. With enough units they are spread over the threads (each
// GEMM then runs single-threaded); otherwise they run in order on this thread and the GEMM gets the
// threads. Either way every unit is computed by exactly the same code, so results do not depend on it.
// for_each_unit_range hands each thread its units as one range, in order: fn(lo, hi, gthreads).
template <class F>
void for_each_unit_range(int64_t units, int nthreads, bool inner_parallel, F fn) {
  const bool outer = nthreads > 1 && units >= nthreads &&
                     (units % nthreads == 0 || units >= 3 * nthreads || !inner_parallel);
  if (!outer) {
    if (units > 0) fn(int64_t{0}, units, nthreads);
    return;
  }
  parallel_for(units, kConvUnitGrain, nthreads, [&](int64_t lo, int64_t hi) { fn(lo, hi, 1); });
}

template <class F>
void for_each_unit(int64_t units, int nthreads, bool inner_parallel, F fn) {
  for_each_unit_range(units, nthreads, inner_parallel, [&](int64_t lo, int64_t hi, int gthreads) {
    for (int64_t u = lo; u < hi; ++u) fn(u, gthreads);
  });
}

// ---------------------------------------------------------------------------------------------------
// im2col / col2im over a run of output pixels of one image

// im2col_run / col2im_run live in the per-ISA kernel table (simd/im2col.inc): their short copies are
// vectorised for the ISA (strided gathers included).
template <class T>
inline void im2col_run(const ConvGeom& g, const T* x, int64_t pq0, int64_t len, T* col, int64_t ldc) {
  conv_ukernels<T>().im2col(g, x, pq0, len, col, ldc);
}
template <class T>
inline void col2im_run(const ConvGeom& g, const T* col, int64_t ldc, int64_t pq0, int64_t len, T* dx) {
  conv_ukernels<T>().col2im(g, col, ldc, pq0, len, dx);
}

// ---------------------------------------------------------------------------------------------------
// Tiling of the output pixels (n, p, q) for the GEMM algorithms

// A tile is either a run of output pixels inside one image (big images) or nb whole images (small ones);
// its im2col columns (CgRS x cols) are sized to stay in the L2 cache. Depends on the shape only.
struct Tiling {
  int64_t nb = 1;   // whole images per tile (1: tiles within an image)
  int64_t tpi = 1;  // tiles per image when nb == 1
  int64_t cols = 0;
  int64_t tiles = 0;
};

struct Tile {
  int64_t n0, nimg;  // first image and number of images (nimg > 1: whole images)
  int64_t pq0, len;  // first output pixel (in image n0) and number of columns
};

Tiling make_tiling(const ConvGeom& g, size_t elem, bool whole_images_ok, int64_t n_images) {
  const int64_t target_bytes = 512 * 1024;
  int64_t cols = target_bytes / (g.CgRS() * static_cast<int64_t>(elem));
  cols = std::max<int64_t>(cols, tile_min_cols(g, elem));
  Tiling t;
  if (g.PQ() <= cols) {
    t.nb = whole_images_ok ? std::max<int64_t>(1, std::min(cols / g.PQ(), n_images)) : 1;
    // As many images in every tile as the tile count allows: 16 images at 5 a tile left a last tile of one
    // (256 -> 512 stride 2 on 14x14: 49 columns against all the filters, and 10 images on one thread of two
    // against 6 on the other); 4 tiles of 4 instead.
    if (t.nb > 1) t.nb = ceil_div(n_images, ceil_div(n_images, t.nb));
    t.tpi = 1;
    t.cols = t.nb * g.PQ();
  } else {
    t.nb = 1;
    t.tpi = (g.PQ() + cols - 1) / cols;
    int64_t c = (g.PQ() + t.tpi - 1) / t.tpi;
    t.cols = std::min(g.PQ(), (c + 7) / 8 * 8);
    t.tpi = (g.PQ() + t.cols - 1) / t.cols;
  }
  t.tiles = t.nb > 1 ? (n_images + t.nb - 1) / t.nb : n_images * t.tpi;
  return t;
}

// Tile `i` of a tiling over images [n_begin, n_begin + n_images).
Tile tile_at(const ConvGeom& g, const Tiling& t, int64_t n_begin, int64_t n_images, int64_t i) {
  Tile tl;
  if (t.nb > 1) {
    tl.n0 = n_begin + i * t.nb;
    tl.nimg = std::min(t.nb, n_begin + n_images - tl.n0);
    tl.pq0 = 0;
    tl.len = tl.nimg * g.PQ();
  } else {
    tl.n0 = n_begin + i / t.tpi;
    tl.nimg = 1;
    tl.pq0 = (i % t.tpi) * t.cols;
    tl.len = std::min(t.cols, g.PQ() - tl.pq0);
  }
  return tl;
}

// Columns of one tile for group gi into col (CgRS x tl.len).
template <class T>
void tile_im2col(const ConvGeom& g, const T* x, const Tile& tl, int64_t gi, T* col) {
  for (int64_t i = 0; i < tl.nimg; ++i) {
    const T* xi = x + ((tl.n0 + i) * g.C + gi * g.Cg()) * g.H * g.W;
    im2col_run(g, xi, tl.nimg > 1 ? 0 : tl.pq0, tl.nimg > 1 ? g.PQ() : tl.len, col + i * g.PQ(), tl.len);
  }
}

// The column matrix (CgRS x tl.len) of one tile for group gi, as the GEMM's B operand: for a plain 1x1
// convolution x itself (row stride H*W, no copy), otherwise the tile's im2col written into col.
template <class T>
const T* tile_columns(const ConvGeom& g, const T* x, const Tile& tl, int64_t gi, bool plain1x1, T* col,
                      int64_t* ldb) {
  if (plain1x1) {
    *ldb = g.H * g.W;
    return x + (tl.n0 * g.C + gi * g.Cg()) * g.H * g.W + tl.pq0;
  }
  tile_im2col(g, x, tl, gi, col);
  *ldb = tl.len;
  return col;
}

// dy rows of group gi for one tile as a (Kg x len) matrix: a pointer into dy when the tile is inside one
// image, else a gathered copy in buf.
template <class T>
const T* tile_dy(const ConvGeom& g, const T* dy, const Tile& tl, int64_t gi, T* buf, int64_t* ld) {
  const int64_t Kg = g.Kg(), PQ = g.PQ();
  if (tl.nimg == 1) {
    *ld = PQ;
    return dy + (tl.n0 * g.K + gi * Kg) * PQ + tl.pq0;
  }
  for (int64_t k = 0; k < Kg; ++k)
    for (int64_t i = 0; i < tl.nimg; ++i)
      std::memcpy(buf + k * tl.len + i * PQ, dy + ((tl.n0 + i) * g.K + gi * Kg + k) * PQ, sizeof(T) * PQ);
  *ld = tl.len;
  return buf;
}

// ---------------------------------------------------------------------------------------------------
// Forward

template <class T>
void forward_gemm(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, Act act, T slope, bool plain1x1,
                  int nthreads) {
  const int64_t Kg = g.Kg(), CgRS = g.CgRS(), PQ = g.PQ();
  Tiling t = make_tiling(g, sizeof(T), !plain1x1, g.N);
  if (plain1x1) t = Tiling{1, 1, PQ, g.N};  // x itself is the column matrix: one GEMM per image
  for_each_unit(t.tiles, nthreads, true, [&](int64_t i, int gthreads) {
    Tile tl = tile_at(g, t, 0, g.N, i);
    T* col = plain1x1 ? nullptr : workspace_as<T>(kWsConvCol, CgRS * tl.len);
    T* tmp = tl.nimg > 1 ? workspace_as<T>(kWsConvAux, g.K * tl.len) : nullptr;
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      int64_t ldb;
      const T* B = tile_columns(g, x, tl, gi, plain1x1, col, &ldb);
      T* C;
      int64_t ldc;
      if (tmp) {
        C = tmp + gi * Kg * tl.len;
        ldc = tl.len;
      } else {
        C = y + (tl.n0 * g.K + gi * Kg) * PQ + tl.pq0;
        ldc = PQ;
      }
      gemm<T>(Kg, tl.len, CgRS, T(1), w + gi * Kg * CgRS, CgRS, 1, B, ldb, 1, T(0), C, ldc, 1, gthreads);
      // Bias + activation on the tile just written, while it is still in cache. (Done here rather than
      // through gemm's Epilogue, whose generic per-element loop measured 15% of the 7x7 stem's forward.)
      if (b || act != Act::none)
        conv_ukernels<T>().bias_act_rows(C, Kg, tl.len, ldc, b ? b + gi * Kg : nullptr, act, slope);
    }
    if (tmp)
      for (int64_t k = 0; k < g.K; ++k)
        for (int64_t j = 0; j < tl.nimg; ++j)
          std::memcpy(y + ((tl.n0 + j) * g.K + k) * PQ, tmp + k * tl.len + j * PQ, sizeof(T) * PQ);
  });
}

// Where forward_direct and forward_implicit, which run image by image, put image n's output: into y, or
// (y null: conv2d_forward_each_image) into a buffer of the running thread's handed to `image` at once.
template <class T>
struct ImageOut {
  T* y;
  const std::function<void(int64_t, const T*)>* image;
  int64_t img;  // elements of one image's output, K P Q
  static ImageOut into(T* y, const ConvGeom& g) { return ImageOut{y, nullptr, g.K * g.PQ()}; }
  T* dst(int64_t n) const { return y ? y + n * img : workspace_as<T>(kWsConvAux, img); }
  void done(int64_t n, const T* yn) const {
    if (image) (*image)(n, yn);
  }
};

template <class T>
void forward_direct(const ConvGeom& g, const T* x, const T* w, const T* b, const ImageOut<T>& out, Act act, T slope,
                    int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t scratch = kern.direct_scratch(g);
  for_each_unit(g.N, nthreads, false, [&](int64_t n, int) {
    T* s = workspace_as<T>(kWsConvCol, scratch);
    T* yn = out.dst(n);
    kern.direct_fwd(g, x + n * g.C * g.H * g.W, w, b, yn, act, slope, s);
    out.done(n, yn);
  });
}

template <class T>
void forward_implicit(const ConvGeom& g, const T* x, const T* w, const T* b, const ImageOut<T>& out, Act act,
                      T slope, int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const auto& ig = kern.igemm_for(g);
  const int64_t scratch = ig.scratch(g);
  const int64_t kp = conv_igemm_channels(g, ig.kblock);
  T* wpack = workspace_as<T>(kWsConvPack, g.groups * kp * (g.CgRS() + 1) + kern.igemm_offsets_elems(g));
  T* bpack = wpack + g.groups * kp * g.CgRS();
  T* offs = bpack + g.groups * kp;
  ig.pack(g, w, b, wpack, bpack);
  kern.igemm_offsets(g, offs);
  // Fewer images than threads (batch-1 inference): each image's channel blocks are split between threads
  // instead, each running its blocks' tiles over the whole image (padding its own copy of it). Every output
  // is still its taps' sum in tap order, so the bits are those of one thread. One image, 2 threads against
  // one image a thread (Xeon, microseconds): 64 -> 128 3x3 on 16x16 255 -> 153, 3 -> 64 on 32x32 56 -> 33.
  const int64_t kb = ig.kblock, blocks = kp / kb;
  if (g.groups == 1 && g.N < nthreads && out.image == nullptr && blocks >= 2) {
    const int64_t parts = std::min<int64_t>(blocks, ceil_div(nthreads, g.N));
    const int64_t per = ceil_div(blocks, parts);
    parallel_for_each(g.N * parts, Grain{1}, nthreads, [&](int64_t u) {
      const int64_t n = u / parts, kb0 = (u % parts) * per, kb1 = std::min(blocks, kb0 + per);
      if (kb0 >= kb1) return;
      ConvGeom part = g;
      part.K = std::min(g.K, kb1 * kb) - kb0 * kb;
      T* s = workspace_as<T>(kWsConvCol, scratch);
      ig.fwd(part, x + n * g.C * g.H * g.W, wpack + kb0 * kb * g.CgRS(), bpack + kb0 * kb, offs,
             out.dst(n) + kb0 * kb * g.PQ(), act, slope, s);
    });
    return;
  }
  for_each_unit(g.N, nthreads, false, [&](int64_t n, int) {
    T* s = workspace_as<T>(kWsConvCol, scratch);
    T* yn = out.dst(n);
    ig.fwd(g, x + n * g.C * g.H * g.W, wpack, bpack, offs, yn, act, slope, s);
    out.done(n, yn);
  });
}

// Whether a depthwise pass runs the lane kernels (channels in the lanes; one filter per channel) rather than the
// per-plane ones (the forward asks only where the flat planes do not apply: dwise_flat_forward). The per-plane
// forward and dx are ahead only at stride 1 on output rows that fill their two-vector blocks, of 32 columns and
// more: measured (Zen 4, 1 thread, batch 32), the lanes' time over the per-plane kernels' was 1.0-1.35 on 32x32
// and 112x112 maps, 0.8-1.3 on 14x14 to 56x56, 0.35-0.6 on 8x8 and 7x7, 0.15-0.45 at stride 2; for the weight
// gradient 0.12-1.0 everywhere (no reduction across lanes per tap and image).
// Where the per-plane kernels run 64-byte vectors and the lane kernels 32-byte ones (the table for CPUs whose
// 512-bit multiply-adds run at twice the 256-bit rate: direct_wide 2), the per-plane forward is ahead from 10
// columns and its dx from 28: measured on the Xeon (3x3, batch 16-64, 1 and 2 threads, the lanes' time over the
// per-plane kernels'), forward 1.10 on 10x10, 1.36-1.44 on 12x12, 1.5-1.9 on 14x14 to 24x24, 2.1-2.5 on 28x28 and
// 56x56, but 0.80-0.96 on 8x8, 0.75 on 7x7, 0.36 on 4x4; dx 0.59-0.95 below 28 columns, 1.02-1.08 on 28x28,
// 1.24-1.36 on 56x56.
enum class DwPass { forward, data, weights };
constexpr int64_t kDwPlaneMinColsWideForward = 10, kDwPlaneMinColsWideData = 28;

bool depthwise_lanes(const ConvGeom& g, DwPass pass) {
  if (g.Kg() != 1) return false;
  if (pass == DwPass::weights || g.sh != 1 || g.sw != 1) return true;
  const int64_t cols = pass == DwPass::forward ? g.Q : g.W;
  if (conv_ukernels<float>().direct_wide > 1)
    return cols < (pass == DwPass::forward ? kDwPlaneMinColsWideForward : kDwPlaneMinColsWideData);
  return !(cols >= 32 && cols % 16 == 0);
}

// The depthwise lane kernels' per-image passes (forward, dx): w (and b) packed once by dwise_lanes_pack, then
// fn(n, c0, nc, pack_block, scratch) for every image n and block of nc <= lanes channels from c0, over the threads.
template <class T, class F>
void for_each_lane_block(const ConvGeom& g, const T* w, const T* b, bool flipped, int nthreads, F fn) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t L = kern.lanes, blocks = (g.C + L - 1) / L, scratch = kern.dwise_lanes_scratch(g);
  const int64_t packed = (g.R * g.S + 1) * L;
  T* pack = workspace_as<T>(kWsConvPack, blocks * packed);
  kern.dwise_lanes_pack(g, w, b, flipped, pack);
  for_each_unit(g.N * blocks, nthreads, false, [&](int64_t u, int) {
    const int64_t n = u / blocks, blk = u % blocks, c0 = blk * L;
    fn(n, c0, static_cast<int>(std::min(L, g.C - c0)), pack + blk * packed, workspace_as<T>(kWsConvCol, scratch));
  });
}

// Whether the depthwise forward runs on flat planes (simd/depthwise_flat.inc): where a lane that reads outside
// the plane it reads is padding (sw Q >= W), its plan of lane masks stays small, the table's masked loads are
// instructions, and, with a stride, where the table takes strides (1 or 2: other strides build their phases
// element by element). Against the per-plane and lane kernels (Xeon, full-width table, 3x3 with padding 1, bias
// and ReLU; one process alternating the two builds, medians, 1 thread, ms): batch 64, 32 channels on 32x32 1.35
// -> 0.98; 64 on 32x32 at stride 2 2.23 -> 1.32; 128 on 16x16 1.61 -> 0.99, at stride 2 1.04 -> 0.97; 256 on 8x8
// 1.56 -> 0.57; batch 32, 512 on 7x7 1.37 -> 0.61, 32 on 112x112 16.2 -> 10.8. On the 32-byte AVX-512 table
// (NNX_WIDE_FMA=0, separate processes) 1.05-2.9x; on Zen 4 that table's strided forward needs rows of at most 48
// (NNX_CONV_DW_FLAT_STRIDED_MAX_WIDTH, conv_ukernels_avx512.cpp).
bool dwise_flat_forward(const ConvGeom& g) {
  const ConvUkernels<float>& kern = conv_ukernels<float>();
  const bool strided = g.sh != 1 || g.sw != 1;
  const bool stride_taken = !strided || (g.W <= kern.dwise_flat_strided_max_width && g.sw <= 2);
  return g.Cg() == 1 && kern.flat_masked_loads && stride_taken && g.sw * g.Q >= g.W &&
         ceil_div(g.PQ(), kern.flat_lanes) * g.R * g.S <= (int64_t{1} << 20);
}

// The flat forward's plan (lane masks and tap offsets) depends on the plane's geometry only: each thread keeps
// the last kDwFlatKeptPlans it made (a network's depthwise layers, called in turn; at most 4 MiB each, by
// dwise_flat_forward's bound), so repeated calls on a layer make it once. (A first builder, lane by lane with a
// division each, took about half as long as the forward of one 32-channel 32x32 image.)
constexpr int kDwFlatKeptPlans = 8;

template <class T>
const T* dwise_flat_plan_for(const ConvUkernels<T>& kern, const ConvGeom& g, bool dx2 = false) {
  struct Kept {
    const ConvUkernels<T>* kern = nullptr;
    bool dx2 = false;
    ConvGeom g{};
    std::vector<T> plan;
  };
  thread_local Kept kept[kDwFlatKeptPlans];
  thread_local int next = 0;  // the one to replace: the oldest
  auto same = [&](const Kept& k) {
    const ConvGeom& a = k.g;
    return k.kern == &kern && k.dx2 == dx2 && a.H == g.H && a.W == g.W && a.P == g.P && a.Q == g.Q && a.R == g.R &&
           a.S == g.S && a.sh == g.sh && a.sw == g.sw && a.ph == g.ph && a.pw == g.pw && a.dh == g.dh &&
           a.dw == g.dw;
  };
  for (const Kept& k : kept)
    if (same(k)) return k.plan.data();
  Kept& k = kept[next];
  next = (next + 1) % kDwFlatKeptPlans;
  k.plan.assign(static_cast<size_t>(dx2 ? kern.dwise_flat_dx2_plan_elems(g) : kern.dwise_flat_plan_elems(g)), T(0));
  (dx2 ? kern.dwise_flat_dx2_plan : kern.dwise_flat_plan)(g, k.plan.data());
  k.kern = &kern;
  k.dx2 = dx2;
  k.g = g;
  return k.plan.data();
}

// Output planes per unit of the flat forward: units of about kDwFlatUnitOutputs outputs (an 8x8 plane alone is
// less work than a unit's dispatch).
constexpr int64_t kDwFlatUnitOutputs = 4096;

template <class T>
void forward_depthwise_flat(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, Act act, T slope,
                            int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const T* plan = dwise_flat_plan_for(kern, g);
  const int64_t cb = std::clamp<int64_t>(kDwFlatUnitOutputs / std::max<int64_t>(1, g.PQ() * g.Kg()), 1, g.C);
  const int64_t blocks = ceil_div(g.C, cb), scratch = kern.dwise_flat_scratch(g);
  for_each_unit(g.N * blocks, nthreads, false, [&](int64_t u, int) {
    const int64_t n = u / blocks, c0 = u % blocks * cb;
    kern.dwise_flat_fwd(g, plan, x + n * g.C * g.H * g.W, c0, std::min(cb, g.C - c0), w, b, y + n * g.K * g.PQ(),
                        act, slope, workspace_as<T>(kWsConvCol, scratch));
  });
}

template <class T>
void forward_depthwise(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, Act act, T slope,
                       int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  // (Narrow strided rows with one filter per channel: the lane kernels, conv_ukernels.h.)
  const bool strided = g.sh != 1 || g.sw != 1;
  if (dwise_flat_forward(g) && (!strided || g.Kg() != 1 || g.W >= kern.dwise_flat_strided_fwd_min_width))
    return forward_depthwise_flat(g, x, w, b, y, act, slope, nthreads);
  if (depthwise_lanes(g, DwPass::forward)) {
    for_each_lane_block(g, w, b, false, nthreads, [&](int64_t n, int64_t c0, int nc, const T* pack, T* s) {
      kern.dwise_lanes_fwd(g, x + (n * g.C + c0) * g.H * g.W, pack, nc, y + (n * g.K + c0) * g.PQ(), act, slope, s);
    });
    return;
  }
  const int64_t scratch = kern.dwise_scratch(g), m = g.Kg(), HW = g.H * g.W, RS = g.R * g.S;
  for_each_unit(g.N * g.C, nthreads, false, [&](int64_t u, int) {
    int64_t n = u / g.C, c = u % g.C;
    T* s = workspace_as<T>(kWsConvCol, scratch);
    kern.dwise_fwd(g, x + (n * g.C + c) * HW, w + c * m * RS, b ? b + c * m : nullptr,
                   y + (n * g.K + c * m) * g.PQ(), act, slope, s);
  });
}

// ---------------------------------------------------------------------------------------------------
// Backward

// dz = dy * act'(y) where an activation was fused; else dy itself. The act family's SIMD kernel does the
// multiply (a scalar loop with the activation switch inside measured 60% of LeNet conv1's backward).
template <class T>
const T* activation_grad(const ConvGeom& g, const T* dy, const T* y, Act act, T slope, int nthreads) {
  if (act == Act::none) return dy;
  const int64_t n = g.N * g.K * g.PQ();
  T* dz = workspace_as<T>(kWsMisc, n);
  act_backward_from_output<T>(act, dy, y, dz, n, slope, nthreads);
  return dz;
}

// Images per chunk of the batch reduction: a function of N only, so the partial sums (and the order in
// which they are added) are the same for any thread count.
int64_t images_per_chunk(int64_t N) { return std::max<int64_t>(1, (N + 15) / 16); }

// The GEMM's weight gradient of a large dw (more than kLargeFiltersBytes): each chunk of images sums into a
// dw-sized buffer and each tile of columns reads and writes all of it, so both are made few: chunks of images
// holding at most kDwGemmPartialsBytes of partial sums in all, tiles of at least kDeepTileCols columns (the
// GEMM's depth). Both depend on the shape alone, so the sums do on nothing else.
// Measured (Xeon, 1 thread, 3x3 stride 2, dw alone, ms, before / after; before, 16 images made 16 chunks of
// one image each and 49- or 16-deep GEMMs): 256 -> 512 on 14x14 27.9 / 22.6, 512 -> 512 on 8x8 37.1 / 14.0,
// 128 -> 256 on 8x8 (32 images) 6.1 / 4.2, 256 -> 256 on 16x16 26.2 / 14.4, 192 -> 384 on 14x14 34.6 / 21.7
// (PyTorch's aten: 18.8 and 17.5 ms on the first two).
constexpr int64_t kDwGemmPartialsBytes = int64_t{8} << 20;

int64_t dw_gemm_images_per_chunk(const ConvGeom& g, size_t elem) {
  if (!large_filters(g, elem)) return images_per_chunk(g.N);
  const int64_t chunks = std::clamp<int64_t>(kDwGemmPartialsBytes / (g.K * g.CgRS() * int64_t(elem)), 1, 16);
  return ceil_div(g.N, chunks);
}

// dw = sum over chunks of ipc images (in index order) of partial[chunk], where chunk_fn(n0, count, partial,
// gemm_threads) writes the chunk's sum (overwriting partial). The thread whose chunks start at 0 adds each of
// them into dw as soon as it is made, through one partial that stays in cache; the other threads' chunks keep a
// partial each, added in chunk order after. The same sums in the same order as adding every partial at the end:
// that was 16 partials written out and read back, 7% of a 16-image 64 -> 128 stride-2 layer's weight gradient
// (Zen 4, 1 thread, perf: the final sum 5.1%, zeroing the partials 1.7%).
// With chunks of one image, add_image(n, dst), where given, adds image n's sum into dst directly, so the thread
// starting at chunk 0 needs no partial at all. It must add each element once, a sum of products started from +0:
// such a sum is never -0, so dst + it has the bits of dst + (0 + it), the partial's way.
struct NoImageAdd {
  template <class T>
  void operator()(int64_t, T*) const {}
};

template <class T, class F, class A = NoImageAdd>
void reduce_chunks(int64_t nelem, int64_t N, int64_t ipc, T* dw, int nthreads, F chunk_fn, A add_image = {}) {
  constexpr bool kAddsImages = !std::is_same_v<A, NoImageAdd>;
  const int64_t nchunks = ceil_div(N, ipc);
  T* parts = nchunks > 1 ? workspace_as<T>(kWsConvAux2, (nchunks - 1) * nelem) : nullptr;
  int64_t summed = 1;  // chunks 0 .. summed - 1 are in dw after the loop
  for_each_unit_range(nchunks, nthreads, true, [&](int64_t lo, int64_t hi, int gthreads) {
    for (int64_t ch = lo; ch < hi; ++ch) {
      if (kAddsImages && ipc == 1 && lo == 0 && ch > 0) {
        add_image(ch, dw);
        continue;
      }
      T* dst = ch == 0 ? dw : parts + (lo == 0 ? 0 : ch - 1) * nelem;
      chunk_fn(ch * ipc, std::min(ipc, N - ch * ipc), dst, gthreads);
      if (lo == 0 && ch > 0)
        parallel_for(nelem, kElementwiseGrain, gthreads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) dw[i] += dst[i];
        });
    }
    if (lo == 0) summed = hi;
  });
  parallel_for(nelem, kElementwiseGrain, nthreads, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = summed; ch < nchunks; ++ch) {
      const T* p = parts + (ch - 1) * nelem;
      for (int64_t i = lo; i < hi; ++i) dw[i] += p[i];
    }
  });
}

// One output plane's share of the bias gradient: 8 lane sums, then a fixed tree.
template <class T>
T plane_sum(const T* d, int64_t PQ) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= PQ; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += d[i + l];
  for (; i < PQ; ++i) acc[i & 7] += d[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// db[k] = the planes' sums added image by image.
template <class T>
void bias_grad(const ConvGeom& g, const T* dz, T* db, int nthreads) {
  const int64_t PQ = g.PQ();
  for_each_unit(g.K, nthreads, false, [&](int64_t k, int) {
    T total = T(0);
    for (int64_t n = 0; n < g.N; ++n) total += plane_sum(dz + (n * g.K + k) * PQ, PQ);
    db[k] = total;
  });
}

// dx through the GEMM: per image (or group of whole images), per tile, col = W^T dz then col2im.
template <class T>
void backward_data_gemm(const ConvGeom& g, const T* dz, const T* w, T* dx, bool plain1x1, int nthreads) {
  const int64_t Kg = g.Kg(), Cg = g.Cg(), CgRS = g.CgRS(), HW = g.H * g.W, img = g.C * HW;
  Tiling t = make_tiling(g, sizeof(T), !plain1x1, g.N);
  if (plain1x1) t = Tiling{1, 1, g.PQ(), g.N};
  // Units own whole images so col2im's scatter-adds into dx never race and keep one order.
  const int64_t units = t.nb > 1 ? t.tiles : g.N;
  const int64_t tiles_per_unit = t.nb > 1 ? 1 : t.tpi;
  for_each_unit(units, nthreads, true, [&](int64_t u, int gthreads) {
    for (int64_t ti = 0; ti < tiles_per_unit; ++ti) {
      Tile tl = tile_at(g, t, 0, g.N, u * tiles_per_unit + ti);
      if (!plain1x1 && ti == 0) std::memset(static_cast<void*>(dx + tl.n0 * img), 0, sizeof(T) * tl.nimg * img);
      T* col = plain1x1 ? nullptr : workspace_as<T>(kWsConvCol, CgRS * tl.len);
      T* buf = tl.nimg > 1 ? workspace_as<T>(kWsConvAux, Kg * tl.len) : nullptr;
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        int64_t ldb;
        const T* B = tile_dy(g, dz, tl, gi, buf, &ldb);
        const T* A = w + gi * Kg * CgRS;  // W_g^T: (CgRS x Kg), element (i, k) at w[k * CgRS + i]
        if (plain1x1) {
          gemm<T>(Cg, tl.len, Kg, T(1), A, 1, CgRS, B, ldb, 1, T(0), dx + (tl.n0 * g.C + gi * Cg) * HW + tl.pq0,
                  HW, 1, gthreads);
          continue;
        }
        gemm<T>(CgRS, tl.len, Kg, T(1), A, 1, CgRS, B, ldb, 1, T(0), col, tl.len, 1, gthreads);
        for (int64_t i = 0; i < tl.nimg; ++i)
          col2im_run(g, col + i * g.PQ(), tl.len, tl.nimg > 1 ? 0 : tl.pq0, tl.nimg > 1 ? g.PQ() : tl.len,
                     dx + ((tl.n0 + i) * g.C + gi * Cg) * HW);
      }
    }
  });
}

// dw through the GEMM: per chunk of images, per tile, dw_g += dz_tile (Kg x len) col^T (len x CgRS).
template <class T>
void backward_weights_gemm(const ConvGeom& g, const T* x, const T* dz, T* dw, bool plain1x1, int nthreads) {
  const int64_t Kg = g.Kg(), CgRS = g.CgRS();
  const int64_t ipc = dw_gemm_images_per_chunk(g, sizeof(T));
  reduce_chunks<T>(g.K * CgRS, g.N, ipc, dw, nthreads, [&](int64_t n0, int64_t cnt, T* dst, int gthreads) {
    Tiling t = make_tiling(g, sizeof(T), !plain1x1, cnt);
    if (plain1x1) t = Tiling{1, 1, g.PQ(), cnt};
    T* col = plain1x1 ? nullptr : workspace_as<T>(kWsConvCol, CgRS * t.cols);
    T* buf = t.nb > 1 ? workspace_as<T>(kWsConvAux, Kg * t.cols) : nullptr;
    for (int64_t i = 0; i < t.tiles; ++i) {
      Tile tl = tile_at(g, t, n0, cnt, i);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        int64_t lda;
        const T* A = tile_dy(g, dz, tl, gi, buf, &lda);
        int64_t ldb;
        const T* B = tile_columns(g, x, tl, gi, plain1x1, col, &ldb);
        gemm<T>(Kg, CgRS, tl.len, T(1), A, lda, 1, B, 1, ldb, i == 0 ? T(0) : T(1), dst + gi * Kg * CgRS, CgRS, 1,
                gthreads);
      }
    }
  });
}

// dw by the direct kernel: per chunk of images, each image's taps summed into the thread's lane partials, then
// those reduced into the chunk's sum. dz_of(n) gives image n's dz (called in image order on the chunk's thread).
template <class T, class DzOf>
void backward_weights_direct(const ConvGeom& g, const T* x, T* dw, int nthreads, DzOf dz_of) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t scratch = kern.direct_scratch(g), nelem = g.K * g.CgRS();
  reduce_chunks<T>(nelem, g.N, images_per_chunk(g.N), dw, nthreads, [&](int64_t n0, int64_t cnt, T* dst, int) {
    T* lanes = workspace_as<T>(kWsConvAux, nelem * kern.lanes);
    std::memset(static_cast<void*>(lanes), 0, sizeof(T) * nelem * kern.lanes);
    T* s = workspace_as<T>(kWsConvCol, scratch);
    for (int64_t n = n0; n < n0 + cnt; ++n) kern.direct_dw(g, x + n * g.C * g.H * g.W, dz_of(n), lanes, s);
    kern.reduce_lanes(lanes, nelem, dst);
  });
}

template <class T>
void backward_weights_direct(const ConvGeom& g, const T* x, const T* dz, T* dw, int nthreads) {
  backward_weights_direct(g, x, dw, nthreads, [&](int64_t n) { return dz + n * g.K * g.PQ(); });
}

// backward_weights_direct and bias_grad for a layer whose dx nobody needs (a first layer), one image at a
// time: with a fused activation dz = dy * act'(y) goes into a buffer of the thread's, where the general path
// writes it for the whole batch first and reads it back (LeNet-5's conv1: 1.2 MB each way, a third of its
// backward); db's plane sums are taken while the image's dz is in cache, without bias_grad's own pass and
// parallel region. The same sums in the same order, so the same bits.
template <class T>
void backward_weights_direct_no_dx(const ConvGeom& g, const T* x, const T* dy, const T* y, Act act, T slope,
                                   T* dw, T* db, int nthreads) {
  const int64_t PQ = g.PQ(), img = g.K * PQ;
  std::vector<T> sums(db ? g.N * g.K : 0);  // each image's plane sums, for db
  backward_weights_direct(g, x, dw, nthreads, [&](int64_t n) -> const T* {
    const T* dz = dy + n * img;
    if (act != Act::none) {
      T* buf = workspace_as<T>(kWsMisc, img);
      act_backward_from_output<T>(act, dz, y + n * img, buf, img, slope, 1);
      dz = buf;
    }
    if (db)
      for (int64_t k = 0; k < g.K; ++k) sums[n * g.K + k] = plane_sum(dz + k * PQ, PQ);
    return dz;
  });
  if (db)
    for (int64_t k = 0; k < g.K; ++k) {
      T total = T(0);
      for (int64_t n = 0; n < g.N; ++n) total += sums[n * g.K + k];
      db[k] = total;
    }
}

// dw by the implicit GEMM: per chunk, the images' transposed gradients summed into the chunk's dwT (groups,
// taps, Kp) in image order; the chunks' dwT summed in chunk order; the sum transposed into dw (K, CgRS) once.
// (Each chunk had transposed its own partial: those scattered writes were a fifth of a 64 -> 128 stride-2
// layer's weight gradient with 16 images, perf. Every element is the same sum in the same order.)
template <class T>
void backward_weights_implicit(const ConvGeom& g, const T* x, const T* dz, T* dw, int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const auto& ig = kern.igemm_for(g);
  const int64_t scratch = ig.scratch(g), ntaps = g.CgRS(), Kg = g.Kg();
  const int64_t kp = conv_igemm_channels(g, ig.kblock), nelem = g.groups * ntaps * kp;
  T* offs = workspace_as<T>(kWsConvPack, kern.igemm_offsets_elems(g));
  kern.igemm_offsets(g, offs);
  T* dwT = workspace_as<T>(kWsConvAux, nelem);
  // ig.dw adds each element of an image's sum once, a sum of products from +0: reduce_chunks's add_image.
  const auto add_image = [&](int64_t n, T* dst) {
    ig.dw(g, x + n * g.C * g.H * g.W, dz + n * g.K * g.PQ(), offs, dst, workspace_as<T>(kWsConvCol, scratch));
  };
  reduce_chunks<T>(
      nelem, g.N, images_per_chunk(g.N), dwT, nthreads,
      [&](int64_t n0, int64_t cnt, T* dst, int) {
        std::memset(static_cast<void*>(dst), 0, sizeof(T) * nelem);
        for (int64_t n = n0; n < n0 + cnt; ++n) add_image(n, dst);
      },
      add_image);
  // Along dw's rows (each filter's taps), reading dwT's columns.
  parallel_for(g.groups * Kg, Grain{std::max<int64_t>(1, kElementwiseGrain.units / ntaps)}, nthreads,
               [&](int64_t lo, int64_t hi) {
                 for (int64_t row = lo; row < hi; ++row) {
                   const int64_t gi = row / Kg, k = row % Kg;
                   const T* src = dwT + gi * ntaps * kp + k;
                   T* d = dw + row * ntaps;
                   for (int64_t t = 0; t < ntaps; ++t) d[t] = src[t * kp];
                 }
               });
}

// Whether the implicit GEMM's dwT stays within kImplicitDwMaxBytes: Kg counted in blocks of 16, the narrow
// tile's in every table, so that the choice (and with it the bits) depends on the shape and dtype alone.
bool implicit_dw_fits(const ConvGeom& g, size_t elem) {
  return g.groups * g.CgRS() * ceil_div(g.Kg(), 16) * 16 * static_cast<int64_t>(elem) <= kImplicitDwMaxBytes;
}

// The partial sums of a Winograd dw, one transformed gradient (alpha^2 K C) per chunk of images: above this
// the weight gradient goes through the implicit GEMM or im2col instead (512 -> 512 3x3 would hold 16 chunks
// of 16 MiB).
constexpr int64_t kWinoDwPartialsBytes = int64_t{64} << 20;

// Elements of one transformed weight gradient dU (alpha^2, K, C).
int64_t winograd_du_elems(const ConvGeom& g) { return wino_points(g) * wino_point_stride(g); }

// Images per chunk of a Winograd dw: chunks of at least kWinoDwChunkTiles tiles where the batch still makes
// kWinoDwMinChunks of them. With images_per_chunk's 16 chunks, 8x8 maps (4 tiles an image) gave each point's
// GEMM a 16-tile sum and left 15 partial dU to add. A function of the geometry only, like images_per_chunk.
// Measured against 16 chunks (1 / 2 threads, fastest of 15 calls): ResNet-20's 64-channel 8x8 layer 1.55 /
// 1.38x, its 32-channel 16x16 layer 1.13 / 1.21x, 16 channels on 32x32 and 5x5 32 -> 64 on 14x14 unchanged.
// 128 tiles in 2 chunks gained 8% / 6% more on the 8x8 layer, but only two threads could share its chunks.
// Since threads also share a chunk's transforms and points (conv_winograd_dw_chunk), 2 chunks at least rather than
// 4 (Zen 4, 1 / 2 threads, medians of 6 alternated runs): 8 images of 8x8, 64 channels 1.34 / 1.35x, 128
// channels 1.40 / 1.42x; 16 images of 8x8 1.16 / 1.16x; 4 images of 16x16 1.15 / 1.16x; 8 images 32 channels on
// 16x16 1.04 / 1.07x; 64 images and 16 channels on 32x32 about 1.0x. One chunk lost at 2 threads where the
// shared chunk needs a few bands (8 images of 16x16, 32 channels: 0.77x, its threads meeting at each band's two
// parallel loops).
constexpr int64_t kWinoDwChunkTiles = 128;
constexpr int64_t kWinoDwMinChunks = 2;

int64_t winograd_dw_images_per_chunk(const ConvGeom& g) {
  const int64_t tiles = wino_tiles_p(g) * wino_tiles_q(g);
  const int64_t by_tiles = std::min(ceil_div(kWinoDwChunkTiles, tiles), ceil_div(g.N, kWinoDwMinChunks));
  return std::max(images_per_chunk(g.N), by_tiles);
}

bool winograd_dw_fits(const ConvGeom& g, size_t elem) {
  const int64_t chunks = ceil_div(g.N, winograd_dw_images_per_chunk(g));
  return winograd_du_elems(g) * chunks * static_cast<int64_t>(elem) <= kWinoDwPartialsBytes;
}

// dw by Winograd: the transformed gradient dU of chunks of images (conv_winograd_dw_chunk), the chunks added
// in order, then transformed into dw once.
template <class T>
void backward_weights_winograd(const ConvGeom& g, const T* x, const T* dz, T* dw, int nthreads) {
  const int64_t nelem = winograd_du_elems(g);
  T* du = workspace_as<T>(kWsConvPack, nelem);
  const int64_t ipc = winograd_dw_images_per_chunk(g);
  reduce_chunks<T>(nelem, g.N, ipc, du, nthreads, [&](int64_t n0, int64_t cnt, T* dst, int gthreads) {
    conv_winograd_dw_chunk(g, x, dz, n0, cnt, dst, gthreads);
  });
  conv_winograd_dw_finish(g, du, dw);
}

// dx of one image at a time by a per-group kernel of stride 1, its filters prepared once per call: the
// direct kernel's full correlation (kvec false) or kvec's sums over the filters.
template <class T>
void backward_data_per_image(const ConvGeom& g, const T* dz, const T* w, T* dx, bool kvec, int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t scratch = kvec ? kern.kvec_scratch(g) : kern.direct_dx_scratch(g), HW = g.H * g.W;
  T* wt = workspace_as<T>(kWsConvPack, kvec ? kern.kvec_filters_elems(g) : kern.dx_filters_elems(g));
  (kvec ? kern.kvec_dx_filters : kern.dx_flip_filters)(g, w, wt);
  const auto group = kvec ? kern.kvec_dx_group : kern.direct_dx_group;
  for_each_unit(g.N, nthreads, false, [&](int64_t n, int) {
    T* s = workspace_as<T>(kWsConvCol, scratch);
    for (int64_t gi = 0; gi < g.groups; ++gi)
      group(g, gi, dz + (n * g.K + gi * g.Kg()) * g.PQ(), wt, dx + (n * g.C + gi * g.Cg()) * HW, s);
  });
}

// dx of a stride-1 convolution is the full correlation of dz with the flipped filters: a stride-1
// convolution of dz (K channels, P x Q) with filters (C, K/groups, R, S) padded by the kernel's extent less
// the forward padding, whose output is H x W. This is its geometry; false when the forward padding exceeds
// the kernel's extent (the transposed padding would be negative).
bool transposed_geom(const ConvGeom& g, ConvGeom* t) {
  *t = g;
  t->C = g.K, t->H = g.P, t->W = g.Q;
  t->K = g.C, t->P = g.H, t->Q = g.W;
  t->ph = (g.R - 1) * g.dh - g.ph, t->pw = (g.S - 1) * g.dw - g.pw;
  return g.sh == 1 && g.sw == 1 && t->ph >= 0 && t->pw >= 0;
}

// Whether dx runs as the implicit GEMM of the transposed convolution (vectors along the C input channels,
// 6 pixels a tile) rather than the direct kernel (vectors along a dx row of W): the one that keeps more
// lanes busy. 64 channels on 8 x 8 maps fill half the direct kernel's 16 lanes; LeNet's conv2 dx (6
// channels, 14-wide rows) fills more of the direct kernel's.
bool dx_by_implicit(const ConvGeom& g) {
  ConvGeom t;
  if (!transposed_geom(g, &t)) return false;
  return implicit_dx_rate(g.Cg(), g.H * g.W) > lane_fill(g.W, 16);
}

// Filter rows whose tap lands on dz (not on its padding), averaged over dx's rows: what the direct kernel
// and kvec multiply per row. Filter columns likewise, averaged over kvec's pixel pairs (kKvecWB in
// simd/kvec_dx.inc; each pair takes the union of its two pixels' columns).
double dx_rows_on_dz(const ConvGeom& g) {
  int64_t n = 0;
  for (int64_t h = 0; h < g.H; ++h)
    for (int64_t r = 0; r < g.R; ++r) n += (h + g.ph - r * g.dh >= 0 && h + g.ph - r * g.dh < g.P);
  return static_cast<double>(n) / static_cast<double>(g.H);
}

double dx_cols_on_dz_pairs(const ConvGeom& g) {
  int64_t n = 0;
  for (int64_t w0 = 0; w0 < g.W; w0 += 2) {
    const int64_t wb = w0 + 1 < g.W ? 2 : 1;
    for (int64_t s = 0; s < g.S; ++s) n += (w0 + g.pw - s * g.dw + wb - 1 >= 0 && w0 + g.pw - s * g.dw < g.Q) * wb;
  }
  return static_cast<double>(n) / static_cast<double>(g.W);
}

// dx of a strided convolution (dilation 1) by the implicit GEMM, in phases. The dx rows h = sh i + a of one
// residue a meet only the filter rows r = r0 + sh u with r0 = (a + ph) mod sh, each at dz row i + da - u
// (da = (a + ph - r0) / sh); likewise for columns. So each phase (a, b) of dx is a stride-1 correlation of dz
// with the filters' rows and columns of that phase, flipped and transposed: the implicit forward of a
// geometry whose input is dz, zero-padded once for all phases (pad_top rows above, ...), whose taps
// are (k, u', v') with u' = ru - 1 - u, and whose outputs are the phase's hi x wj pixels. No tap is
// multiplied that the phase cannot use (col2im's GEMM does the same products, then scatters the columns).
// For stride 1 there is one phase, and this is backward_data_implicit's transposed convolution.
struct DxPhase {
  int64_t r0, ru, da, hi;  // rows: first filter row, filter rows, dz offset, dx rows of the residue
  int64_t s0, sv, db, wj;  // columns likewise
  int64_t taps_at;         // offset of the phase's packed filters
};

struct DxPhases {
  static constexpr int kMax = 16;  // sh * sw at most
  DxPhase p[kMax];                 // phase (a, b) at a * sw + b
  int n = 0;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
};

// The residues of one axis: (first filter row, rows, dz offset, dx rows) of residue a.
inline void dx_phase_axis(int64_t a, int64_t stride, int64_t pad, int64_t R, int64_t H, int64_t* r0, int64_t* ru,
                          int64_t* da, int64_t* hi) {
  *r0 = (a + pad) % stride;
  *ru = *r0 < R ? (R - *r0 + stride - 1) / stride : 0;
  *da = (a + pad - *r0) / stride;
  *hi = a < H ? (H - a + stride - 1) / stride : 0;
}

inline bool dx_phases_apply(const ConvGeom& g) {
  return g.dh == 1 && g.dw == 1 && g.sh * g.sw <= DxPhases::kMax &&
         g.Kg() * ceil_div(g.R, g.sh) * ceil_div(g.S, g.sw) <= kImplicitMaxTapsWide;
}

// Whether a strided dx runs in phases rather than through col2im: every phase has filter taps (a 1x1 stride-2
// layer's dx is three quarters zeros, 0.72x col2im's speed), and blocks of 16 channels are at least 3/4 full (the
// implicit tile's vectors run along dx's Cg channels: 8 channels measured 0.90x, 4 0.60x, 3 0.30x; 16 lanes, the
// narrow tile's block in every table, so that the choice is the same on every ISA, as the bits are). Measured
// against col2im (Xeon, full-width AVX-512, 1 thread, float32, 3x3 stride 2 padding 1, batch 64 unless said):
// ResNet-20's 16 -> 32 on 32x32 1.20x, 32 -> 64 on 16x16 1.13x, 12 -> 24 (batch 32) 1.09x, 24 -> 48 on 16x16
// 1.02x, bench/test_conv.py's 64 -> 128 on 32x32 (batch 16) 1.03x; 2 threads 1.07-1.26x, float64 1.20-1.23x.
// On small outputs a phase is a tile or two of pixels against all its filters, and col2im's GEMM on tiles of
// several images (kDeepTileCols) did better: 256 -> 512 on 7x7 outputs 0.90x, 128 -> 256 on 4x4 0.87x, 256 ->
// 256 on 8x8 1.01x, ResNet-20's 32 -> 64 on 8x8 1.11x; so the phases need 64 output pixels there (the table's
// dx_phases_min_pixels, and dx_phases_min_pixels_many_taps for layers of more than kImplicitMaxTaps taps: Zen 4's
// differ, conv_ukernels_avx512.cpp).
inline bool dx_by_phases(const ConvGeom& g) {
  const auto& kern = conv_ukernels<float>();
  const int64_t min_pixels =
      g.CgRS() > kImplicitMaxTaps ? kern.dx_phases_min_pixels_many_taps : kern.dx_phases_min_pixels;
  return dx_phases_apply(g) && g.R >= g.sh && g.S >= g.sw && lane_fill(g.Cg(), 16) >= 0.75 && g.PQ() >= min_pixels;
}

inline DxPhases dx_phases(const ConvGeom& g) {
  DxPhases ps;
  for (int64_t a = 0; a < g.sh; ++a)
    for (int64_t b = 0; b < g.sw; ++b) {
      DxPhase& p = ps.p[ps.n++];
      dx_phase_axis(a, g.sh, g.ph, g.R, g.H, &p.r0, &p.ru, &p.da, &p.hi);
      dx_phase_axis(b, g.sw, g.pw, g.S, g.W, &p.s0, &p.sv, &p.db, &p.wj);
      if (p.ru == 0 || p.sv == 0 || p.hi == 0 || p.wj == 0) continue;
      // Tap u' of output row i reads dz row i + u' + da - (ru - 1): from da - (ru - 1) to hi - 1 + da.
      ps.pad_top = std::max(ps.pad_top, p.ru - 1 - p.da);
      ps.pad_bottom = std::max(ps.pad_bottom, p.hi + p.da - g.P);
      ps.pad_left = std::max(ps.pad_left, p.sv - 1 - p.db);
      ps.pad_right = std::max(ps.pad_right, p.wj + p.db - g.Q);
    }
  return ps;
}

// The implicit forward's geometry of phase p: input dz padded (K channels), output the phase's C channels.
inline ConvGeom dx_phase_geom(const ConvGeom& g, const DxPhases& ps, const DxPhase& p) {
  ConvGeom t = g;
  t.N = 1, t.C = g.K, t.H = g.P + ps.pad_top + ps.pad_bottom, t.W = g.Q + ps.pad_left + ps.pad_right;
  t.K = g.C, t.R = p.ru, t.S = p.sv, t.P = p.hi, t.Q = p.wj;
  t.sh = t.sw = 1, t.ph = t.pw = 0, t.dh = t.dw = 1;
  return t;
}

ConvDxPath dx_forced = ConvDxPath::automatic;

}  // namespace

void conv_force_dx_path(ConvDxPath p) { dx_forced = p; }

ConvDxPath conv_dx_path(const ConvGeom& g, ConvAlgo algo) {
  if (algo == ConvAlgo::automatic) algo = conv_pick_algorithm(g);
  if (algo == ConvAlgo::depthwise) return ConvDxPath::depthwise;
  if (algo == ConvAlgo::gemm1x1 || algo == ConvAlgo::im2col) return ConvDxPath::col2im;
  const bool stride1 = g.sh == 1 && g.sw == 1;
  ConvGeom t;
  const bool winograd_dx = transposed_geom(g, &t) && conv_winograd_applies(t, nullptr);
  if (dx_forced != ConvDxPath::automatic) {
    if (dx_forced == ConvDxPath::winograd && winograd_dx) return dx_forced;
    if (dx_forced == ConvDxPath::implicit && transposed_geom(g, &t)) return dx_forced;
    if (dx_forced == ConvDxPath::implicit && !stride1 && dx_phases_apply(g)) return dx_forced;
    if ((dx_forced == ConvDxPath::direct || dx_forced == ConvDxPath::kvec) && stride1) return dx_forced;
    if (dx_forced == ConvDxPath::col2im) return dx_forced;
  }
  if (algo == ConvAlgo::winograd && winograd_dx) return ConvDxPath::winograd;
  if (!stride1) return dx_by_phases(g) ? ConvDxPath::implicit : ConvDxPath::col2im;
  // Modelled cost per dx element in 8-lane multiply-adds. direct: the filter rows on dz, every column, over
  // the lanes its 16-wide row tiles keep busy, at the table's direct_dx_rate. implicit: every tap, over its lanes
  // along the channels, where it applies (and, on tables that weigh the two, costs less).
  // kvec: the taps on dz of a pixel pair, Kg rounded up to whole vectors, at 1/1.3 of the others' rate
  // (a weight load per 2 multiply-adds; fitted to 1-thread AVX-512 timings: 0.45 ms against direct's 0.52
  // on LeNet's conv2, 1.14x implicit's time on 64 channels 8x8, 1.07x on the BatchNorm net's 32 -> 64
  // 5x5), plus about one multiply-add's time for the horizontal sum; kvec_wide_rate as fast where the
  // table's multiply-adds span kvec_wide vectors and Kg fills them.
  const auto& kern = conv_ukernels<float>();
  const double rows = dx_rows_on_dz(g), Kg = static_cast<double>(g.Kg());
  double best = Kg * rows * static_cast<double>(g.S) / 8.0 / lane_fill(g.W, 16) / kern.direct_dx_rate;
  ConvDxPath path = ConvDxPath::direct;
  if (dx_by_implicit(g)) {
    const double implicit = Kg * static_cast<double>(g.R * g.S) / 8.0 / implicit_dx_rate(g.Cg(), g.H * g.W) + 1.0;
    if (!kern.direct_dx_against_implicit || implicit < best) best = implicit, path = ConvDxPath::implicit;
  }
  // kvec reads an image's whole dz (Kg planes) for every pixel pair of its dx rows; the model holds while
  // that stays in L1. Past it kvec lost to direct (1 thread, full-width AVX-512 Xeon, 64 images, 16
  // filters, 5x5 padding 2, ms): 6 channels on 24x24 (dz 37 KB) 1.62 against 1.53, on 28x28 (50 KB) 2.26
  // against 1.62, 3 channels on 32x32 with 32 filters (131 KB) 6.0 against 2.5; below it kvec won or tied
  // (LeNet's conv2, 6 KB: 0.33 against 0.46; 20x20, 26 KB: 1.07 against 1.22; 16x16, 16 KB: even). Its size
  // in pixels was the better bound: 3-8 channels from 64 filters (dz 49-64 KB) on 14x14 and 16x16, kvec
  // 1.1-1.75x faster than direct; on 28x28 and 32x32 behind or even whatever the filters (the 180-layer
  // sweep of conv_ukernels_zmm_avx512.cpp's dx rates). The bounds, and kvec's rate, are the table's
  // (kvec_max_dz_pixels, kvec_max_dz_elems, kvec_dx_rate): Zen 4's measured otherwise (conv_ukernels_avx512.cpp).
  if (g.P * g.Q > kern.kvec_max_dz_pixels || g.Kg() * g.P * g.Q > kern.kvec_max_dz_elems) return path;
  const double kvec_rate = (g.Kg() % (8 * kern.kvec_wide) == 0 ? kern.kvec_wide_rate : 1.0) * kern.kvec_dx_rate;
  const double kvec = 1.3 * std::ceil(Kg / 8.0) / kvec_rate * rows * dx_cols_on_dz_pairs(g) + 1.0;
  return kvec < best ? ConvDxPath::kvec : path;
}

const char* conv_dx_path_name(ConvDxPath p) {
  switch (p) {
    case ConvDxPath::automatic: return "auto";
    case ConvDxPath::col2im: return "col2im";
    case ConvDxPath::direct: return "direct";
    case ConvDxPath::implicit: return "implicit";
    case ConvDxPath::kvec: return "kvec";
    case ConvDxPath::depthwise: return "depthwise";
    case ConvDxPath::winograd: return "winograd";
  }
  return "?";
}

namespace {

// dx by the implicit GEMM's forward over dz with the filters flipped in (r, s) and transposed in (k, c)
// within each group: wt (groups, Cg, Kg, R, S).
template <class T>
void backward_data_implicit(const ConvGeom& g, const T* dz, const T* w, T* dx, int nthreads) {
  ConvGeom t;
  transposed_geom(g, &t);
  const int64_t Kg = g.Kg(), Cg = g.Cg(), RS = g.R * g.S;
  T* wt = workspace_as<T>(kWsConvAux2, g.K * g.CgRS());
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t k = 0; k < Kg; ++k) {
        const T* src = w + ((gi * Kg + k) * Cg + c) * RS;
        T* dst = wt + ((gi * Cg + c) * Kg + k) * RS;
        for (int64_t i = 0; i < RS; ++i) dst[i] = src[RS - 1 - i];
      }
  forward_implicit(t, dz, wt, static_cast<const T*>(nullptr), ImageOut<T>::into(dx, t), Act::none, T(0), nthreads);
}

template <class T>
void backward_data_phases(const ConvGeom& g, const T* dz, const T* w, T* dx, int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const auto& ig = kern.igemm_for_channels(g.Cg());
  DxPhases ps = dx_phases(g);
  // Every phase's geometry has Cg filters per group (its outputs are dx's channels), so one kp for all.
  const int64_t Kg = g.Kg(), Cg = g.Cg(), kp = conv_igemm_channels(dx_phase_geom(g, ps, ps.p[0]), ig.kblock);
  // Packed filters, zero bias and offsets of every phase, once per call; the phase's filters (groups * Cg, Kg,
  // ru, sv) laid out first in kWsConvAux2.
  int64_t packed = 0, scratch = 0, out_elems = 0;
  for (int i = 0; i < ps.n; ++i) {
    DxPhase& p = ps.p[i];
    p.taps_at = packed;
    if (p.ru * p.sv * p.hi * p.wj == 0) continue;
    const ConvGeom t = dx_phase_geom(g, ps, p);
    packed += g.groups * kp * (t.CgRS() + 1) + kern.igemm_offsets_elems(t) + 16;
    scratch = std::max(scratch, ig.scratch(t));
    out_elems = std::max(out_elems, g.C * p.hi * p.wj);
  }
  T* pack = workspace_as<T>(kWsConvPack, packed);
  for (int i = 0; i < ps.n; ++i) {
    const DxPhase& p = ps.p[i];
    if (p.ru * p.sv * p.hi * p.wj == 0) continue;
    const ConvGeom t = dx_phase_geom(g, ps, p);
    T* wt = workspace_as<T>(kWsConvAux2, g.C * t.CgRS());
    // The phase's taps of each filter, flipped: tap (u, v) is w's (r0 + sh (ru - 1 - u), s0 + sw (sv - 1 - v)).
    const int64_t last = (p.r0 + g.sh * (p.ru - 1)) * g.S + p.s0 + g.sw * (p.sv - 1);
    T* dst = wt;
    for (int64_t gi = 0; gi < g.groups; ++gi)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t k = 0; k < Kg; ++k) {
          const T* src = w + ((gi * Kg + k) * Cg + c) * g.R * g.S + last;
          for (int64_t u = 0; u < p.ru; ++u, src -= g.sh * g.S)
            for (int64_t v = 0; v < p.sv; ++v) *dst++ = src[-g.sw * v];
        }
    T* wpack = pack + p.taps_at;
    T* bpack = wpack + g.groups * kp * t.CgRS();
    ig.pack(t, wt, nullptr, wpack, bpack);
    kern.igemm_offsets(t, bpack + g.groups * kp);
  }
  const int64_t Hs = g.P + ps.pad_top + ps.pad_bottom, Ws = g.Q + ps.pad_left + ps.pad_right, HW = g.H * g.W;
  for_each_unit(g.N, nthreads, false, [&](int64_t n, int) {
    T* src = workspace_as<T>(kWsConvCol, g.K * Hs * Ws + 16 + scratch);
    T* s = src + (g.K * Hs * Ws + 15) / 16 * 16;
    T* out = workspace_as<T>(kWsConvAux, g.sw * out_elems);  // the phases of one row residue
    for (int64_t k = 0; k < g.K; ++k) {  // dz zero-padded
      T* d = src + k * Hs * Ws;
      std::memset(static_cast<void*>(d), 0, sizeof(T) * ps.pad_top * Ws);
      for (int64_t r = 0; r < g.P; ++r) {
        T* row = d + (ps.pad_top + r) * Ws;
        std::memset(static_cast<void*>(row), 0, sizeof(T) * ps.pad_left);
        std::memcpy(row + ps.pad_left, dz + ((n * g.K + k) * g.P + r) * g.Q, sizeof(T) * g.Q);
        std::memset(static_cast<void*>(row + ps.pad_left + g.Q), 0, sizeof(T) * ps.pad_right);
      }
      std::memset(static_cast<void*>(d + (ps.pad_top + g.P) * Ws), 0, sizeof(T) * ps.pad_bottom * Ws);
    }
    T* dxn = dx + n * g.C * HW;
    for (int64_t a = 0; a < g.sh; ++a) {
      const DxPhase* row = ps.p + a * g.sw;  // the phases (a, 0 .. sw - 1)
      const int64_t hi = row[0].hi;
      if (hi == 0) continue;
      for (int64_t b = 0; b < g.sw; ++b) {
        const DxPhase& p = row[b];
        T* ob = out + b * out_elems;
        if (p.wj == 0) continue;
        if (p.ru * p.sv == 0) {  // no filter tap reaches these dx elements
          std::memset(static_cast<void*>(ob), 0, sizeof(T) * g.C * hi * p.wj);
          continue;
        }
        const ConvGeom t = dx_phase_geom(g, ps, p);
        const T* wpack = pack + p.taps_at;
        const T* bpack = wpack + g.groups * kp * t.CgRS();
        // Output row i, tap u' reads padded row i + u' + (da - (ru - 1) + pad_top): the origin's shift.
        const T* origin = src + (p.da - (p.ru - 1) + ps.pad_top) * Ws + (p.db - (p.sv - 1) + ps.pad_left);
        ig.fwd(t, origin, wpack, bpack, bpack + g.groups * kp, ob, Act::none, T(0), s);
      }
      // The dx rows of residue a, their columns interleaved from the phases: one contiguous write per row.
      for (int64_t c = 0; c < g.C; ++c) {
        T* drow = dxn + c * HW + a * g.W;
        if (g.sw == 2) {
          kern.interleave_columns2(out + c * hi * row[0].wj, row[0].wj, out + out_elems + c * hi * row[1].wj,
                                   row[1].wj, hi, row[0].wj, row[1].wj, drow, g.sh * g.W);
          continue;
        }
        for (int64_t i2 = 0; i2 < hi; ++i2, drow += g.sh * g.W)
          for (int64_t b = 0; b < g.sw; ++b) {
            const T* ob = out + b * out_elems + (c * hi + i2) * row[b].wj;
            for (int64_t j = 0; j < row[b].wj; ++j) drow[g.sw * j + b] = ob[j];
          }
      }
    }
  });
}

// dx by Winograd over dz: the transposed geometry's forward, the filters flipped and transposed as the
// weight transform reads them (no copy).
template <class T>
void backward_data_winograd(const ConvGeom& g, const T* dz, const T* w, T* dx, int nthreads) {
  ConvGeom t;
  transposed_geom(g, &t);
  conv_winograd_forward(t, dz, w, true, static_cast<const T*>(nullptr), dx, Act::none, T(0), nthreads);
}

template <class T>
void backward_depthwise_lanes(const ConvGeom& g, const T* dz, const T* x, const T* w, T* dx, T* dw, int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t L = kern.lanes, blocks = (g.C + L - 1) / L, scratch = kern.dwise_lanes_scratch(g);
  const int64_t HW = g.H * g.W, PQ = g.PQ(), RS = g.R * g.S;
  if (dx)
    for_each_lane_block(g, w, static_cast<const T*>(nullptr), true, nthreads,
                        [&](int64_t n, int64_t c0, int nc, const T* pack, T* s) {
                          kern.dwise_lanes_dx(g, dz + (n * g.K + c0) * PQ, pack, nc, dx + (n * g.C + c0) * HW, s);
                        });
  if (dw)
    // One block of channels per unit, images in order: each dw element has one summation order for any threads.
    for_each_unit(blocks, nthreads, false, [&](int64_t blk, int) {
      const int64_t c0 = blk * L, nc = std::min(L, g.C - c0);
      T* s = workspace_as<T>(kWsConvCol, scratch + RS * L);
      T* acc = s + scratch;
      std::fill(acc, acc + RS * L, T(0));
      for (int64_t n = 0; n < g.N; ++n)
        kern.dwise_lanes_dw(g, x + (n * g.C + c0) * HW, dz + (n * g.K + c0) * PQ, static_cast<int>(nc), acc, s);
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t t = 0; t < RS; ++t) dw[(c0 + c) * RS + t] = acc[t * L + c];
    });
}

// dx of a stride-1 layer with one filter per channel as the flat forward (forward_depthwise_flat) of dz with the
// flipped filters: a stride-1 convolution padded by (R - 1) dh - ph rows and (S - 1) dw - pw columns, whose output
// is x's shape. Each dx element sums its taps in the flipped filter's order, as the lane kernels' dx does. Where
// that padding is not negative and the flat forward applies to it; false (nothing done) otherwise.
template <class T>
bool backward_depthwise_flat_dx(const ConvGeom& g, const T* dz, const T* w, T* dx, int nthreads) {
  if (g.Kg() != 1 || g.sh != 1 || g.sw != 1) return false;
  ConvGeom t = g;
  t.H = g.P, t.W = g.Q, t.P = g.H, t.Q = g.W;
  t.ph = (g.R - 1) * g.dh - g.ph, t.pw = (g.S - 1) * g.dw - g.pw;
  if (t.ph < 0 || t.pw < 0 || !dwise_flat_forward(t)) return false;
  const int64_t RS = g.R * g.S;
  T* flipped = workspace_as<T>(kWsConvPack, g.C * RS);
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t i = 0; i < RS; ++i) flipped[c * RS + i] = w[c * RS + RS - 1 - i];
  forward_depthwise_flat(t, dz, flipped, static_cast<const T*>(nullptr), dx, Act::none, T(0), nthreads);
  return true;
}

// dx at stride 2 by its phases on flat planes (simd/depthwise_flat.inc's dwise_flat_dx2), where the strided flat
// forward runs (dwise_flat_forward: the AVX-512 tables, on Zen 4's rows of at most 48, where this dx measured
// 0.88-0.98x the lane kernels on 56x56 and 112x112) and the phases are dz's width (ceil(W / 2) == Q), with no
// dilation, one filter per channel and at most 64 taps. Against the lane kernels (3x3, padding 1, 1 thread, one
// process alternating the builds, same bits): 1.22-2.02x on the full-width table (64 x 64 x 32x32 2.44 -> 1.20
// ms, 32 x 512 x 7x7 0.91 -> 0.65), 0.97-1.46x on the 32-byte one (NNX_WIDE_FMA=0; 0.97x on 8 x 24 x 15x17).
template <class T>
bool backward_depthwise_flat_dx2(const ConvGeom& g, const T* dz, const T* w, T* dx, int nthreads) {
  if (g.Kg() != 1 || g.sh != 2 || g.sw != 2 || g.dh != 1 || g.dw != 1 || g.R * g.S > 64 ||
      ceil_div(g.W, 2) != g.Q || !dwise_flat_forward(g))
    return false;
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const T* plan = dwise_flat_plan_for(kern, g, true);
  const int64_t RS = g.R * g.S, HW = g.H * g.W, scratch = kern.dwise_flat_dx2_scratch(g);
  for_each_unit(g.N * g.C, nthreads, false, [&](int64_t u, int) {
    const int64_t c = u % g.C;
    kern.dwise_flat_dx2(g, plan, dz + u * g.PQ(), w + c * RS, dx + u * HW, workspace_as<T>(kWsConvCol, scratch));
  });
  return true;
}

template <class T>
void backward_depthwise(const ConvGeom& g, const T* dz, const T* x, const T* w, T* dx, T* dw, int nthreads) {
  if (dx && (backward_depthwise_flat_dx(g, dz, w, dx, nthreads) || backward_depthwise_flat_dx2(g, dz, w, dx, nthreads)))
    dx = nullptr;
  if (!dx && !dw) return;
  const bool lanes_dx = dx && depthwise_lanes(g, DwPass::data), lanes_dw = dw && depthwise_lanes(g, DwPass::weights);
  if (lanes_dx || lanes_dw)
    backward_depthwise_lanes(g, dz, x, w, lanes_dx ? dx : nullptr, lanes_dw ? dw : nullptr, nthreads);
  if (lanes_dx) dx = nullptr;
  if (lanes_dw) dw = nullptr;
  if (!dx && !dw) return;
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  // dx of stride 1 runs the direct kernel's gather form (direct_dx_group), so its scratch counts too.
  const int64_t scratch = std::max(kern.dwise_scratch(g), kern.direct_dx_scratch(g));
  const int64_t m = g.Kg(), HW = g.H * g.W, RS = g.R * g.S;
  const bool unit_stride = g.sh == 1 && g.sw == 1;
  T* wt = nullptr;
  if (dx && unit_stride) {
    wt = workspace_as<T>(kWsConvPack, kern.dx_filters_elems(g));
    kern.dx_flip_filters(g, w, wt);
  }
  if (dx)
    for_each_unit(g.N * g.C, nthreads, false, [&](int64_t u, int) {
      int64_t n = u / g.C, c = u % g.C;
      T* s = workspace_as<T>(kWsConvCol, scratch);
      if (unit_stride)  // gather form: no read-after-write of overlapping vectors
        kern.direct_dx_group(g, c, dz + (n * g.K + c * m) * g.PQ(), wt, dx + (n * g.C + c) * HW, s);
      else
        kern.dwise_dx(g, dz + (n * g.K + c * m) * g.PQ(), w + c * m * RS, dx + (n * g.C + c) * HW, s);
    });
  if (dw)
    // One filter per unit, images in order: each dw element has one summation order for any threads.
    for_each_unit(g.K, nthreads, false, [&](int64_t k, int) {
      T* s = workspace_as<T>(kWsConvCol, scratch);
      T* dwk = dw + k * RS;
      std::memset(static_cast<void*>(dwk), 0, sizeof(T) * RS);
      for (int64_t n = 0; n < g.N; ++n)
        kern.dwise_dw(g, x + (n * g.C + k / m) * HW, dz + (n * g.K + k) * g.PQ(), dwk, s);
    });
}

}  // namespace

template <class T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, Act act, T slope,
                    ConvAlgo algo, int nthreads) {
  if (g.N == 0) return;
  if (algo == ConvAlgo::automatic) algo = conv_pick_algorithm(g);
  switch (algo) {
    case ConvAlgo::direct: forward_direct(g, x, w, b, ImageOut<T>::into(y, g), act, slope, nthreads); break;
    case ConvAlgo::depthwise: forward_depthwise(g, x, w, b, y, act, slope, nthreads); break;
    case ConvAlgo::implicit: forward_implicit(g, x, w, b, ImageOut<T>::into(y, g), act, slope, nthreads); break;
    case ConvAlgo::winograd: conv_winograd_forward(g, x, w, false, b, y, act, slope, nthreads); break;
    case ConvAlgo::gemm1x1: forward_gemm(g, x, w, b, y, act, slope, true, nthreads); break;
    default: forward_gemm(g, x, w, b, y, act, slope, false, nthreads); break;
  }
}

template <class T>
void conv2d_backward(const ConvGeom& g, const T* dy, const T* x, const T* w, const T* y, Act act, T slope,
                     T* dx, T* dw, T* db, ConvAlgo algo, int nthreads) {
  if (g.N == 0) {
    if (dw) std::memset(static_cast<void*>(dw), 0, sizeof(T) * g.K * g.CgRS());
    if (db) std::memset(static_cast<void*>(db), 0, sizeof(T) * g.K);
    return;
  }
  if (algo == ConvAlgo::automatic) algo = conv_pick_algorithm(g);
  if (algo == ConvAlgo::direct && !dx && dw) {
    backward_weights_direct_no_dx(g, x, dy, y, act, slope, dw, db, nthreads);
    return;
  }
  const T* dz = activation_grad(g, dy, y, act, slope, nthreads);
  if (db) bias_grad(g, dz, db, nthreads);
  switch (algo) {
    case ConvAlgo::depthwise: backward_depthwise(g, dz, x, w, dx, dw, nthreads); break;
    case ConvAlgo::direct:
    case ConvAlgo::implicit:
    case ConvAlgo::winograd:
      if (dx) {
        switch (conv_dx_path(g, algo)) {
          case ConvDxPath::winograd: backward_data_winograd(g, dz, w, dx, nthreads); break;
          case ConvDxPath::implicit:
            if (g.sh == 1 && g.sw == 1) backward_data_implicit(g, dz, w, dx, nthreads);
            else backward_data_phases(g, dz, w, dx, nthreads);
            break;
          case ConvDxPath::direct: backward_data_per_image(g, dz, w, dx, false, nthreads); break;
          case ConvDxPath::kvec: backward_data_per_image(g, dz, w, dx, true, nthreads); break;
          default: backward_data_gemm(g, dz, w, dx, false, nthreads);
        }
      }
      if (dw) {
        if (algo == ConvAlgo::direct) backward_weights_direct(g, x, dz, dw, nthreads);
        else if (algo == ConvAlgo::winograd && winograd_dw_fits(g, sizeof(T)))
          backward_weights_winograd(g, x, dz, dw, nthreads);
        else if (implicit_dw_fits(g, sizeof(T))) backward_weights_implicit(g, x, dz, dw, nthreads);
        else backward_weights_gemm(g, x, dz, dw, false, nthreads);
      }
      break;
    default: {
      bool plain = algo == ConvAlgo::gemm1x1;
      if (dx) backward_data_gemm(g, dz, w, dx, plain, nthreads);
      if (dw) backward_weights_gemm(g, x, dz, dw, plain, nthreads);
    }
  }
}

template <class T>
void conv2d_forward_each_image(const ConvGeom& g, const T* x, const T* w, const T* b, Act act, T slope,
                               ConvAlgo algo, int nthreads, const std::function<void(int64_t, const T*)>& image) {
  if (g.N == 0) return;
  if (algo == ConvAlgo::automatic) algo = conv_pick_algorithm(g);
  const int64_t img = g.K * g.PQ();
  if (algo == ConvAlgo::direct || algo == ConvAlgo::implicit) {
    const ImageOut<T> out{nullptr, &image, img};  // no y: each image into the thread's buffer, then image()
    if (algo == ConvAlgo::direct) forward_direct(g, x, w, b, out, act, slope, nthreads);
    else forward_implicit(g, x, w, b, out, act, slope, nthreads);
    return;
  }
  T* y = workspace_as<T>(kWsMisc, static_cast<size_t>(g.N * img));
  conv2d_forward(g, x, w, b, y, act, slope, algo, nthreads);
  parallel_for_each(g.N, kConvUnitGrain, nthreads, [&](int64_t n) { image(n, y + n * img); });
}

template void conv2d_forward<float>(const ConvGeom&, const float*, const float*, const float*, float*, Act, float,
                                    ConvAlgo, int);
template void conv2d_forward<double>(const ConvGeom&, const double*, const double*, const double*, double*, Act,
                                     double, ConvAlgo, int);
template void conv2d_forward_each_image<float>(const ConvGeom&, const float*, const float*, const float*, Act, float,
                                               ConvAlgo, int, const std::function<void(int64_t, const float*)>&);
template void conv2d_forward_each_image<double>(const ConvGeom&, const double*, const double*, const double*, Act,
                                                double, ConvAlgo, int,
                                                const std::function<void(int64_t, const double*)>&);
template void conv2d_backward<float>(const ConvGeom&, const float*, const float*, const float*, const float*, Act,
                                     float, float*, float*, float*, ConvAlgo, int);
template void conv2d_backward<double>(const ConvGeom&, const double*, const double*, const double*,
                                      const double*, Act, double, double*, double*, double*, ConvAlgo, int);

}  // namespace nnx
