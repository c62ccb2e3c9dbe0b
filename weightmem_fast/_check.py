"""Argument validation shared by the public ops (STYLE §4).

Every error names the argument, what was expected, what was received and, where there is one, the fix.
TypeError for types and dtypes, ValueError for shapes and values. Nothing here casts or moves data.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def matrix(name: str, x: object, *, like: torch.Tensor | None = None, like_name: str = "") -> torch.Tensor:
    """A non-empty 2-D floating tensor [rows, D]; with ``like``, also the same D, dtype and device."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, D]; got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor [N, D] (one flattened model per row); got shape {tuple(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64); got {x.dtype}; "
            f"convert it with {name}.float()"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty [N >= 1, D >= 1]; got shape {tuple(x.shape)}")
    if like is not None:
        if x.shape[1] != like.shape[1]:
            raise ValueError(
                f"{name} and {like_name} must have the same width D; got {x.shape[1]} and {like.shape[1]}"
            )
        if x.device != like.device:
            raise ValueError(
                f"{name} and {like_name} must be on the same device; got {x.device} and {like.device}; "
                f"move one with .to({like.device!s})"
            )
        if x.dtype != like.dtype:
            raise TypeError(
                f"{name} and {like_name} must have the same dtype; got {x.dtype} and {like.dtype}; "
                f"convert one with .to({like.dtype})"
            )
    return x


def choice(name: str, value: object, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}; got {value!r}")
    return value  # type: ignore[return-value]


def neighbour_count(k: object, available: int, exclude_self: bool) -> int:
    """k as an int in [1, available]; ``available`` already accounts for ``exclude_self``."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    if k < 1 or k > available:
        extra = " (the reference set minus the excluded self match)" if exclude_self else ""
        raise ValueError(f"k must be between 1 and {available}{extra}; got {k}")
    return k


def same_set(query: torch.Tensor, reference: torch.Tensor) -> None:
    """exclude_self compares a set with itself: both must have the same number of rows."""
    if query.shape[0] != reference.shape[0]:
        raise ValueError(
            "exclude_self=True means query and reference are the same set, so they must have the same number of "
            f"rows; got {query.shape[0]} and {reference.shape[0]}"
        )


def finite_rows(name: str, sqnorms: torch.Tensor) -> None:
    """Rejects rows with NaN or Inf, detected through their float64 squared norms."""
    bad = ~torch.isfinite(sqnorms)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()
        raise ValueError(
            f"{name} contains NaN or Inf values (or values whose square overflows float64) in {rows.numel()} "
            f"row(s), first at row {int(rows[0])}"
        )


def nonzero_rows(name: str, sqnorms: torch.Tensor) -> None:
    """The cosine metric is undefined for all-zero rows."""
    zero = sqnorms == 0
    if bool(zero.any()):
        rows = torch.nonzero(zero).flatten()
        raise ValueError(
            f"metric='cosine' is undefined for all-zero rows; {name} has {rows.numel()} such row(s), "
            f"first at row {int(rows[0])}"
        )


def bool_masks(name: str, x: object, *, packed_ok: bool = False) -> torch.Tensor:
    """A non-empty 2-D bool tensor [N, S]; ``packed_ok`` says in the error that PackedMasks are accepted too."""
    if not isinstance(x, torch.Tensor):
        alternative = " or PackedMasks" if packed_ok else ""
        raise TypeError(f"{name} must be a bool torch.Tensor [N, S]{alternative}; got {type(x).__name__}")
    if x.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor [N, S]; got {x.dtype}; build it with a comparison, e.g. preds != labels")
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D bool tensor [N, S] (one mask per row); got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty [N >= 1, S >= 1]; got shape {tuple(x.shape)}")
    return x


def integer_matrix(name: str, x: object, dims: int) -> torch.Tensor:
    """A non-empty integer tensor with ``dims`` dimensions (predictions [N, S], labels [S])."""
    shape = "[N, S]" if dims == 2 else "[S]"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor {shape}; got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor {shape} (class indices); got {x.dtype}")
    if x.dim() != dims:
        raise ValueError(f"{name} must be a {dims}-D tensor {shape}; got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty; got shape {tuple(x.shape)}")
    return x


def same_device(name: str, x: torch.Tensor | object, other_name: str, other: torch.Tensor | object) -> None:
    dx, do = getattr(x, "device"), getattr(other, "device")
    if dx != do:
        raise ValueError(f"{name} and {other_name} must be on the same device; got {dx} and {do}")


def point_clouds(name: str, x: object, *, batched: bool, like: torch.Tensor | None = None,
                 like_name: str = "") -> torch.Tensor:
    """Finite, non-empty point clouds: [C, P, 3] when ``batched``, else one cloud [P, 3]; floating dtype. With
    ``like``, also the same dtype and device (the point counts may differ)."""
    shape = "[N, P, 3] (N clouds of P points)" if batched else "[P, 3] (P points)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {shape}; got {type(x).__name__}")
    if x.dim() != (3 if batched else 2) or x.shape[-1] != 3:
        hint = "; pass one cloud as x[None]" if batched and x.dim() == 2 else ""
        hint = "; for a batch of clouds use chamfer_matrix" if not batched and x.dim() == 3 else hint
        raise ValueError(f"{name} must be a tensor {shape} with 3 coordinates per point; got shape "
                         f"{tuple(x.shape)}{hint}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or float64); got {x.dtype}; "
                        f"convert it with {name}.float()")
    if x.numel() == 0:
        raise ValueError(f"{name} must hold at least one cloud of at least one point; got shape {tuple(x.shape)}")
    if like is not None:
        if x.device != like.device:
            raise ValueError(f"{name} and {like_name} must be on the same device; got {x.device} and {like.device}; "
                             f"move one with .to({like.device!s})")
        if x.dtype != like.dtype:
            raise TypeError(f"{name} and {like_name} must have the same dtype; got {x.dtype} and {like.dtype}; "
                            f"convert one with .to({like.dtype})")
    if x.device.type == "meta":  # no values to check
        return x
    # One pass, no copy: NaN propagates through aminmax and Inf shows as an extreme; only a failure scans again.
    lo, hi = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = ~torch.isfinite(x).all(dim=-1)
        first = [int(i) for i in torch.nonzero(bad)[0]]
        where = f"cloud {first[0]}, point {first[1]}" if batched else f"point {first[0]}"
        raise ValueError(f"{name} contains NaN or Inf coordinates in {int(bad.sum())} point(s), first at {where}")
    # Squared distances of coordinates up to this bound stay finite in the compute dtype ((2 c)^2 * 3 <= max).
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    bound = (torch.finfo(compute).max / 12) ** 0.5
    largest = max(-lo, hi)
    if largest > bound:
        raise ValueError(f"{name} has coordinates up to {largest:.3g} in absolute value, whose squared distances "
                         f"overflow {compute}; rescale the clouds (|coordinate| <= {bound:.3g})")
    return x
