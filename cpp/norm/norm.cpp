// Drivers of the normalization family: cut each reduction into shape-fixed chunks (norm.h), spread the
// chunks over threads, merge the chunk results in chunk order on the calling thread, then run the
// element-wise pass.
#include "norm/norm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/isa_table.h"
#include "common/stream_store.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "norm/norm_ukernels.h"

namespace nnx {

template <class T>
const NormUkernels<T>& norm_ukernels() {
  static const IsaTable<NormUkernels<T>> table(
      IsaFills<NormUkernels<T>>{norm_ukernels_fill_portable<T>, NNX_X86_FILL(norm_ukernels_fill_avx2<T>),
                                NNX_X86_FILL(norm_ukernels_fill_avx512<T>)});
  return table.active();
}
template const NormUkernels<float>& norm_ukernels<float>();
template const NormUkernels<double>& norm_ukernels<double>();

namespace {

// Columns of an (N, C) block handed to one task: a few KB of each row, so a block stays in L1/L2.
constexpr int64_t kColumnGroup = 512;
// Layer-norm backward: elements of x per block of rows whose dweight/dbias partials one task owns.
constexpr int64_t kLnBlockElems = 16 * kNormChunk;


// Where the reduction chunks of a batch-norm input (N, C, S) lie. Row mode (S == 1): chunk k is rows
// [k * rows_per, ...) of every column. Plane mode (S > 1): a plane longer than kNormChunk is cut into
// per_plane pieces; shorter planes of one channel are grouped, `planes` consecutive n per chunk, so a chunk
// holds about kNormChunk elements either way. Partials of channel c, chunk k sit at index(c, k).
struct BnChunks {
  int64_t N, C, S;
  bool rows;
  int64_t per_plane = 1;  // plane mode: chunks along one plane
  int64_t planes = 1;     // plane mode: planes per chunk
  int64_t rows_per = 1;   // row mode: rows per chunk
  int64_t count = 0;      // chunks per channel

  BnChunks(int64_t n, int64_t c, int64_t s) : N(n), C(c), S(s), rows(s == 1) {
    if (rows) {
      rows_per = std::max<int64_t>(8, kNormChunk / std::max<int64_t>(C, 1));
      count = (N + rows_per - 1) / rows_per;
    } else {
      per_plane = (S + kNormChunk - 1) / kNormChunk;
      planes = per_plane == 1 ? std::max<int64_t>(1, kNormChunk / std::max<int64_t>(S, 1)) : 1;
      count = (N + planes - 1) / planes * per_plane;
    }
  }
  int64_t index(int64_t c, int64_t k) const { return rows ? k * C + c : c * count + k; }
  // index(c, k) = index(0, k) + c * channel_stride(): chunk k's partials of consecutive channels.
  int64_t channel_stride() const { return rows ? 1 : count; }
  // Plane mode: runs (planes) and elements per run of chunk k.
  int64_t runs(int64_t k) const { return std::min(planes, N - (k / per_plane) * planes); }
  int64_t len(int64_t k) const { return std::min(kNormChunk, S - (k % per_plane) * kNormChunk); }
  int64_t size(int64_t k) const {  // elements of one channel in chunk k
    return rows ? std::min(rows_per, N - k * rows_per) : runs(k) * len(k);
  }
  int64_t groups() const { return (C + kColumnGroup - 1) / kColumnGroup; }
  // Row mode: chunk-tasks are (chunk, column group); plane mode: (channel, chunk).
  int64_t tasks() const { return rows ? count * groups() : C * count; }
  Grain grain() const {
    const int64_t elems = rows ? rows_per * std::min(C, kColumnGroup) : planes * std::min(S, kNormChunk);
    return Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(elems, 1))};
  }
};

// Scratch of one batch-norm call: two partial arrays (double) and four per-channel vectors (T).
template <class T>
struct BnScratch {
  double* p1;
  double* p2;
  double *sum, *m2;  // per channel, while the chunks' partials are combined (the forward's sums, the backward's)
  T *m, *a, *b, *d;
  BnScratch(const BnChunks& ch) {
    const size_t parts = static_cast<size_t>((ch.count + 1) * ch.C);
    const size_t vec = (static_cast<size_t>(ch.C) * sizeof(T) + 63) / 64 * 64;
    char* base = static_cast<char*>(workspace(kWsMisc, 2 * parts * sizeof(double) + 4 * vec));
    p1 = reinterpret_cast<double*>(base);
    p2 = p1 + parts;
    sum = p1 + ch.count * ch.C;
    m2 = p2 + ch.count * ch.C;
    char* v = base + 2 * parts * sizeof(double);
    m = reinterpret_cast<T*>(v);
    a = reinterpret_cast<T*>(v + vec);
    b = reinterpret_cast<T*>(v + 2 * vec);
    d = reinterpret_cast<T*>(v + 3 * vec);
  }
};

