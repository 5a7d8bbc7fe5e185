// Row micro-kernels of the pooling drivers (cpp/pool/pool.cpp), one table per scalar type: filled with
// the portable kernels (pool_ukernels_portable.cpp), then overridden by the active ISA's
// (pool_ukernels_avx2.cpp). Every SIMD kernel computes
// exactly what its portable twin computes, element by element in the same order of operations.
//
// A "tap" is one offset (i, j) of the pooling window: for a row of outputs o = 0..n-1 it reads the input
// x[o * stride] (x already points at the first output's element of that tap). The drivers call the tap
// kernels in row-major window order, so running reductions see the window in PyTorch's scan order.
// Pointers may be unaligned; kernels read/write only the elements named in their contract (tails use
// masked loads/stores), because the element after a row may belong to a plane another thread writes.
#pragma once
#include <cstdint>
#include <type_traits>

namespace nnx {

// PyTorch's max-pool scan step: the candidate v replaces the current maximum m when v > m or v is NaN.
template <class T>
inline bool pool_max_takes(T v, T m) {
  return v > m || v != v;
}

// Scratch rows (acc, idx) given to the tap and window kernels hold kPoolRowPad extra elements past the n
// outputs: SIMD kernels may read and write them (full vectors, no masked stores, which the loads that
// follow cannot be forwarded from: they wait for the store to retire).
constexpr int64_t kPoolRowPad = 16;

// How far scatter_add_tap may reach from dx for n outputs: it reads and writes back unchanged (adding
// -0.0) elements up to this count; the driver uses the portable kernel where that would leave the plane.
inline int64_t pool_scatter_reach(int64_t n, int64_t stride) {
  return ((n + 7) / 8) * 8 * stride + 8;
}

// The widest output row max_3x3s2_indices takes (it keeps one input row's picks on the stack).
constexpr int64_t kPool3x3s2MaxRow = 1024;

// The small planes of max_2x2s2_backward_indices_small: outputs, and dx columns a row uses.
constexpr int64_t kPoolSmallPlaneOutputs = 32;
constexpr int64_t kPoolSmallPlaneRow = 16;

template <class T>
struct PoolUkernels {
  const char* name;
  // acc[o] = v if pool_max_takes(v = x[o*stride], acc[o]) else acc[o]. acc is a padded scratch row.
  void (*max_tap)(T* acc, const T* x, int64_t n, int64_t stride);
  // Same scan with the position: where idx[o] < 0 or pool_max_takes(v, acc[o]): acc[o] = v and
  // idx[o] = off + o*stride (off: plane offset of x[0]).
  void (*max_tap_idx)(T* acc, int32_t* idx, const T* x, int64_t n, int64_t stride, int32_t off);
  // acc[o] += x[o*stride]. acc is a padded scratch row.
  void (*sum_tap)(T* acc, const T* x, int64_t n, int64_t stride);
  // dx[o*stride] += g[o]; may touch dx[0 .. pool_scatter_reach(n, stride)) (see above).
  void (*scatter_add_tap)(T* dx, const T* g, int64_t n, int64_t stride);
  // Whole windows, for outputs whose every tap is inside the input (the row's interior): tap t of output
  // o reads x[taps[t] + o*stride]; taps are in row-major window order. Reads nothing else of x.
  // y[o] = the scan's maximum (y[0 .. n) written, nothing past it).
  void (*max_window)(T* y, const T* x, int64_t n, int64_t stride, const int64_t* taps, int64_t ntaps);
  // idx[o] = taps[t] + o*stride of the element the scan picks. idx is a padded scratch row.
  void (*max_window_idx)(int32_t* idx, const T* x, int64_t n, int64_t stride, const int64_t* taps,
                         int64_t ntaps);
  // The forward with indices in one piece: y[o] = the scan's maximum and idx[o] = idx_taps[t] + o*stride
  // for the tap t the scan picks. idx_taps are the same taps in the indices' coordinates (the unpadded
  // plane's when x is a padded copy of it), so no scalar pass converts and looks up the picks afterwards.
  // Writes y[0 .. n) and idx[0 .. n), nothing past them.
  void (*max_window_argmax)(T* y, int32_t* idx, const T* x, int64_t n, int64_t stride, const int64_t* taps,
                            const int64_t* idx_taps, int64_t ntaps);
  // 2x2 windows, stride 2, no padding: r0/r1 are the two input rows of an output row of n outputs.
  // y[o] = scan of r0[2o], r0[2o+1], r1[2o], r1[2o+1].
  void (*max_2x2s2)(const T* r0, const T* r1, T* y, int64_t n);
  // d0[2o], d0[2o+1], d1[2o], d1[2o+1] = dy[o] at the element the scan picks, 0 elsewhere.
  void (*max_2x2s2_backward)(const T* r0, const T* r1, const T* dy, T* d0, T* d1, int64_t n);
  // A whole plane at once (LeNet's 10 x 10 planes have 5-output rows: a call per row cost as much as the
  // work): for output rows oh < OH of OW outputs, max_2x2s2 of input rows 2 oh and 2 oh + 1 (W wide) of
  // x, also writing idx[oh * OW + o] = the plane offset of the element the scan picks.
  void (*max_2x2s2_indices)(const T* x, T* y, int32_t* idx, int64_t OH, int64_t OW, int64_t W);
  // The backward of max_2x2s2_indices from its indices, a whole plane: the four elements of window
  // (oh, o) in dx's rows 2 oh and 2 oh + 1 = 0 + dy at the element the index names, 0 elsewhere (0 + dy
  // as a scatter-add into zeros gives it). False, the plane partly written, when some index is not one of
  // its own window's four offsets.
  bool (*max_2x2s2_backward_indices)(const int32_t* idx, const T* dy, T* dx, int64_t OH, int64_t OW, int64_t W);
  // The same for a small plane, OH * OW <= kPoolSmallPlaneOutputs and 2 * OW <= kPoolSmallPlaneRow, in one
  // piece (null where the ISA has none: the driver then scatters, as for other planes of short rows).
  bool (*max_2x2s2_backward_indices_small)(const int32_t* idx, const T* dy, T* dx, int64_t OH, int64_t OW,
                                           int64_t W);
  // 3x3 windows, stride 2, padding pad (0 or 1) on both axes, a whole H x W plane of OH x OW outputs
  // (OW <= kPool3x3s2MaxRow): y and idx as max_window_argmax gives them, padding never picked, except by
  // a window whose real elements are all -inf. Returns whether some output is -inf, for the driver to redo
  // those with the clipped scan. next (may be null): the plane to fetch into cache meanwhile, a share of its
  // lines an output row. Null where the ISA has none: the driver then runs the window kernels.
  bool (*max_3x3s2_indices)(const T* x, T* y, int32_t* idx, int64_t H, int64_t W, int64_t OH, int64_t OW,
                            int64_t pad, const T* next);
  // 2x2 windows, stride 2, no padding, `rows` output rows of n outputs at once: output row i (y + i n) from the
  // input rows a = x + 2i W and b = x + (2i + 1) W, y[i n + o] = (((a[2o] + a[2o+1]) + b[2o]) + b[2o+1]) / 4.
  // The rows of a plane, or of consecutive planes where each plane's H is 2 OH (their rows then follow one
  // another at the same pitch): LeNet-sized planes have 5-output rows, where a call per row cost as much as the
  // work (64x16x10x10: 47 us, 1 thread).
  void (*avg_2x2s2)(const T* x, T* y, int64_t rows, int64_t n, int64_t W);
  // Its backward: the four elements of window (i, o) in dx's rows 2i and 2i + 1 (columns < 2n) = dy[i n + o] / 4.
  void (*avg_2x2s2_backward)(const T* dy, T* dx, int64_t rows, int64_t n, int64_t W);
};

// Fills of the one dispatch idiom (common/isa_table.h): pool_ukernels_portable.cpp fills every entry for
// both types; pool_ukernels_avx2.cpp overrides the float entries (double keeps the portable kernels), and
// pool_ukernels_avx512.cpp the float window kernels, the 2x2 stride-2 kernels and the 3x3 stride-2 plane kernel
// of those.
template <class T>
void pool_ukernels_fill_portable(PoolUkernels<T>& table);
#if defined(NNX_X86)
void pool_ukernels_fill_avx2_f32(PoolUkernels<float>& table);
void pool_ukernels_fill_avx512_f32(PoolUkernels<float>& table);
#endif
// The portable entries alone: SIMD kernels hand the cases they do not cover (other strides, row ends near
// the plane's end) to their portable twins through it.
template <class T>
const PoolUkernels<T>& pool_ukernels_portable();
// A float-only fill as a fill of the table for T: itself for float, none for double (whose entries stay
// those of the ISA below). f is null where the ISA is not built (NNX_X86_FILL).
template <class T>
constexpr void (*pool_float_fill(void (*f)(PoolUkernels<float>&)))(PoolUkernels<T>&) {
  if constexpr (std::is_same_v<T, float>) return f;
  else return nullptr;
}

}  // namespace nnx
