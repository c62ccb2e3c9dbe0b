"""weightmem_fast: exact, fast audits of weight generators for memorisation.

Public API: ``nearest``, ``pairwise_distance`` (issue 3); ``pack_masks``, ``unpack_masks``, ``error_masks``,
``iou_matrix``, ``max_iou``, ``PackedMasks`` (issue 4); ``evaluate`` (issue 5; zoos and I/O in
``weightmem_fast.zoo``, ``weightmem_fast.io``, ``weightmem_fast.layout``); ``chamfer``, ``chamfer_matrix``,
``nearest_shape``, ``shape_metrics``, ``minimum_matching_distance``, ``coverage``, ``one_nn_accuracy`` (issue 6;
neural-field zoos, procedural shapes and meshing in ``weightmem_fast.fields``); weight generators and their
shared pieces in ``weightmem_fast.generators``, baselines in ``weightmem_fast.baselines`` (issue 7); the audit in
``weightmem_fast.audit``, its figures in ``weightmem_fast.plots``, the HTML report in ``weightmem_fast.report`` and
the study end to end in ``weightmem_fast.demo`` (issue 8); ``linear_assignment``, ``aligned_nearest``,
``aligned_distance`` (issue 9; function-preserving transforms in ``weightmem_fast.symmetry``); the audit over
torch.distributed ranks in ``weightmem_fast.distributed`` (issue 10); ``ablate``, the study's modeling-factor
ablation (issue 11; levels, results and figures in ``weightmem_fast.ablation``); ``build_info``,
``cuda_available``. Pure-PyTorch twins of every op live in ``weightmem_fast.reference``.
"""
from ._version import __version__
from .ops import error_masks, iou_matrix, max_iou, nearest, pack_masks, pairwise_distance, unpack_masks
from .ops.assign import linear_assignment
from .ops.chamfer import chamfer, chamfer_matrix, nearest_shape
from .ops.shape_metrics import coverage, minimum_matching_distance, one_nn_accuracy, shape_metrics
from .ops.eval import Evaluation, evaluate
from .packed_masks import PackedMasks
from .symmetry.aligned import aligned_distance, aligned_nearest


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


def __getattr__(name: str):
    # ``ablate`` imports the generators, the audit and the demo recipes: loaded on first use, not with the package.
    if name == "ablate":
        from .ablation import ablate

        return ablate
    raise AttributeError(f"module 'weightmem_fast' has no attribute {name!r}")


def cuda_available() -> bool:
    """True when the CUDA kernels were compiled, torch has CUDA and a device is visible. Never raises."""
    from . import _ext

    return _ext.cuda_device_count()[0] > 0


__all__ = [
    "Evaluation",
    "PackedMasks",
    "__version__",
    "ablate",
    "aligned_distance",
    "aligned_nearest",
    "build_info",
    "chamfer",
    "chamfer_matrix",
    "coverage",
    "cuda_available",
    "error_masks",
    "evaluate",
    "iou_matrix",
    "linear_assignment",
    "max_iou",
    "minimum_matching_distance",
    "nearest",
    "nearest_shape",
    "one_nn_accuracy",
    "pack_masks",
    "pairwise_distance",
    "shape_metrics",
    "unpack_masks",
]