// Runs body(c0, w, k, offset, runs, len) for every chunk task. Row mode: a block of `runs` rows and the w
// columns from c0 (offset of its first element; len unused). Plane mode: chunk k of channel c0 (w = 1),
// `runs` runs of `len` elements C * S apart from offset.
template <class F>
void for_each_chunk(const BnChunks& ch, int nthreads, F body) {
  parallel_for_each(ch.tasks(), ch.grain(), nthreads, [&](int64_t t) {
    if (ch.rows) {
      const int64_t k = t / ch.groups(), c0 = (t % ch.groups()) * kColumnGroup;
      body(c0, std::min(kColumnGroup, ch.C - c0), k, k * ch.rows_per * ch.C + c0, ch.size(k), int64_t{0});
    } else {
      const int64_t c = t / ch.count, k = t % ch.count;
      const int64_t n0 = (k / ch.per_plane) * ch.planes, j = k % ch.per_plane;
      body(c, int64_t{1}, k, (n0 * ch.C + c) * ch.S + j * kNormChunk, ch.runs(k), ch.len(k));
    }
  });
}

// The element-wise pass: plane_body(p, c) for every (n, c) plane p = n * C + c, or rows_body(r0, r1).
template <class Planes, class Rows>
void for_each_plane(const BnChunks& ch, int nthreads, Planes plane_body, Rows rows_body) {
  if (ch.rows) {
    parallel_for(ch.N, Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(ch.C, 1))}, nthreads,
                 rows_body);
  } else {
    parallel_for(ch.N * ch.C, Grain{std::max<int64_t>(1, kElementwiseGrain.units / ch.S)}, nthreads,
                 [&](int64_t b, int64_t e) {
                   for (int64_t p = b, c = b % ch.C; p < e; ++p, c = c + 1 == ch.C ? 0 : c + 1) plane_body(p, c);
                 });
  }
}

// The backward one channel at a time (plane mode): its sums' pass brings the channel's dy, x (and y) into L2,
// and its dx pass reads them back from there instead of from memory. Worth it while a channel fits well in
// L2, its planes are long enough to stream (a channel's planes lie C * S apart; with 256-byte planes the
// same order made the 64 x 64 x 8 x 8 forward 0.77x, while the 784-byte planes of 64 x 64 x 14 x 14 gained
// 1.13x, 1.27x with the fused ReLU, at 1 thread) and there are channels enough for every thread. Per
// channel: the same chunks, partials, combination order and arithmetic as the two-sweep form below, so the
// same bits. The forward gains nothing from this order inside a network, whose conv has just left x partly
// in L2 (ResNet-20's BN forward 0.97-1.03x), so it keeps its sweeps.
constexpr int64_t kChannelInL2Bytes = 1 << 20;
constexpr int64_t kChannelPlaneMinBytes = 512;

inline bool channel_at_a_time(const BnChunks& ch, bool masked, size_t elem, int nthreads) {
  const int64_t plane = ch.S * static_cast<int64_t>(elem);
  const int64_t bytes = ch.N * plane * (masked ? 3 : 2);
  return !ch.rows && plane >= kChannelPlaneMinBytes && bytes <= kChannelInL2Bytes &&
         ch.C >= 2 * static_cast<int64_t>(std::max(nthreads, 1));
}

