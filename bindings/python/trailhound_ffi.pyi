# Type stub of the generated `trailhound_ffi` package: maturin installs it as
# trailhound_ffi/__init__.pyi and adds py.typed. The generated module is annotated itself;
# this only makes type checkers read it instead of taking the package for untyped. The
# import is absolute: outside the wheel (MYPYPATH=bindings/python in test-codegen.sh) this
# file is a top-level module, where a relative import would be an error.
from trailhound_ffi.trailhound_ffi import *
