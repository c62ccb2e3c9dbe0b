"""The only module that imports the compiled extension ``weightmem_fast._C``.

Import never fails because of the extension or of CUDA: a missing or broken ``_C`` is recorded and re-raised,
chained, by the first call that needs it. CUDA is probed lazily, on the first question about it.
"""
from __future__ import annotations

import functools
import pathlib
from typing import Any

import torch

try:
    from . import _C
except ImportError as err:  # kept and chained into every later error
    _C = None
    _IMPORT_ERROR: ImportError | None = err
else:
    _IMPORT_ERROR = None

# Names the C++ side checks a tensor's element type against (csrc/common/tensor_args.h).
_DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.uint8: "uint8",
}

_BUILD_HINT = (
    "reinstall with `pip install .` (add `WEIGHTMEM_FAST_CUDA=ON` and `--no-build-isolation` for CUDA kernels)"
)


def _missing_extension_error() -> RuntimeError:
    source_tree = pathlib.Path(__file__).resolve().parent.parent / "CMakeLists.txt"
    hint = _BUILD_HINT
    if source_tree.exists():
        hint = (
            "this import came from the source tree, which has no compiled _C: run the installed `pytest` script, "
            "or set PYTHONSAFEPATH=1, so that the installed package is imported; or " + _BUILD_HINT
        )
    err = RuntimeError(f"weightmem_fast's compiled extension could not be imported ({_IMPORT_ERROR}); {hint}")
    err.__cause__ = _IMPORT_ERROR
    return err


def extension() -> Any:
    """The ``_C`` module; raises RuntimeError (chained to the ImportError) if it could not be imported."""
    if _C is None:
        raise _missing_extension_error()
    return _C


def extension_loaded() -> bool:
    return _C is not None


def build_info() -> dict:
    """What the compiled extension reports about its build (see ``weightmem_fast.build_info``)."""
    return dict(extension().build_info())


@functools.lru_cache(maxsize=None)
def cuda_device_count() -> tuple[int, str]:
    """(number of CUDA devices our kernels can use, reason when 0). Cached: called once per process."""
    if _C is None:
        return 0, f"the compiled extension could not be imported ({_IMPORT_ERROR})"
    if not _C.build_info()["cuda"]:
        return 0, "the extension was built without CUDA kernels"
    count, reason = _C.cuda_device_count()
    if count > 0 and not torch.cuda.is_available():
        return 0, "this torch build has no CUDA support"
    return count, reason


def _tensor_arg(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), _DTYPE_NAMES[t.dtype])


def call(impl: str, op: str, *args: Any) -> Any:
    """Calls ``_C.<op>_<impl>`` with tensors passed as raw (pointer, shape, strides, dtype) tuples.

    The caller has validated and allocated everything; tensors stay referenced by ``args`` for the call's
    duration. CUDA calls run on the current stream of the first tensor's device, so they are ordered with the
    caller's torch work.
    """
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    converted = [_tensor_arg(a) if isinstance(a, torch.Tensor) else a for a in args]
    if impl == "cuda":
        device = tensors[0].device
        stream = torch.cuda.current_stream(device).cuda_stream
        converted += [device.index, stream]
    else:
        converted += [-1, 0]
    return getattr(extension(), f"{op}_{impl}")(*converted)