template <class T>
void batch_norm_backward_by_channel(const NormUkernels<T>& k, const BnChunks& ch, BnScratch<T>& s, const T* dy,
                                    const T* x, const T* y, T* dx, const T* weight, const T* mean,
                                    const T* invstd, bool training, T* dweight, T* dbias, int nthreads) {
  const int64_t C = ch.C, S = ch.S;
  const double n = static_cast<double>(ch.N) * static_cast<double>(S);
  parallel_for_each(C, Grain{1}, nthreads, [&](int64_t c) {
    double sum = 0, m2 = 0;
    for (int64_t q = 0; q < ch.count; ++q) {
      const int64_t n0 = (q / ch.per_plane) * ch.planes, j = q % ch.per_plane;
      const int64_t off = (n0 * C + c) * S + j * kNormChunk;
      const int64_t i = ch.index(c, q);
      k.grad_sums(dy + off, x + off, y ? y + off : nullptr, ch.runs(q), ch.len(q), C * S, mean[c], s.p1 + i, s.p2 + i);
      sum += s.p1[i];
      m2 += s.p2[i];
    }
    if (dweight) dweight[c] = static_cast<T>(m2 * static_cast<double>(invstd[c]));
    if (dbias) dbias[c] = static_cast<T>(sum);
    const double is = invstd[c], a = (weight ? static_cast<double>(weight[c]) : 1.0) * is;
    const T ta = static_cast<T>(a);
    const T tb = training ? static_cast<T>(-a * is * is * m2 / n) : T(0);
    const T td = training ? static_cast<T>(-a * sum / n) : T(0);
    for (int64_t b = 0; b < ch.N; ++b) {
      const int64_t o = (b * C + c) * S;
      k.grad_apply(dy + o, x + o, y ? y + o : nullptr, dx + o, S, mean[c], ta, tb, td);
    }
  });
}

}  // namespace

