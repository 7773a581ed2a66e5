# Type stub of the generated `trailhound_ffi` package (maturin installs it as
# trailhound_ffi/__init__.pyi and adds py.typed). The generated module is annotated
# itself; this only makes type checkers read it instead of taking it for untyped.
from .trailhound_ffi import *
