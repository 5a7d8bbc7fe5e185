// Driver of the maxout family: splits the rows of maxout.h's view across threads. Each output element
// depends on its own row only, so any split gives the same bits.
#include "maxout/maxout.h"

#include <algorithm>

#include "common/isa_table.h"
#include "common/threads.h"
#include "maxout/maxout_ukernels.h"

namespace nnx {

template <class T>
const MaxoutUkernels<T>& maxout_ukernels() {
  static const IsaTable<MaxoutUkernels<T>> table(IsaFills<MaxoutUkernels<T>>{
      maxout_ukernels_fill_portable<T>, NNX_X86_FILL(maxout_ukernels_fill_avx2<T>)});
  return table.active();
}
template const MaxoutUkernels<float>& maxout_ukernels<float>();
template const MaxoutUkernels<double>& maxout_ukernels<double>();

namespace {

// One pass over memory per row: a thread should get kElementwiseGrain input elements at least.
Grain row_grain(const MaxoutShape& s) {
  return Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(1, s.pieces * s.inner))};
}

}  // namespace

template <class T>
void maxout_forward(const MaxoutShape& s, const T* x, T* y, int nthreads) {
  const auto& k = maxout_ukernels<T>();
  const int64_t in_row = s.pieces * s.inner;
  parallel_for(s.rows(), row_grain(s), nthreads, [&](int64_t b, int64_t e) {
    k.forward(x + b * in_row, y + b * s.inner, e - b, s.pieces, s.inner);
  });
}

template <class T>
void maxout_backward(const MaxoutShape& s, const T* dy, const T* x, T* dx, int nthreads) {
  const auto& k = maxout_ukernels<T>();
  const int64_t in_row = s.pieces * s.inner;
  parallel_for(s.rows(), row_grain(s), nthreads, [&](int64_t b, int64_t e) {
    k.backward(dy + b * s.inner, x + b * in_row, dx + b * in_row, e - b, s.pieces, s.inner);
  });
}

template <class T>
const char* maxout_ukernel_name() {
  return maxout_ukernels<T>().name;
}

template void maxout_forward<float>(const MaxoutShape&, const float*, float*, int);
template void maxout_forward<double>(const MaxoutShape&, const double*, double*, int);
template void maxout_backward<float>(const MaxoutShape&, const float*, const float*, float*, int);
template void maxout_backward<double>(const MaxoutShape&, const double*, const double*, double*, int);
template const char* maxout_ukernel_name<float>();
template const char* maxout_ukernel_name<double>();

}  // namespace nnx
