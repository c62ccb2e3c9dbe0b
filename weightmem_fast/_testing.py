"""Input factories shared by the tests and the benchmarks (STYLE §9: benchmarks reuse the test builders).

Not public API. Every factory takes a seed and returns CPU tensors; callers move them to a device.
"""
from __future__ import annotations

import numpy as np
import torch


# Rows generated per float64 chunk, so D = 500,000 inputs cost their own size, not a float64 copy.
_CHUNK_ROWS = 64


def scaled_rows(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[n, d] Gaussian directions with norms uniform in [10, 100], like flattened checkpoints of varied scale."""
    rng = np.random.default_rng(seed)
    norms = rng.uniform(10, 100, n)
    out = torch.empty(n, d, dtype=dtype)
    for start in range(0, n, _CHUNK_ROWS):
        rows = rng.standard_normal((min(_CHUNK_ROWS, n - start), d))
        rows *= norms[start : start + len(rows), None] / np.linalg.norm(rows, axis=1, keepdims=True)
        out[start : start + len(rows)] = torch.from_numpy(rows)
    return out


def near_duplicates(
    n: int, d: int, eps: float, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training rows and generated rows that are near-duplicates of a shuffled subset of them.

    Returns (training [n, d], generated [n, d], partner [n] int64): generated[j] = training[partner[j]] moved by
    a relative perturbation eps (||moved - row|| = eps ||row||, computed in float64 from the stored training
    values), so partner[j] is the true nearest row by a wide margin whenever eps << 1.
    """
    rng = np.random.default_rng(seed + 1)
    training = scaled_rows(n, d, seed, dtype)
    partner = torch.from_numpy(rng.permutation(n))
    generated = torch.empty_like(training)
    for start in range(0, n, _CHUNK_ROWS):
        base = training[partner[start : start + _CHUNK_ROWS]].to(torch.float64)
        direction = torch.from_numpy(rng.standard_normal((len(base), d)))
        direction /= direction.norm(dim=1, keepdim=True)
        generated[start : start + len(base)] = base + eps * base.norm(dim=1, keepdim=True) * direction
    return training, generated, partner


def self_set_with_pairs(
    n: int, d: int, eps: float, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """A set of n rows made of n // 2 rows and their eps-perturbed copies, shuffled (n even).

    Returns (rows [n, d], partner [n] int64): partner[i] is the index of row i's near-duplicate, which is its
    true nearest *other* row; the "drop the first of k + 1 neighbours" trick loses it about half the time.
    """
    half = n // 2
    training, generated, partner = near_duplicates(half, d, eps, seed, dtype)
    rows = torch.cat([training, generated])
    order = torch.from_numpy(np.random.default_rng(seed + 2).permutation(2 * half))
    position = torch.empty_like(order)
    position[order] = torch.arange(2 * half)  # where each original row went
    original_partner = torch.cat([partner.argsort() + half, partner])  # training i <-> generated j
    return rows[order], position[original_partner[order]]


def exact_sqdist(query: torch.Tensor, reference: torch.Tensor) -> np.ndarray:
    """[N, M] squared distances by direct differences in extended precision (numpy longdouble): the oracle.

    For float32 inputs every difference and square is exact in float64 already; longdouble also covers
    float64 inputs. Slow: keep N * M * D to a few million.
    """
    q = query.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)
    r = reference.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)
    return ((q[:, None, :] - r[None, :, :]) ** 2).sum(axis=2)


def relative_error(values: torch.Tensor, exact: np.ndarray | torch.Tensor) -> np.ndarray:
    """|values - exact| / |exact| elementwise (0 where both are 0, inf where only exact is 0)."""
    v = values.detach().cpu().to(torch.float64).numpy().astype(np.longdouble)
    e = np.asarray(exact, dtype=np.longdouble)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(v - e) / np.abs(e)
    err[(v == e)] = 0
    return err.astype(np.float64)


def error_zoo(
    n: int, s: int, seed: int = 0, flip: float = 0.01, copies: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """Error sets of a model zoo: training models and generated models that copy them (issue 4's benchmark data).

    Training model i has an error rate r_i ~ uniform(0.05, 0.3). Errors are correlated across models as in a real
    zoo: each sample has a hardness h_t ~ uniform(0, 1), and on a random half of the samples model i errs where
    h_t < r_i (hard samples fail for many models), on the other half independently with probability r_i. A
    ``copies`` fraction of the training rows are exact duplicates of other training rows (ties between
    references). Generated row j is the training row ``perm[j]`` with each bit flipped with probability ``flip``,
    except a ``copies`` fraction that are exact copies (IoU 1): max IoUs are high, as for a memorising generator.

    Returns:
        (training [n, s] bool, generated [n, s] bool), CPU.
    """
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 0.3, n)
    hardness = rng.random(s)
    training = torch.empty(n, s, dtype=torch.bool)
    for start in range(0, n, _CHUNK_ROWS):
        rate = rates[start : start + _CHUNK_ROWS, None]
        shared = rng.random((len(rate), s)) < 0.5
        own = rng.random((len(rate), s)) < rate
        training[start : start + len(rate)] = torch.from_numpy(np.where(shared, hardness < rate, own))
    n_copies = int(copies * n)
    duplicated = torch.from_numpy(rng.choice(n, size=2 * n_copies, replace=False))
    training[duplicated[n_copies:]] = training[duplicated[:n_copies]]
    generated = training[torch.from_numpy(rng.permutation(n))]
    flipped = rng.permutation(n)[n_copies:]  # the rest stay exact copies
    for start in range(0, len(flipped), _CHUNK_ROWS):
        rows = torch.from_numpy(flipped[start : start + _CHUNK_ROWS])
        generated[rows] ^= torch.from_numpy(rng.random((len(rows), s)) < flip)
    return training, generated


def shape_clouds(n: int, points: int = 2048, seed: int = 0, copies_of: torch.Tensor | None = None,
                 jitter: float = 1e-3) -> torch.Tensor:
    """[n, points, 3] float32 surface samples of simple shapes, normalised as HyperDiffusion does (study_spec
    §2.5: minus the cloud's mean, divided by the std of all its coordinates).

    A shape is a "fuselage" ellipsoid plus a crossing "wing" ellipsoid with random proportions; points are drawn
    on both surfaces (by direction, not by area: the clouds only need to look like shapes). With ``copies_of``
    [C, points, 3], every other cloud is instead a copy of a random cloud of it moved by Gaussian noise of std
    ``jitter`` (then renormalised): the near-duplicates a memorising generator produces.
    """
    rng = np.random.default_rng(seed)
    out = torch.empty(n, points, 3, dtype=torch.float32)
    for i in range(n):
        if copies_of is not None and i % 2 == 1:
            base = copies_of[rng.integers(len(copies_of))].to(torch.float64).numpy()
            cloud = base + jitter * rng.standard_normal(base.shape)
        else:
            wing = rng.random(points) < rng.uniform(0.3, 0.5)
            direction = rng.standard_normal((points, 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            fuselage_axes = np.array([rng.uniform(0.8, 1.2), rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2)])
            wing_axes = np.array([rng.uniform(0.1, 0.25), rng.uniform(0.6, 1.0), rng.uniform(0.01, 0.04)])
            axes = np.where(wing[:, None], wing_axes, fuselage_axes)
            offset = np.where(wing[:, None], [rng.uniform(-0.3, 0.3), 0.0, 0.0], 0.0)
            cloud = direction * axes + offset
        cloud = cloud - cloud.mean(axis=0)
        out[i] = torch.from_numpy(cloud / cloud.std(ddof=1))
    return out
