// Portable dropout kernel: one hash per element; ordinary stores whatever past_caches says (no streaming stores
// in portable C++).
#include "dropout/dropout_hash.h"
#include "dropout/dropout_ukernels.h"

namespace nnx {
namespace {

template <class T>
void apply_portable(const T* x, T* y, int64_t n, uint64_t start, uint32_t k0, uint32_t k1, uint32_t threshold,
                    T scale, bool) {
  for (int64_t j = 0; j < n; ++j)
    y[j] = x[j] * (dropout_bits(start + static_cast<uint64_t>(j), k0, k1) >= threshold ? scale : T(0));
}

template <class T>
void apply_save_portable(const T* x, T* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                         uint32_t threshold, T scale, bool) {
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    unsigned byte = 0;
    for (int64_t j = j0; j < n && j < j0 + 8; ++j) {
      const bool kept = dropout_bits(start + static_cast<uint64_t>(j), k0, k1) >= threshold;
      y[j] = x[j] * (kept ? scale : T(0));
      byte |= static_cast<unsigned>(kept) << (j - j0);
    }
    bits[j0 / 8] = static_cast<uint8_t>(byte);
  }
}

template <class T>
void apply_from_bits_portable(const T* dy, T* dx, const uint8_t* bits, int64_t n, T scale, bool) {
  for (int64_t j = 0; j < n; ++j) dx[j] = dy[j] * ((bits[j / 8] >> (j % 8)) & 1u ? scale : T(0));
}

}  // namespace

template <class T>
void dropout_ukernels_fill_portable(DropoutUkernels<T>& table) {
  table.name = sizeof(T) == 4 ? "dropout_portable_f32" : "dropout_portable_f64";
  table.apply = apply_portable<T>;
  table.apply_save = apply_save_portable<T>;
  table.apply_from_bits = apply_from_bits_portable<T>;
}

template void dropout_ukernels_fill_portable<float>(DropoutUkernels<float>&);
template void dropout_ukernels_fill_portable<double>(DropoutUkernels<double>&);

}  // namespace nnx
