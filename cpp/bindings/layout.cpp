// Bindings of the layout kernels (cpp/layout): copy_into, add_into, sum_into and zero_fill, through run_kernel
// so that a captured step records them. The ops layer calls copy_into and zero_fill while a step is captured
// (nnx.ops._checks), and copy_into for a transposed view made contiguous; its other eager copies are NumPy's,
// which give the same bits. Tensor's sum of two arrays and autograd's sum of a tensor's gradients call sum_into
// and add_into (threaded, no allocation).
#include <pybind11/numpy.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "layout/layout.h"

namespace nnx {
namespace {

// The iteration space of src and dst (same shape), strides in elements.
StridedPair pair_of(const py::array& src, const py::array& dst) {
  NNX_REQUIRE(src.ndim() == dst.ndim(), "dst: expected the shape of src");
  NNX_REQUIRE(src.ndim() <= kLayoutMaxDims, "src: at most 8 dimensions are supported");
  NNX_REQUIRE(src.itemsize() == dst.itemsize(), "dst: expected the item size of src");
  const auto item = static_cast<py::ssize_t>(src.itemsize());
  NNX_REQUIRE(reinterpret_cast<std::uintptr_t>(src.data()) % item == 0 &&
              reinterpret_cast<std::uintptr_t>(dst.data()) % item == 0,
              "src, dst: data must be aligned to the item size");
  StridedPair g;
  g.ndim = static_cast<int>(src.ndim());
  for (int d = 0; d < g.ndim; ++d) {
    NNX_REQUIRE(src.shape(d) == dst.shape(d), "dst: expected the shape of src");
    NNX_REQUIRE(src.strides(d) % item == 0 && dst.strides(d) % item == 0,
                "src, dst: strides must be multiples of the item size");
    g.shape[d] = src.shape(d);
    g.src[d] = src.strides(d) / item;
    g.dst[d] = dst.strides(d) / item;
  }
  return g;
}

template <class U>
void copy_typed(const py::array& src, py::array& dst, const StridedPair& g) {
  const U* s = static_cast<const U*>(src.data());
  U* d = static_cast<U*>(dst.mutable_data());
  run_kernel("layout_copy", {{src, Use::read}, {dst, Use::write}}, {double(sizeof(U))},
             [=](int nt) { layout_copy<U>(s, d, g, nt); });
}

void copy_into(const py::array& src, py::array& dst) {
  NNX_REQUIRE(dst.writeable(), "dst: output array is read-only");
  NNX_REQUIRE(src.dtype().is(dst.dtype()) || src.dtype().equal(dst.dtype()), "dst: expected the dtype of src");
  const StridedPair g = pair_of(src, dst);
  switch (src.itemsize()) {
    case 1: return copy_typed<uint8_t>(src, dst, g);
    case 2: return copy_typed<uint16_t>(src, dst, g);
    case 4: return copy_typed<uint32_t>(src, dst, g);
    case 8: return copy_typed<uint64_t>(src, dst, g);
    default: throw py::type_error("src: expected an item size of 1, 2, 4 or 8 bytes, got " + std::to_string(src.itemsize()));
  }
}

template <class T>
void add_typed(const py::array& src, py::array& dst) {
  const StridedPair g = pair_of(src, dst);
  const T* s = static_cast<const T*>(src.data());
  T* d = static_cast<T*>(dst.mutable_data());
  run_kernel("layout_add", {{src, Use::read}, {dst, Use::update}}, {}, [=](int nt) { layout_add<T>(s, d, g, nt); });
}

void add_into(const py::array& src, py::array& dst) {
  NNX_REQUIRE(dst.writeable(), "dst: output array is read-only");
  NNX_REQUIRE(src.dtype().equal(dst.dtype()), "dst: expected the dtype of src");
  if (is_f32(src)) add_typed<float>(src, dst);
  else if (src.dtype().kind() == 'f' && src.itemsize() == 8) add_typed<double>(src, dst);
  else throw py::type_error("src: expected a float32 or float64 array, got " + std::string(py::str(src.dtype())));
}

template <class T>
void sum_typed(const py::array& a, const py::array& b, py::array& out) {
  const T* pa = static_cast<const T*>(a.data());
  const T* pb = static_cast<const T*>(b.data());
  T* po = static_cast<T*>(out.mutable_data());
  const int64_t n = a.size();
  run_kernel("layout_sum", {{a, Use::read}, {b, Use::read}, {out, Use::write}}, {},
             [=](int nt) { layout_sum<T>(pa, pb, po, n, nt); });
}

void sum_into(const py::array& a, const py::array& b, py::array& out) {
  NNX_REQUIRE(out.writeable(), "out: output array is read-only");
  for (const py::array* arr : std::initializer_list<const py::array*>{&a, &b, &out}) {
    NNX_REQUIRE(arr->flags() & py::array::c_style, "a, b, out: expected C-contiguous arrays");
    NNX_REQUIRE(arr->dtype().equal(a.dtype()), "b, out: expected the dtype of a");
    NNX_REQUIRE(arr->ndim() == a.ndim(), "b, out: expected the shape of a");
    for (py::ssize_t d = 0; d < a.ndim(); ++d) NNX_REQUIRE(arr->shape(d) == a.shape(d),
                                                           "b, out: expected the shape of a");
  }
  if (is_f32(a)) sum_typed<float>(a, b, out);
  else if (a.dtype().kind() == 'f' && a.itemsize() == 8) sum_typed<double>(a, b, out);
  else throw py::type_error("a: expected a float32 or float64 array, got " + std::string(py::str(a.dtype())));
}

template <class T>
void scale_typed(const py::array& a, double s, py::array& out) {
  const T* pa = static_cast<const T*>(a.data());
  T* po = static_cast<T*>(out.mutable_data());
  const T st = static_cast<T>(s);
  const int64_t n = a.size();
  run_kernel("layout_scale", {{a, Use::read}, {out, Use::write}}, {s},
             [=](int nt) { layout_scale<T>(pa, st, po, n, nt); });
}

void scale_into(const py::array& a, double s, py::array& out) {
  NNX_REQUIRE(out.writeable(), "out: output array is read-only");
  for (const py::array* arr : std::initializer_list<const py::array*>{&a, &out}) {
    NNX_REQUIRE(arr->flags() & py::array::c_style, "a, out: expected C-contiguous arrays");
    NNX_REQUIRE(arr->dtype().equal(a.dtype()), "out: expected the dtype of a");
    NNX_REQUIRE(arr->size() == a.size(), "out: expected the size of a");
  }
  if (is_f32(a)) scale_typed<float>(a, s, out);
  else if (a.dtype().kind() == 'f' && a.itemsize() == 8) scale_typed<double>(a, s, out);
  else throw py::type_error("a: expected a float32 or float64 array, got " + std::string(py::str(a.dtype())));
}

void zero_fill(py::array& dst) {
  NNX_REQUIRE(dst.writeable(), "dst: output array is read-only");
  NNX_REQUIRE(dst.flags() & py::array::c_style, "dst: expected a C-contiguous array");
  uint8_t* d = static_cast<uint8_t*>(dst.mutable_data());
  const int64_t n = dst.nbytes();
  run_kernel("layout_zero", {{dst, Use::write}}, {}, [=](int nt) { layout_zero<uint8_t>(d, n, nt); });
}

}  // namespace

void bind_layout(py::module_& m) {
  m.def("copy_into", &copy_into, py::arg("src"), py::arg("dst"),
        "dst[...] = src for arrays of one shape and dtype, any strides (dst writeable).");
  m.def("add_into", &add_into, py::arg("src"), py::arg("dst"),
        "dst[...] += src for float arrays of one shape and dtype, any strides (dst's elements distinct).");
  m.def("sum_into", &sum_into, py::arg("a"), py::arg("b"), py::arg("out"),
        "out[...] = a + b for C-contiguous float arrays of one shape and dtype (out may be a or b).");
  m.def("scale_into", &scale_into, py::arg("a"), py::arg("s"), py::arg("out"),
        "out[...] = a * s for C-contiguous float arrays of one size and dtype, s rounded to it (out may be a).");
  m.def("zero_fill", &zero_fill, py::arg("dst"), "Sets every byte of a C-contiguous array to 0.");
}

}  // namespace nnx
