#!/usr/bin/env python3
"""Fails when an object file compiled for an instruction set (*_avx2.cpp.o, *_avx512.cpp.o, *_neon.cpp.o)
defines an externally visible symbol that a baseline object file also defines.

Such a symbol is an inline function or template instantiated in both: the linker keeps one copy, and if it
keeps the AVX2 one, baseline code calls AVX2 instructions and dies with SIGILL on older CPUs, even though
the dispatch (cpp/common/isa_table.h) never selected an AVX2 kernel. Usage: check_isa_symbols.py BUILD_DIR
"""
import pathlib
import re
import subprocess
import sys

ISA_OBJECT = re.compile(r"_(avx2|avx512|neon)\.cpp\.o$")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def exported(obj: pathlib.Path) -> set:
    out = subprocess.run(["nm", "--defined-only", "-g", str(obj)], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if len(line.split()) >= 3}


def current_objects(build: pathlib.Path):
    # Only objects whose source still exists (a renamed file leaves its old object in the build dir).
    for obj in build.rglob("CMakeFiles/_C.dir/**/*.cpp.o"):
        rel = obj.relative_to(build / "CMakeFiles" / "_C.dir")
        if (ROOT / str(rel)[: -len(".o")]).exists():
            yield obj


def main() -> int:
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/dev")
    isa, base = {}, {}
    for obj in current_objects(build):
        (isa if ISA_OBJECT.search(obj.name) else base)[obj] = exported(obj)
    if not isa:
        print(f"check_isa_symbols: no ISA object files under {build}", file=sys.stderr)
        return 2
    base_syms = set().union(*base.values())
    bad = []
    for obj, syms in sorted(isa.items()):
        for sym in sorted(syms & base_syms):
            bad.append((obj.name, sym))
    if bad:
        demangled = subprocess.run(["c++filt"], input="\n".join(s for _, s in bad), capture_output=True,
                                   text=True).stdout.splitlines()
        for (name, _), d in zip(bad, demangled):
            print(f"{name}: {d} is also defined by baseline code (make it static or ISA-namespaced)")
        return 1
    print(f"check_isa_symbols: {len(isa)} ISA objects, {len(base)} baseline objects, no shared symbols")
    return 0


if __name__ == "__main__":
    sys.exit(main())
