// Drivers of the normalization family: cut each reduction into shape-fixed chunks (norm.h), spread the
// chunks over threads, merge the chunk results in chunk order on the calling thread, then run the
// element-wise pass.
#include "norm/norm.h"

#include <algorithm>
#include <cmath>

#include "common/isa_table.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "norm/norm_ukernels.h"

namespace nnx {

template <class T>
const NormUkernels<T>& norm_ukernels() {
  static const IsaTable<NormUkernels<T>> table(
      IsaFills<NormUkernels<T>>{norm_ukernels_fill_portable<T>, NNX_X86_FILL(norm_ukernels_fill_avx2<T>)});
  return table.active();
}
template const NormUkernels<float>& norm_ukernels<float>();
template const NormUkernels<double>& norm_ukernels<double>();

namespace {

// Columns of an (N, C) block handed to one task: a few KB of each row, so a block stays in L1/L2.
constexpr int64_t kColumnGroup = 512;
// Layer-norm backward: elements of x per block of rows whose dweight/dbias partials one task owns.
constexpr int64_t kLnBlockElems = 16 * kNormChunk;

// Running (count, mean, M2) merged chunk by chunk with Chan et al.'s pairwise update.
struct Moments {
  double n = 0, mean = 0, m2 = 0;
  void add(double nb, double mb, double m2b) {
    if (nb <= 0) return;
    const double tot = n + nb, delta = mb - mean;
    mean += delta * (nb / tot);
    m2 += m2b + delta * delta * (n * nb / tot);
    n = tot;
  }
};

// Where the reduction chunks of a batch-norm input (N, C, S) lie. Plane mode (S > 1): chunk j of plane
// (n, c) is elements [j * kNormChunk, ...) of that plane. Row mode (S == 1): chunk k is rows
// [k * rows_per, ...) of every column. Partials of channel c, chunk k sit at index(c, k).
struct BnChunks {
  int64_t N, C, S;
  bool rows;
  int64_t per_plane = 1;  // plane mode: chunks per plane
  int64_t rows_per = 1;   // row mode: rows per chunk
  int64_t count = 0;      // chunks per channel

  BnChunks(int64_t n, int64_t c, int64_t s) : N(n), C(c), S(s), rows(s == 1) {
    if (rows) {
      rows_per = std::max<int64_t>(8, kNormChunk / std::max<int64_t>(C, 1));
      count = (N + rows_per - 1) / rows_per;
    } else {
      per_plane = (S + kNormChunk - 1) / kNormChunk;
      count = N * per_plane;
    }
  }
  int64_t index(int64_t c, int64_t k) const { return rows ? k * C + c : c * count + k; }
  int64_t size(int64_t k) const {  // elements of one channel in chunk k
    if (rows) return std::min(rows_per, N - k * rows_per);
    const int64_t j = k % per_plane;
    return std::min(kNormChunk, S - j * kNormChunk);
  }
  int64_t groups() const { return (C + kColumnGroup - 1) / kColumnGroup; }
  // Row mode: chunk-tasks are (chunk, column group); plane mode: (plane, chunk of the plane).
  int64_t tasks() const { return rows ? count * groups() : N * C * per_plane; }
  Grain grain() const {
    const int64_t elems = rows ? rows_per * std::min(C, kColumnGroup) : std::min(S, kNormChunk);
    return Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(elems, 1))};
  }
};

// Scratch of one batch-norm call: two partial arrays (double) and four per-channel vectors (T).
template <class T>
struct BnScratch {
  double* p1;
  double* p2;
  T *m, *a, *b, *d;
  BnScratch(const BnChunks& ch) {
    const size_t parts = static_cast<size_t>(ch.count * ch.C);
    const size_t vec = (static_cast<size_t>(ch.C) * sizeof(T) + 63) / 64 * 64;
    char* base = static_cast<char*>(workspace(kWsMisc, 2 * parts * sizeof(double) + 4 * vec));
    p1 = reinterpret_cast<double*>(base);
    p2 = p1 + parts;
    char* v = base + 2 * parts * sizeof(double);
    m = reinterpret_cast<T*>(v);
    a = reinterpret_cast<T*>(v + vec);
    b = reinterpret_cast<T*>(v + 2 * vec);
    d = reinterpret_cast<T*>(v + 3 * vec);
  }
};

// Runs body(c0, w, k, x_offset, len) for every chunk task: in row mode a block of `len` rows and the w
// columns from c0 (offset of its first element); in plane mode one chunk of `len` elements of channel c0.
template <class F>
void for_each_chunk(const BnChunks& ch, int nthreads, F body) {
  parallel_for_each(ch.tasks(), ch.grain(), nthreads, [&](int64_t t) {
    if (ch.rows) {
      const int64_t k = t / ch.groups(), c0 = (t % ch.groups()) * kColumnGroup;
      body(c0, std::min(kColumnGroup, ch.C - c0), k, k * ch.rows_per * ch.C + c0, ch.size(k));
    } else {
      const int64_t plane = t / ch.per_plane, j = t % ch.per_plane;
      const int64_t n = plane / ch.C, c = plane % ch.C;
      body(c, int64_t{1}, n * ch.per_plane + j, plane * ch.S + j * kNormChunk, ch.size(j));
    }
  });
}

