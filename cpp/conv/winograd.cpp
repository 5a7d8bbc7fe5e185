// Winograd F(MxM, RxR) driver (contract in winograd.h): the filters transformed and packed once per call,
// then the batch's tile rows cut into bands, each band done by one thread: its input patches transformed
// into the GEMM's packed B operand, alpha^2 GEMMs (one per point of the alpha x alpha transform: 16 for
// F(2x2, 3x3), 36 for F(4x4, 3x3) and F(2x2, 5x5), 64 for F(4x4, 5x5)), the products transformed back into the
// output rows. A
// band's transformed inputs and products stay in the L2.
#include "conv/winograd.h"

#include <algorithm>
#include <numeric>

#include "common/int_math.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "conv/conv_ukernels.h"
#include "gemm/gemm.h"
#include "gemm/ukernel.h"

namespace nnx {

namespace {

// Bytes of one band's transformed inputs and products (alpha^2 x tiles x (C + K) elements): about 3/4 of a
// Zen 4 core's 1 MiB L2, leaving room for the packed filters' current slice and the band's input rows.
// Layers of at most 32 channels each way take bands of less than half the L2: there the whole band, not a
// slice of it, is reused, and the input rows, the output rows and the packed filters stay beside it.
// Measured with 448 KiB against 768 KiB (1 thread, Zen 4, fastest of 4 x 20 alternated calls, forward / dx /
// dw): 16 channels on 32x32 1.03 / 1.06 / 1.12x, 32 on 16x16 1.03 / 1.05 / 1.00x; with more channels the
// smaller bands lost (64 on 56x56 0.96 / - / 0.89x, 256 on 14x14 dw 0.92x, 5x5 32->64 dw 0.97x) and 256 KiB
// lost on 16 channels too (0.94x dx and dw against 448 KiB).
constexpr int64_t kWinoBandBytes = 768 << 10;
constexpr int64_t kWinoBandBytesFewChannels = 448 << 10;

int64_t wino_band_bytes(const ConvGeom& g) {
  return std::max(g.C, g.K) <= 32 ? kWinoBandBytesFewChannels : kWinoBandBytes;
}

// The weight gradient's bands hold at least this many tiles, the depth of each point's GEMM: wide layers'
// L2-sized bands were a few dozen tiles (10 for 256 channels), too short a sum to pay for the GEMM's packing
// and its tiles' loads and stores. Its GEMMs read one point's operands at a time, so a band larger than the
// L2 costs little. Measured against the L2 budget alone (1 thread, fastest of 4 x 8 alternated calls): 256
// channels on 14x14 (8 images) 1.20x, 128 on 28x28 1.18-1.21x, 32 on 16x16 1.04x, others within the noise
// (+-1.5% between two runs of one build); 96 tiles gained as much on the wide layers, and near 200 lost on the
// narrow ones (32 channels on 16x16 0.96x against about 100).
constexpr int64_t kWinoDwMinTiles = 64;
// Tile rows of a weight gradient's band worth a thread of their own in its transforms.
constexpr Grain kWinoDwRowGrain{4};

// A band of tile rows is worth a thread of its own.
constexpr Grain kWinoBandGrain{1};
// Filter pairs (k, c) transformed (each reads R^2 taps and writes alpha^2 points), or packed over the points, per
// thread at least: ResNet-20's 16- to 64-channel layers stay on one thread.
constexpr Grain kWinoFilterGrain{4096};

// The input transform's cost per tile, input channel and point, in the GEMMs' multiply-adds (a GEMM column costs
// one per filter): what a forward's filters split between threads spends again in each part
// (conv_winograd_forward). An estimate from the transform's few adds per point, not fitted; it only has to rank
// a band split against a filter split.
constexpr double kWinoInputCost = 8;

int forced_tile = 0;  // conv_winograd_force_tile's, for tests

// The transform points' planes are written (input) and read (output) side by side: a stride of a multiple of
// 4 KiB would put them all in one set of the 8-way L1 (and alias in the store-to-load check), so each plane
// is padded by one cache line. Measured on the 16-channel 32x32 layer with 2 images (in cache): 0.12 ->
// 0.08 ms.
template <class T>
constexpr int64_t kPlanePad = 64 / sizeof(T);

}  // namespace

void conv_winograd_force_tile(int m) { forced_tile = m; }

// F(4x4, 3x3) against F(2x2, 3x3) (1 thread, AVX-512 Zen 4, forward / dx / dw, medians of 3 interleaved runs):
// ResNet-20's 16-channel 32x32 layer 1.37 / 1.37 / 1.30x, 32-channel 16x16 1.24 / 1.31 / 1.13x, 64 channels on
// 8x8 1.64 / 1.55 / 1.30x (its transforms' vectors spanning tile rows, simd/winograd.inc), 32 on 7x7 1.55 /
// 1.66 / 1.30x, 64 channels on 56x56 (16 images) 1.52 / 1.52 / 1.29x, 128 on 28x28 (4 images) 1.13 / 1.22 /
// 0.95x. With 256 channels its 36 points' GEMMs over few tiles lost (8 images of 14x14: 0.97 / 0.96 / 0.92x;
// 7x7: 0.83 / 0.82 / 0.90x). On 5- and 6-wide maps two 4x4 tiles cover 8 columns where three 2x2 cover 6:
// 64 channels on 6x6 0.93 / 0.96 / 0.67x, 128 on 5x5 0.86 / 0.85 / 0.73x; from 7 wide it gains (128 channels
// on 7x7 1.40 / 1.40 / 1.22x).
//
// F(4x4, 5x5) against F(2x2, 5x5) (1 thread, full-width AVX-512 Xeon, forward / dx / dw, fastest of 5
// alternated calls): 64 images, 32 -> 64 on 14x14 (the convnet's and the BatchNorm net's conv2) 1.67 / 1.77 /
// 1.65x, on 7x7 1.74 / 1.86 / 1.84x, on 5x5 and 6x6 (two tiles of 4 for 5 or 6 columns) 1.16-1.25x, 16 -> 32
// on 28x28 1.83 / 1.83 / 1.72x, 8 -> 16 on 16x16 1.27 / 1.40 / 1.63x, 128 channels on 7x7 1.71 / 1.70 /
// 1.86x; at 2 threads 1.37-1.71x on the 32 -> 64 layers; the AVX2 table on the same CPU (NNX_ISA=avx2) 32 -> 64
// on 7x7 2.27 / 2.72 / 2.22x, 8 -> 16 on 16x16 1.03 / 1.01 / 1.22x. With 256 channels (16 images of 14x14) the
// forward and dx gained 1.49 / 1.58x but the weight gradient lost (0.34x: 64 planes of 256 x 256 partial sums),
// so wider layers keep F(2x2, 5x5).
int conv_winograd_tile(const ConvGeom& g) {
  if (forced_tile) return forced_tile;
  if (g.R == 5) return std::max(g.C, g.K) <= 128 ? 4 : 2;
  return g.Q >= 7 && std::max(g.C, g.K) <= 128 ? 4 : 2;
}

bool conv_winograd_applies(const ConvGeom& g, std::string* why) {
  if ((g.R == 3 || g.R == 5) && g.S == g.R && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.groups == 1)
    return true;
  if (why) *why = "a 3x3 or 5x5 kernel with stride 1, dilation 1 and one group";
  return false;
}

template <class T>
void conv_winograd_forward(const ConvGeom& g, const T* x, const T* w, bool flipped, const T* b, T* y, Act act,
                           T slope, int nthreads) {
  if (g.N == 0) return;
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const GemmUkernels<T>& gk = gemm_ukernels<T>();
  const int64_t MR = gk.blocking.mr, NR = gk.blocking.nr, K = g.K, C = g.C;
  const int64_t TP = wino_tiles_p(g), TQ = wino_tiles_q(g), tile_rows = g.N * TP;
  const int64_t Kp = round_up(K, MR);  // the products keep the packed filters' zero rows: full micro-tiles
  const int wi = wino_index(g);
  const int xis = wino_points(g);

  // The filters transformed, each point's straight into its GEMM's packed A operand (planes a cache line more than
  // their Kp C apart, so that the transform's alpha^2 stores at one offset do not share an L1 set). Split between
  // the threads in ranges of filters: for a batch of a few images it is much of the call (at 2 threads, 4 images:
  // 128 -> 128 on 16x16 0.95 -> 0.61 ms, 256 -> 256 on 8x8 2.05 -> 1.12 ms, when both shares were on one).
  const int64_t ldu = Kp * C + 64 / static_cast<int64_t>(sizeof(T));
  T* upack = workspace_as<T>(kWsConvPack, xis * ldu + kern.wino_filter_scratch[wi](g));
  T* taps = upack + xis * ldu;
  parallel_for(Kp * C, kWinoFilterGrain, nthreads, [&](int64_t i0, int64_t i1) {
    kern.wino_weights[wi](g, w, flipped, upack, ldu, MR, taps, i0, i1);
  }, 16);

  // Bands of whole tile rows within the L2 budget. The GEMMs run whole slivers of NR tiles, so among the
  // sizes from half the budget up, the band whose tiles fill their slivers best (49 tiles in 2 slivers of
  // 32 waste 23% of the multiply-adds, 63 tiles 2%); the largest of equals.
  const int64_t budget_tiles = std::max<int64_t>(NR, wino_band_bytes(g) / int64_t(sizeof(T)) / (xis * (C + Kp)));
  const int64_t max_rows = std::clamp<int64_t>(budget_tiles / TQ, 1, tile_rows);
  int64_t rows = max_rows;
  double best_fill = 0;
  for (int64_t r = max_rows; r >= std::max<int64_t>(1, max_rows / 2); --r) {
    const double tiles = static_cast<double>(std::min(r, tile_rows) * TQ);
    const double fill = tiles / static_cast<double>(round_up(static_cast<int64_t>(tiles), NR));
    if (fill > best_fill + 1e-9) best_fill = fill, rows = r;
  }
  // Fewer bands than threads (a few images): smaller bands, or each band's filters split between threads (every
  // part transforms the band's input again), whichever keeps the threads' GEMMs fullest. Bands cut below a
  // sliver of tiles left it part-empty: 8 images of 8x8 (64 -> 64, F(4x4)) are 32 tiles, one sliver of the 8 x
  // 32 tile; two bands of 16 ran two half-empty slivers, no faster at 2 threads than one band at 1. The
  // cost of a unit, in multiply-adds per input channel and point: its slivers' NR columns times its filters,
  // plus kWinoInputCost per tile for the input's transform. Which band and which part a tile's filter falls in
  // never change its sums, so neither does the thread count.
  int64_t kparts = 1;
  if (ceil_div(tile_rows, rows) < nthreads) {
    const int64_t kmr = Kp / MR;
    int64_t rows_at = rows;
    double best = 0;
    for (int64_t r = rows; r >= 1; --r) {
      const int64_t nb = ceil_div(tile_rows, r), tiles = std::min(r, tile_rows) * TQ;
      for (int64_t kp = 1; kp <= kmr; ++kp) {
        const double unit = double(ceil_div(tiles, NR) * NR * ceil_div(kmr, kp) * MR) + kWinoInputCost * double(tiles);
        const double wall = double(ceil_div(nb * kp, int64_t{nthreads})) * unit;
        if (best == 0 || wall < best * (1 - 1e-9)) best = wall, rows_at = r, kparts = kp;
      }
    }
    rows = rows_at;
  }
  const int64_t bands = (tile_rows + rows - 1) / rows;
  const int64_t kmr_per = ceil_div(Kp / MR, kparts);  // micro-tile rows of filters a part multiplies
  const int64_t max_slivers = (rows * TQ + NR - 1) / NR;
  const int64_t sl_stride = round_up(C * NR, 16);  // keeps every sliver 64-byte aligned (aligned B loads)
  const int64_t v_elems = xis * (max_slivers * sl_stride + kPlanePad<T>);
  const int64_t m_elems = xis * (Kp * max_slivers * NR + kPlanePad<T>);
  const int64_t scratch = v_elems + m_elems + kern.wino_scratch[wi](g);

  parallel_for_each(bands * kparts, kWinoBandGrain, nthreads, [&](int64_t unit) {
    const int64_t band = unit / kparts, part = unit % kparts;
    const int64_t kr0 = std::min(Kp, part * kmr_per * MR), kr1 = std::min(Kp, kr0 + kmr_per * MR);
    if (kr0 >= kr1) return;
    const int64_t gr0 = band * rows, nrows = std::min(rows, tile_rows - gr0);
    const int64_t slivers = (nrows * TQ + NR - 1) / NR, ldm = slivers * NR;
    const int64_t v_xi = slivers * sl_stride + kPlanePad<T>, m_xi = Kp * ldm + kPlanePad<T>;
    T* v = workspace_as<T>(kWsConvCol, scratch);
    T* m = v + v_elems;
    T* s = m + m_elems;
    kern.wino_input[wi](g, x, gr0, nrows, v, NR, sl_stride, v_xi, s);
    // The GEMMs run whole slivers: a part-filled last one is zero past its tiles.
    if (const int64_t tail = (nrows * TQ) % NR)
      for (int xi = 0; xi < xis; ++xi)
        for (int64_t c = 0; c < C; ++c)
          std::fill_n(v + xi * v_xi + (slivers - 1) * sl_stride + c * NR + tail, NR - tail, T(0));
    for (int xi = 0; xi < xis; ++xi) {
      const T* ux = upack + xi * ldu;
      for (int64_t sl = 0; sl < slivers; ++sl) {
        const T* vs = v + xi * v_xi + sl * sl_stride;
        T* ms = m + xi * m_xi + sl * NR;
        for (int64_t k0 = kr0; k0 < kr1; k0 += MR)
          gk.ukernel(C, ux + k0 * C, vs, ms + k0 * ldm, ldm, 1, MR, NR, T(1), T(0));
      }
    }
    kern.wino_output[wi](g, m, ldm, m_xi, gr0, nrows, kr0, std::min(K, kr1), b, y, act, slope, s);
  });
}

template <class T>
void conv_winograd_dw_chunk(const ConvGeom& g, const T* x, const T* dz, int64_t n0, int64_t nimg, T* du,
                            int nthreads) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int64_t K = g.K, C = g.C, TP = wino_tiles_p(g), TQ = wino_tiles_q(g), tile_rows = nimg * TP;
  const int wi = wino_index(g);
  const int xis = wino_points(g);
  const int64_t budget_tiles =
      std::max<int64_t>(kWinoDwMinTiles, wino_band_bytes(g) / int64_t(sizeof(T)) / (xis * (C + K)));
  const int64_t rows = std::clamp<int64_t>(budget_tiles / TQ, 1, tile_rows);
  const int64_t ld = round_up(rows * TQ, 16);
  const int64_t v_xi = C * ld + kPlanePad<T>, y_xi = K * ld + kPlanePad<T>;
  const int64_t slab = std::max(kern.wino_scratch[wi](g), kern.wino_dy_scratch[wi](g));
  T* v = workspace_as<T>(kWsConvCol, xis * (v_xi + y_xi));
  T* yh = v + xis * v_xi;
  // The threads share a chunk: the band's transforms split by tile rows (each range's columns of the one
  // sliver, from a multiple of 16 values on), then the points' products split between them. A point's product
  // is its own sum, whoever computes it, so the bits are those of one thread.
  const int64_t row_align = 16 / std::gcd<int64_t>(16, TQ);
  for (int64_t r0 = 0; r0 < tile_rows; r0 += rows) {
    const int64_t gr0 = n0 * TP + r0, nrows = std::min(rows, tile_rows - r0), ntiles = nrows * TQ;
    // The inputs' transforms as one sliver of all the band's tiles: v[xi][c][t].
    parallel_for(nrows, kWinoDwRowGrain, nthreads, [&](int64_t lo, int64_t hi) {
      T* s = workspace_as<T>(kWsConvAux, slab);
      kern.wino_input[wi](g, x, gr0 + lo, hi - lo, v + lo * TQ, ld, C * ld, v_xi, s);
      kern.wino_dy[wi](g, dz, gr0 + lo, hi - lo, yh + lo * TQ, ld, y_xi, s);
    }, row_align);
    // dU[xi] (K x C) += Yh[xi] (K x tiles) V[xi]^T (tiles x C), the bands in order.
    parallel_for(xis, Grain{1}, nthreads, [&](int64_t x0, int64_t x1) {
      for (int64_t xi = x0; xi < x1; ++xi)
        gemm<T>(K, C, ntiles, T(1), yh + xi * y_xi, ld, 1, v + xi * v_xi, 1, ld, r0 == 0 ? T(0) : T(1),
                du + xi * wino_point_stride(g), C, 1, 1);
    });
  }
}

template <class T>
void conv_winograd_dw_finish(const ConvGeom& g, const T* du, T* dw) {
  const ConvUkernels<T>& kern = conv_ukernels<T>();
  const int wi = wino_index(g);
  kern.wino_weights_grad[wi](g, du, dw, workspace_as<T>(kWsConvCol, kern.wino_filter_scratch[wi](g)));
}

template void conv_winograd_forward<float>(const ConvGeom&, const float*, const float*, bool, const float*, float*,
                                           Act, float, int);
template void conv_winograd_forward<double>(const ConvGeom&, const double*, const double*, bool, const double*,
                                            double*, Act, double, int);
template void conv_winograd_dw_chunk<float>(const ConvGeom&, const float*, const float*, int64_t, int64_t, float*,
                                            int);
template void conv_winograd_dw_chunk<double>(const ConvGeom&, const double*, const double*, int64_t, int64_t,
                                             double*, int);
template void conv_winograd_dw_finish<float>(const ConvGeom&, const float*, float*);
template void conv_winograd_dw_finish<double>(const ConvGeom&, const double*, double*);

}  // namespace nnx
