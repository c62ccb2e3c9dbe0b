"""weightmem_fast: exact, fast audits of weight generators for memorisation.

Public API (issue 3): ``nearest``, ``pairwise_distance``, ``build_info``, ``cuda_available``. Pure-PyTorch twins
of every op live in ``weightmem_fast.reference``.
"""
from ._version import __version__
from .ops import nearest, pairwise_distance


def build_info() -> dict:
    """How the compiled extension was built.

    Returns:
        dict with ``version`` (of the compiled extension; equals ``__version__`` unless the build is stale),
        ``compiler``, ``cuda`` (CUDA kernels compiled), ``cuda_runtime`` (CUDART_VERSION or -1), ``cuda_archs``
        and ``openmp`` (OpenMP threads, or False without OpenMP).

    Raises:
        RuntimeError: the extension could not be imported (the original ImportError is chained).
    """
    from . import _ext

    return _ext.build_info()


def cuda_available() -> bool:
    """True when the CUDA kernels were compiled, torch has CUDA and a device is visible. Never raises."""
    from . import _ext

    return _ext.cuda_device_count()[0] > 0


__all__ = ["__version__", "build_info", "cuda_available", "nearest", "pairwise_distance"]