// The element-wise pass over every (n, c) plane or row block.
template <class T, class Planes, class Rows>
void for_each_plane(const BnChunks& ch, int nthreads, Planes plane_body, Rows rows_body) {
  if (ch.rows) {
    parallel_for(ch.N, Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(ch.C, 1))}, nthreads,
                 rows_body);
  } else {
    parallel_for_each(ch.N * ch.C, Grain{std::max<int64_t>(1, kElementwiseGrain.units / ch.S)}, nthreads,
                      plane_body);
  }
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
    for_each_chunk(ch, nthreads, [&](int64_t c0, int64_t w, int64_t q, int64_t off, int64_t len) {
      const int64_t i = ch.index(c0, q);
      if (ch.rows) k.col_moments(x + off, len, w, C, s.p1 + i, s.p2 + i);
      else k.moments(x + off, len, s.p1 + i, s.p2 + i);
    });
    const double n = static_cast<double>(N) * static_cast<double>(S);
    for (int64_t c = 0; c < C; ++c) {
      Moments mo;
      for (int64_t q = 0; q < ch.count; ++q) mo.add(static_cast<double>(ch.size(q)), s.p1[ch.index(c, q)], s.p2[ch.index(c, q)]);
      const double var = std::max(0.0, mo.m2 / n);
      mean_out[c] = static_cast<T>(mo.mean);
      invstd_out[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
      if (running_mean) running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * mo.mean);
      if (running_var && n > 1)
        running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * var * n / (n - 1));
    }
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
  for_each_plane<T>(
      ch, nthreads,
      [&](int64_t p) {
        const int64_t c = p % C;
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
  if (need_sums) {
    for_each_chunk(ch, nthreads, [&](int64_t c0, int64_t w, int64_t q, int64_t off, int64_t len) {
      const int64_t i = ch.index(c0, q);
      const T* yo = y ? y + off : nullptr;
      if (ch.rows) k.col_grad_sums(dy + off, x + off, yo, len, w, C, mean + c0, s.p1 + i, s.p2 + i);
      else k.grad_sums(dy + off, x + off, yo, len, mean[c0], s.p1 + i, s.p2 + i);
    });
  }
  const double n = static_cast<double>(N) * static_cast<double>(S);
  for (int64_t c = 0; c < C; ++c) {
    double s1 = 0, s2 = 0;
    if (need_sums) {
      for (int64_t q = 0; q < ch.count; ++q) {
        s1 += s.p1[ch.index(c, q)];
        s2 += s.p2[ch.index(c, q)];
      }
    }
    const double is = invstd[c];
    if (dweight) dweight[c] = static_cast<T>(s2 * is);
    if (dbias) dbias[c] = static_cast<T>(s1);
    const double a = (weight ? static_cast<double>(weight[c]) : 1.0) * is;
    s.m[c] = mean[c];
    s.a[c] = static_cast<T>(a);
    s.b[c] = training ? static_cast<T>(-a * is * is * s2 / n) : T(0);
    s.d[c] = training ? static_cast<T>(-a * s1 / n) : T(0);
  }
  if (!dx) return;
  for_each_plane<T>(
      ch, nthreads,
      [&](int64_t p) {
        const int64_t c = p % C;
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
  if (R <= 0 || D <= 0) return;
  const auto& k = norm_ukernels<T>();
  const Grain rows{std::max<int64_t>(1, kElementwiseGrain.units / D)};
  parallel_for_each(R, rows, nthreads, [&](int64_t r) {
    double m, m2;
    k.moments(x + r * D, D, &m, &m2);
    const T mt = static_cast<T>(m);
    const T is = static_cast<T>(1.0 / std::sqrt(std::max(0.0, m2 / static_cast<double>(D)) + eps));
    mean_out[r] = mt;
    invstd_out[r] = is;
    k.ln_apply(x + r * D, y + r * D, D, mt, is, weight, bias);
  });
}

template <class T>
void layer_norm_backward(const T* dy, const T* x, T* dx, int64_t R, int64_t D, const T* weight, const T* mean,
                         const T* invstd, T* dweight, T* dbias, int nthreads) {
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
  parallel_for_each(blocks, grain, nthreads, [&](int64_t b) {
    T* aw = dweight ? acc + 2 * b * D : nullptr;
    T* ab = dbias ? acc + (2 * b + 1) * D : nullptr;
    for (int64_t i = 0; i < D; ++i) {
      if (aw) aw[i] = T(0);
      if (ab) ab[i] = T(0);
    }
    for (int64_t r = b * per; r < std::min(R, (b + 1) * per); ++r) {
      const T* dyr = dy + r * D;
      const T* xr = x + r * D;
      T c1 = 0, c2 = 0;
      if (dx) {
        double s1, s2;
        k.ln_grad_sums(dyr, xr, weight, D, mean[r], invstd[r], &s1, &s2);
        c1 = static_cast<T>(s1 / static_cast<double>(D));
        c2 = static_cast<T>(s2 / static_cast<double>(D));
      }
      k.ln_grad_apply(dyr, xr, weight, dx ? dx + r * D : nullptr, D, mean[r], invstd[r], c1, c2, aw, ab);
    }
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
  template void layer_norm_backward<T>(const T*, const T*, T*, int64_t, int64_t, const T*, const T*,        \
                                       const T*, T*, T*, int);                                              \
  template const char* norm_ukernel_name<T>();
NNX_NORM_INSTANTIATE(float)
NNX_NORM_INSTANTIATE(double)
#undef NNX_NORM_INSTANTIATE

}  // namespace nnx
