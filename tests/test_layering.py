"""The layering of DESIGN.md, checked on the source: nnx.reference (the oracle) and the argument checks it
shares with nnx.ops are plain Python and NumPy, and never reach the C++ extension, so a kernel bug cannot
hide in the oracle too."""
import ast
import pathlib
import subprocess
import sys

import nnx

PKG = pathlib.Path(nnx.__file__).parent
ALLOWED_ABSOLUTE = {"numpy", "__future__", "math", "numbers", "os", "functools", "typing", "itertools",
                    "dataclasses", "collections", "importlib"}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_reference_imports_only_numpy_and_pure_python():
    files = sorted((PKG / "reference").glob("*.py")) + [PKG / "_args.py"]
    assert len(files) > 3
    for path in files:
        in_reference = path.parent.name == "reference"
        for level, module in _imports(path):
            if level == 0:
                assert module.split(".")[0] in ALLOWED_ABSOLUTE, f"{path.name} imports {module}"
            elif in_reference and level == 1:
                continue  # a sibling module of nnx.reference
            else:
                assert in_reference and level == 2 and module == "_args", \
                    f"{path.name} imports {'.' * level}{module}: the oracle may use only nnx._args"


def test_reference_runs_without_the_extension():
    # Load nnx.reference's modules as a package of their own, with nnx._args beside them, in a process where
    # importing the extension fails: every op of the reference must still be there.
    code = f"""
import importlib.util, sys, types
sys.modules['nnx._C'] = None  # any import of the extension raises ImportError
pkg = types.ModuleType('nnx'); pkg.__path__ = [{str(PKG)!r}]; sys.modules['nnx'] = pkg
spec = importlib.util.spec_from_file_location('nnx.reference', {str(PKG / 'reference' / '__init__.py')!r},
                                              submodule_search_locations=[{str(PKG / 'reference')!r}])
ref = importlib.util.module_from_spec(spec); sys.modules['nnx.reference'] = ref; spec.loader.exec_module(ref)
import numpy as np
print(len(ref.__all__), float(ref.relu(np.array([-1.0, 2.0])).sum()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    count, total = out.stdout.split()
    assert int(count) >= 30 and float(total) == 2.0
