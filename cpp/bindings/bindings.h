// One registration function per kernel family; module.cpp calls them all.
#pragma once
#include <pybind11/pybind11.h>

namespace nnx {
namespace py = pybind11;
void bind_gemm(py::module_& m);
void bind_activation(py::module_& m);
void bind_loss(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_optim(py::module_& m);
void bind_norm(py::module_& m);
void bind_dropout(py::module_& m);
void bind_maxout(py::module_& m);
void bind_rnn(py::module_& m);
void bind_compile(py::module_& m);
}  // namespace nnx
