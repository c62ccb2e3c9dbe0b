"""Backend choice: a pure function of device type, requested backend and build facts (STYLE §4)."""
from __future__ import annotations

import os
import warnings
from typing import NamedTuple

BACKENDS = ("auto", "cpu", "cuda", "torch")
ENV_BACKEND = "WEIGHTMEM_FAST_BACKEND"

CUDA_BUILD_FIX = (
    "install the CUDA kernels with `WEIGHTMEM_FAST_CUDA=ON pip install --no-build-isolation .` "
    "with nvcc on PATH, on a machine with a CUDA build of torch"
)


class Choice(NamedTuple):
    impl: str  # "cpu" | "cuda" | "torch"
    fallback_reason: str  # why "auto" fell back to the torch twin; "" otherwise


def pick(
    device_type: str,
    backend: str,
    *,
    extension_loaded: bool,
    cuda_built: bool,
    cuda_devices: int,
    env_backend: str | None = None,
) -> Choice:
    """Chooses the implementation for tensors on ``device_type``.

    ``"auto"``: the C++ kernel for CPU tensors; the CUDA kernel for CUDA tensors when it was built and a device
    is visible, else the torch twin (with a reason to warn about). ``"cpu"``/``"cuda"`` demand that kernel;
    ``"torch"`` (or ``WEIGHTMEM_FAST_BACKEND=torch``) forces the twins. A missing extension is not decided here:
    the kernel call raises it, chained.

    Raises:
        ValueError: unknown ``backend``, or a backend that does not match the tensors' device.
        RuntimeError: ``"cuda"`` requested but the CUDA kernels cannot run here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if env_backend:
        if env_backend != "torch":
            raise ValueError(f"{ENV_BACKEND} may only be 'torch' (or unset); got {env_backend!r}")
        return Choice("torch", "")
    if backend == "torch":
        return Choice("torch", "")
    if device_type not in ("cpu", "cuda"):
        if backend != "auto":
            raise ValueError(f"backend={backend!r} cannot run tensors on device type {device_type!r}")
        return Choice("torch", f"no kernel for device type {device_type!r}")
    if backend == "cpu" and device_type != "cpu":
        raise ValueError("backend='cpu' needs CPU tensors; move them with .cpu() or use backend='auto'")
    if backend == "cuda" and device_type != "cuda":
        raise ValueError("backend='cuda' needs CUDA tensors; move them with .cuda() or use backend='auto'")
    if device_type == "cpu":
        return Choice("cpu", "")
    if extension_loaded and cuda_built and cuda_devices > 0:
        return Choice("cuda", "")
    reason = "the extension was built without CUDA kernels" if not cuda_built else "no usable CUDA device"
    if backend == "cuda":
        raise RuntimeError(f"backend='cuda' is unavailable: {reason}; {CUDA_BUILD_FIX}")
    return Choice("torch", reason)


_warned_ops: set[str] = set()


def choose(op: str, device_type: str, backend: str) -> str:
    """`pick` with this process's facts; warns once per op when ``"auto"`` falls back to the torch twin."""
    from . import _ext

    loaded = _ext.extension_loaded()
    cuda_built = loaded and bool(_ext.build_info()["cuda"])
    devices = _ext.cuda_device_count()[0] if (device_type == "cuda" and cuda_built) else 0
    choice = pick(
        device_type,
        backend,
        extension_loaded=loaded,
        cuda_built=cuda_built,
        cuda_devices=devices,
        env_backend=os.environ.get(ENV_BACKEND) or None,
    )
    if choice.fallback_reason and op not in _warned_ops:
        _warned_ops.add(op)
        warnings.warn(
            f"weightmem_fast.{op}: running the pure-PyTorch reference on {device_type} "
            f"({choice.fallback_reason}); {CUDA_BUILD_FIX}",
            RuntimeWarning,
            stacklevel=3,
        )
    return choice.impl