template <class T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, bool relu,
                        T* mean_out, T* invstd_out, int nthreads) {
  if (C <= 0) return;
  const auto& k = norm_ukernels<T>();
  const BnChunks ch(N, C, S);
  BnScratch<T> s(ch);
  if (training) {
    for_each_chunk(ch, nthreads, [&](int64_t c0, int64_t w, int64_t q, int64_t off, int64_t runs, int64_t len) {
      const int64_t i = ch.index(c0, q);
      if (ch.rows) k.col_moments(x + off, runs, w, C, s.p1 + i, s.p2 + i);
      else k.moments(x + off, runs, len, C * S, s.p1 + i, s.p2 + i);
    });
    const double n = static_cast<double>(N) * static_cast<double>(S);
    // The chunks' (count, mean, M2) combined exactly, in chunk order: mean = sum n_k mean_k / n,
    // M2 = sum (M2_k + n_k (mean_k - mean)^2) (Chan et al.'s formula for many parts at once). The loops over
    // the channels are innermost so they vectorise (a channel at a time, with its square root and division,
    // was a third of a 64 x 256 batch's forward); each channel's sums keep their order.
    const int64_t cs = ch.channel_stride();
    for (int64_t c = 0; c < C; ++c) s.sum[c] = s.m2[c] = 0;
    for (int64_t q = 0; q < ch.count; ++q) {
      const double size = static_cast<double>(ch.size(q)), *p1 = s.p1 + ch.index(0, q);
      for (int64_t c = 0; c < C; ++c) s.sum[c] += size * p1[c * cs];
    }
    for (int64_t c = 0; c < C; ++c) s.sum[c] /= n;  // now the mean
    for (int64_t q = 0; q < ch.count; ++q) {
      const double size = static_cast<double>(ch.size(q)), *p1 = s.p1 + ch.index(0, q), *p2 = s.p2 + ch.index(0, q);
      for (int64_t c = 0; c < C; ++c) {
        const double d = p1[c * cs] - s.sum[c];
        s.m2[c] += p2[c * cs] + size * d * d;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      s.m2[c] = std::max(0.0, s.m2[c] / n);  // now the variance
      mean_out[c] = static_cast<T>(s.sum[c]);
      invstd_out[c] = static_cast<T>(1.0 / std::sqrt(s.m2[c] + eps));
    }
    if (running_mean)
      for (int64_t c = 0; c < C; ++c)
        running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * s.sum[c]);
    if (running_var && n > 1)
      for (int64_t c = 0; c < C; ++c)
        running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * s.m2[c] * n / (n - 1));
  } else {
    for (int64_t c = 0; c < C; ++c) {
      mean_out[c] = running_mean[c];
      invstd_out[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    s.m[c] = mean_out[c];
    s.a[c] = weight ? static_cast<T>(static_cast<double>(weight[c]) * invstd_out[c]) : invstd_out[c];
    s.b[c] = bias ? bias[c] : T(0);
  }
  for_each_plane(
      ch, nthreads,
      [&](int64_t p, int64_t c) {
        k.affine(x + p * S, y + p * S, S, s.m[c], s.a[c], s.b[c], relu);
      },
      [&](int64_t r0, int64_t r1) { k.affine_rows(x + r0 * C, y + r0 * C, r1 - r0, C, s.m, s.a, s.b, relu); });
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* y, T* dx, int64_t N, int64_t C, int64_t S,
                         const T* weight, const T* mean, const T* invstd, bool training, T* dweight, T* dbias,
                         int nthreads) {
  if (C <= 0) return;
  const auto& k = norm_ukernels<T>();
  const BnChunks ch(N, C, S);
  BnScratch<T> s(ch);
  const bool need_sums = training || dweight || dbias;
  if (need_sums && dx && channel_at_a_time(ch, y != nullptr, sizeof(T), nthreads)) {
    batch_norm_backward_by_channel(k, ch, s, dy, x, y, dx, weight, mean, invstd, training, dweight, dbias, nthreads);
    return;
  }
  if (need_sums) {
    for_each_chunk(ch, nthreads, [&](int64_t c0, int64_t w, int64_t q, int64_t off, int64_t runs, int64_t len) {
      const int64_t i = ch.index(c0, q);
      const T* yo = y ? y + off : nullptr;
      if (ch.rows) k.col_grad_sums(dy + off, x + off, yo, runs, w, C, mean + c0, s.p1 + i, s.p2 + i);
      else k.grad_sums(dy + off, x + off, yo, runs, len, C * S, mean[c0], s.p1 + i, s.p2 + i);
    });
  }
  const double n = static_cast<double>(N) * static_cast<double>(S);
  // As in the forward, the chunks' partials are added with the channels innermost, in chunk order.
  for (int64_t c = 0; c < C; ++c) s.sum[c] = s.m2[c] = 0;
  const int64_t cs = ch.channel_stride();
  for (int64_t q = 0; need_sums && q < ch.count; ++q) {
    const double *p1 = s.p1 + ch.index(0, q), *p2 = s.p2 + ch.index(0, q);
    for (int64_t c = 0; c < C; ++c) {
      s.sum[c] += p1[c * cs];
      s.m2[c] += p2[c * cs];
    }
  }
  // Loops over the channels whose conditions are the same for every channel, so they vectorise.
  if (dweight)
    for (int64_t c = 0; c < C; ++c) dweight[c] = static_cast<T>(s.m2[c] * static_cast<double>(invstd[c]));
  if (dbias)
    for (int64_t c = 0; c < C; ++c) dbias[c] = static_cast<T>(s.sum[c]);
  for (int64_t c = 0; c < C; ++c) {
    const double is = invstd[c], a = (weight ? static_cast<double>(weight[c]) : 1.0) * is;
    s.m[c] = mean[c];
    s.a[c] = static_cast<T>(a);
    s.b[c] = training ? static_cast<T>(-a * is * is * s.m2[c] / n) : T(0);
    s.d[c] = training ? static_cast<T>(-a * s.sum[c] / n) : T(0);
  }
  if (!dx) return;
  for_each_plane(
      ch, nthreads,
      [&](int64_t p, int64_t c) {
        k.grad_apply(dy + p * S, x + p * S, y ? y + p * S : nullptr, dx + p * S, S, s.m[c], s.a[c], s.b[c], s.d[c]);
      },
      [&](int64_t r0, int64_t r1) {
        const int64_t o = r0 * C;
        k.grad_apply_rows(dy + o, x + o, y ? y + o : nullptr, dx + o, r1 - r0, C, s.m, s.a, s.b, s.d);
      });
}

template <class T>
void layer_norm_forward(const T* x, T* y, int64_t R, int64_t D, const T* weight, const T* bias, double eps,
                        T* mean_out, T* invstd_out, int nthreads) {
  if (D <= 0) {  // statistics of no values: NaN, as the mean of an empty array
    for (int64_t r = 0; r < R; ++r) mean_out[r] = invstd_out[r] = std::numeric_limits<T>::quiet_NaN();
    return;
  }
  if (R <= 0) return;
  const auto& k = norm_ukernels<T>();
  const Grain rows{std::max<int64_t>(1, kElementwiseGrain.units / D)};
  const bool past_caches = stores_past_caches(R * D * static_cast<int64_t>(sizeof(T)), x == y);
  parallel_for(R, rows, nthreads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double m, m2;
      k.moments(x + r * D, 1, D, D, &m, &m2);
      const T mt = static_cast<T>(m);
      const T is = static_cast<T>(1.0 / std::sqrt(std::max(0.0, m2 / static_cast<double>(D)) + eps));
      mean_out[r] = mt;
      invstd_out[r] = is;
      k.ln_apply(x + r * D, y + r * D, D, mt, is, weight, bias, past_caches);
    }
    if (past_caches) stream_fence();
  });
}

