#include "bindings/bindings.h"

namespace nnx {
void bind_conv(py::module_& m) {}
}  // namespace nnx
