#include "bindings/bindings.h"

namespace nnx {
void bind_act(py::module_& m) {}
}  // namespace nnx
