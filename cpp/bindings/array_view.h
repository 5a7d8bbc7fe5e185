// NumPy array -> typed view (pointer, shape, strides in elements) for the bindings. The Python ops
// layer has already normalised dtypes and produced clear errors; these checks are the last line that
// keeps a wrong call from reaching a kernel with a bad pointer: they raise, never crash.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace nnx {
namespace py = pybind11;

// The bytes of a C-contiguous array of `shape` and `dt`, refused when a dimension is negative or the product
// overflows (`who` names the caller in the error).
inline size_t c_array_bytes(const std::vector<py::ssize_t>& shape, const py::dtype& dt, const char* who) {
  size_t bytes = static_cast<size_t>(dt.itemsize());
  for (py::ssize_t d : shape) {
    if (d < 0) throw py::value_error(std::string(who) + ": negative dimension");
    if (__builtin_mul_overflow(bytes, static_cast<size_t>(d), &bytes) || bytes > static_cast<size_t>(PTRDIFF_MAX) / 2)
      throw py::value_error(std::string(who) + ": the array's size overflows");
  }
  return bytes;
}

// A C-contiguous array of `shape` and `dt` over memory at `data`, kept alive by `base` (which owns it).
inline py::array c_array_on(void* data, const std::vector<py::ssize_t>& shape, const py::dtype& dt, py::object base) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t step = dt.itemsize();
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = step;
    step *= shape[i];
  }
  return py::array(dt, shape, strides, data, base);
}

template <class T>
struct View {
  T* data = nullptr;
  int ndim = 0;
  int64_t shape[8] = {0};
  int64_t strides[8] = {0};  // in elements
  int64_t size() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  bool contiguous() const {
    if (size() == 0) return true;
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
};

template <class T>
inline const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

template <class T, class P>
View<P> make_view(const py::array& a, const char* name, int ndim, P* data) {
  if (!py::isinstance<py::array_t<T>>(a) || a.dtype().kind() != 'f' || a.itemsize() != sizeof(T))
    throw py::type_error(std::string(name) + ": expected a " + dtype_name<T>() + " array, got " +
                         std::string(py::str(a.dtype())));
  if (ndim >= 0 && a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
  if (a.ndim() > 8) throw py::value_error(std::string(name) + ": at most 8 dimensions are supported");
  // A pointer that is not a multiple of the item size is undefined behaviour to dereference as T (the ops
  // layer copies such arrays; a direct _C call must not reach a kernel with one).
  if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
    throw py::value_error(std::string(name) + ": data is not aligned to its item size (" +
                          std::to_string(sizeof(T)) + " bytes); pass a copy");
  View<P> v;
  v.data = data;
  v.ndim = static_cast<int>(a.ndim());
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = a.shape(i);
    if (a.strides(i) % static_cast<py::ssize_t>(sizeof(T)) != 0)
      throw py::value_error(std::string(name) + ": strides must be multiples of the item size");
    v.strides[i] = a.strides(i) / static_cast<py::ssize_t>(sizeof(T));
  }
  return v;
}

template <class T>
View<const T> view_in(const py::array& a, const char* name, int ndim = -1) {
  return make_view<T, const T>(a, name, ndim, static_cast<const T*>(a.data()));
}

template <class T>
View<T> view_out(py::array& a, const char* name, int ndim = -1) {
  if (!a.writeable()) throw py::value_error(std::string(name) + ": output array is read-only");
  View<T> v = make_view<T, T>(a, name, ndim, static_cast<T*>(a.mutable_data()));
  if (!v.contiguous()) throw py::value_error(std::string(name) + ": output array must be C-contiguous");
  return v;
}

// Optional array argument: None -> empty view with data == nullptr.
template <class T>
View<const T> view_opt(const py::object& o, const char* name, int ndim = -1) {
  if (o.is_none()) return View<const T>();
  return view_in<T>(py::cast<py::array>(o), name, ndim);
}

// Raises ValueError(message) unless ok. A macro, so that the message (often built from strings and numbers)
// is only made on failure: built on every call, the messages of a small op's checks cost microseconds, a
// tenth of a 64 x 256 layer norm.
#define NNX_REQUIRE(ok, ...)                                 \
  do {                                                       \
    if (!(ok)) throw pybind11::value_error(__VA_ARGS__);     \
  } while (0)

// "(2, 3, 4)" (and "(5,)"), as Python prints a shape.
inline std::string shape_str(const int64_t* s, int n) {
  std::string r = "(";
  for (int i = 0; i < n; ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (n == 1 ? ",)" : ")");
}
inline std::string pair_str(int64_t a, int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

// Both views C-contiguous and of one shape (element-wise kernels read them in lockstep).
template <class A, class B>
void require_same_contiguous(const A& a, const char* an, const B& b, const char* bn) {
  NNX_REQUIRE(a.contiguous(), std::string(an) + ": expected a C-contiguous array");
  NNX_REQUIRE(b.contiguous(), std::string(bn) + ": expected a C-contiguous array");
  NNX_REQUIRE(a.ndim == b.ndim, std::string(bn) + ": expected the shape of " + an);
  for (int i = 0; i < a.ndim; ++i) NNX_REQUIRE(a.shape[i] == b.shape[i],
                                               std::string(bn) + ": expected the shape of " + an);
}

// True for a float32 array (the bindings are registered per dtype and dispatch on this).
inline bool is_f32(const py::array& a) { return a.dtype().kind() == 'f' && a.itemsize() == 4; }

}  // namespace nnx