template <class T>
void layer_norm_backward(const T* dy, int64_t ldy, const T* x, T* dx, int64_t R, int64_t D, const T* weight,
                         const T* mean, const T* invstd, T* dweight, T* dbias, int nthreads) {
  if (R <= 0 || D <= 0) {
    for (int64_t i = 0; i < D; ++i) {
      if (dweight) dweight[i] = T(0);
      if (dbias) dbias[i] = T(0);
    }
    return;
  }
  const auto& k = norm_ukernels<T>();
  const int64_t per = std::max<int64_t>(1, kLnBlockElems / D);  // rows per block
  const int64_t blocks = (R + per - 1) / per;
  const bool partials = dweight || dbias;
  T* acc = partials ? workspace_as<T>(kWsMisc, static_cast<size_t>(2 * blocks * D)) : nullptr;
  const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / (per * D))};
  const bool past_caches = dx && stores_past_caches(R * D * static_cast<int64_t>(sizeof(T)), dx == dy || dx == x);
  parallel_for_each(blocks, grain, nthreads, [&](int64_t b) {
    T* aw = dweight ? acc + 2 * b * D : nullptr;
    T* ab = dbias ? acc + (2 * b + 1) * D : nullptr;
    for (int64_t i = 0; i < D; ++i) {
      if (aw) aw[i] = T(0);
      if (ab) ab[i] = T(0);
    }
    for (int64_t r = b * per; r < std::min(R, (b + 1) * per); ++r) {
      const T* dyr = dy + r * ldy;
      const T* xr = x + r * D;
      T c1 = 0, c2 = 0;
      if (dx) {
        double s1, s2;
        k.ln_grad_sums(dyr, xr, weight, D, mean[r], invstd[r], &s1, &s2);
        c1 = static_cast<T>(s1 / static_cast<double>(D));
        c2 = static_cast<T>(s2 / static_cast<double>(D));
      }
      const bool more = r + 1 < R;
      k.ln_grad_apply(dyr, xr, weight, dx ? dx + r * D : nullptr, D, mean[r], invstd[r], c1, c2, aw, ab, past_caches,
                      more && ldy != 0 ? dyr + ldy : nullptr, more ? xr + D : nullptr);
    }
    if (past_caches) stream_fence();
  });
  if (!partials) return;
  // Column sums over the blocks, always in block order.
  parallel_for(D, Grain{std::max<int64_t>(1, kElementwiseGrain.units / (2 * blocks))}, nthreads,
               [&](int64_t i0, int64_t i1) {
                 for (int64_t i = i0; i < i1; ++i) {
                   T sw = 0, sb = 0;
                   for (int64_t b = 0; b < blocks; ++b) {
                     sw += acc[2 * b * D + i];
                     sb += acc[(2 * b + 1) * D + i];
                   }
                   if (dweight) dweight[i] = sw;
                   if (dbias) dbias[i] = sb;
                 }
               });
}

template <class T>
const char* norm_ukernel_name() {
  return norm_ukernels<T>().name;
}

#define NNX_NORM_INSTANTIATE(T)                                                                             \
  template void batch_norm_forward<T>(const T*, T*, int64_t, int64_t, int64_t, const T*, const T*, T*, T*,  \
                                      bool, double, double, bool, T*, T*, int);                             \
  template void batch_norm_backward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t,         \
                                       const T*, const T*, const T*, bool, T*, T*, int);                    \
  template void layer_norm_forward<T>(const T*, T*, int64_t, int64_t, const T*, const T*, double, T*, T*,   \
                                      int);                                                                 \
  template void layer_norm_backward<T>(const T*, int64_t, const T*, T*, int64_t, int64_t, const T*,        \
                                       const T*, const T*, T*, T*, int);                                    \
  template const char* norm_ukernel_name<T>();
NNX_NORM_INSTANTIATE(float)
NNX_NORM_INSTANTIATE(double)
#undef NNX_NORM_INSTANTIATE

}  // namespace nnx
