"""Sharded searches (nearest, max_iou, nearest_shape, aligned_nearest), evaluate, the row movers and the baselines'
draws over Gloo equal the single-process ops on the full set (issue 10).

Workers are this file run as a script (one process per rank, localhost TCP store), so the children import it by
path rather than through pytest's module name. Each rank builds the same full reference set from fixed seeds and
keeps only its shard, as a rank that loads ``io.load_zoo(path, shard=(rank, world))`` would.
"""
from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import baselines, zoo
from weightmem_fast.distributed import (Shard, evaluate_rows, gather_rows, own_rows_as_queries, shard_rows,
                                        sharded_aligned_nearest, sharded_evaluate, sharded_max_iou, sharded_nearest,
                                        sharded_nearest_shape, take_rows)
from weightmem_fast.distributed import baselines as sharded_baselines
from weightmem_fast.layout import ParamLayout
from weightmem_fast.symmetry import aligned_nearest, permute

pytestmark = pytest.mark.slow


def _reference(rows: int, width: int, seed: int) -> torch.Tensor:
    """Random rows with exact duplicates spread over the shards (rows 1, rows // 2 and rows - 1 are equal)."""
    ref = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
    if rows >= 4:
        ref[rows // 2] = ref[1]
        ref[rows - 1] = ref[1]
    return ref


def _clouds(rows: int, seed: int) -> torch.Tensor:
    clouds = torch.randn(rows, 6, 3, generator=torch.Generator().manual_seed(seed))
    clouds[rows // 2] = clouds[1]
    clouds[rows - 1] = clouds[1]
    return clouds


def _mlps(rows: int, seed: int) -> torch.Tensor:
    """One-hidden-layer MLPs (4 -> 3 -> 2) where rows rows // 2 and rows - 1 are permuted copies of row 1."""
    weights = torch.randn(rows, LAYOUT.size, generator=torch.Generator().manual_seed(seed))
    for row, order in ((rows // 2, [2, 0, 1]), (rows - 1, [1, 2, 0])):
        weights[row] = permute(weights[1:2], LAYOUT, [torch.tensor([order])])[0]
    return weights


def _masks(rows: int, seed: int) -> torch.Tensor:
    masks = torch.rand(rows, 70, generator=torch.Generator().manual_seed(seed)) < 0.3
    masks[rows // 2] = masks[1]
    masks[rows - 1] = masks[1]
    return masks


TEMPLATE = zoo.mlp(4, 3, 2)
LAYOUT = ParamLayout.from_module(TEMPLATE)
SINGLE = {
    "nearest": wmf.nearest, "max_iou": wmf.max_iou, "nearest_shape": wmf.nearest_shape,
    "aligned": lambda query, reference, k, **kw: aligned_nearest(query, reference, LAYOUT, k, **kw)[:2],
}
SHARDED = {
    "nearest": sharded_nearest, "max_iou": sharded_max_iou, "nearest_shape": sharded_nearest_shape,
    "aligned": lambda query, shard, k, **kw: sharded_aligned_nearest(query, shard, LAYOUT, k, **kw),
}


def _cases() -> dict[str, tuple]:
    """name -> (op, query, full reference, k, keyword arguments): uneven shards, k above a shard's size,
    duplicates in different shards, exclude_self across shard boundaries, 2 rows over up to 3 ranks."""
    ref10 = _reference(10, 5, 0)
    # Query 4 is reference row 5 (an exact tie with its duplicates).
    query = torch.cat([_reference(4, 5, 1), ref10[5:6]])
    masks = _masks(10, 2)
    cases = {
        "l2_k1": ("nearest", query, ref10, 1, {}),
        "l2_k5": ("nearest", query, ref10, 5, {}),
        "l2_k10": ("nearest", query, ref10, 10, {}),
        "cosine_k4": ("nearest", query, ref10, 4, {"metric": "cosine"}),
        "self_k3": ("nearest", ref10, ref10, 3, {"exclude_self": True}),
        "self_k9": ("nearest", ref10, ref10, 9, {"exclude_self": True}),
        "near_tie_k1": ("nearest", torch.zeros(1, 5), _near_tie(), 1, {}),
        "near_tie_k2": ("nearest", torch.zeros(1, 5), _near_tie(), 2, {}),
        "tiny_k2": ("nearest", query, _reference(2, 5, 3), 2, {}),
        "tiny_self": ("nearest", _reference(2, 5, 3), _reference(2, 5, 3), 1, {"exclude_self": True}),
        "iou_k4": ("max_iou", _masks(6, 4), masks, 4, {}),
        "iou_self_k3": ("max_iou", masks, masks, 3, {"exclude_self": True}),
        "iou_packed_k7": ("max_iou", wmf.pack_masks(_masks(6, 4)), wmf.pack_masks(masks), 7, {}),
        "shape_k4": ("nearest_shape", torch.cat([_clouds(3, 5), _clouds(10, 6)[5:6]]), _clouds(10, 6), 4, {}),
        "shape_self_k3": ("nearest_shape", _clouds(10, 6), _clouds(10, 6), 3, {"exclude_self": True}),
        "aligned_k4": ("aligned", torch.cat([_mlps(3, 7), _mlps(10, 8)[5:6]]), _mlps(10, 8), 4, {}),
        "aligned_self_k2": ("aligned", _mlps(10, 8), _mlps(10, 8), 2, {"exclude_self": True}),
    }
    return cases


def _near_tie() -> torch.Tensor:
    """10 rows far from the origin but rows 1 and 8 (in different shards on 2 and 3 ranks), at distances 1 + 2^-27
    and 1 from it: one float32 value, so only the float64 ranking keys put row 8 first, as one process does."""
    ref = _reference(10, 5, 0) + 10
    ref[1] = torch.tensor([1.0, 2.0 ** -13, 0, 0, 0])
    ref[8] = torch.tensor([1.0, 0, 0, 0, 0])
    return ref


def _single(op: str, query, reference, k: int, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return SINGLE[op](query, reference, k, **kwargs)


def _sharded(op: str, query, reference, k: int, kwargs: dict, rank: int, world: int, **extra):
    start, stop = shard_rows(len(reference), rank, world)
    return SHARDED[op](query, reference[start:stop], k, **kwargs, **extra)


def _evaluation_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """7 models (one broken) of TEMPLATE, and 70 test samples: (weights, inputs, labels)."""
    weights = _mlps(7, 9)
    weights[3, 0] = float("nan")
    generator = torch.Generator().manual_seed(10)
    return weights, torch.randn(70, 4, generator=generator), torch.randint(2, (70,), generator=generator)


def _helpers(rank: int, world: int) -> dict[str, object]:
    """The row movers, the self search through own_rows_as_queries, sharded_evaluate and the baselines' draws."""
    ref = _reference(10, 5, 0)
    ref[2, 1] = -0.0  # must travel bit-exactly
    start, stop = shard_rows(10, rank, world)
    shard, masks = ref[start:stop], wmf.pack_masks(_masks(10, 2))[start:stop]
    weights, inputs, labels = _evaluation_data()
    placed = Shard.of(shard)
    out = {
        "gather": gather_rows(shard), "gather_bool": gather_rows(shard > 0),
        "take": take_rows(shard, start, torch.tensor([9, 2, 2, 0, 5])),
        "query_offset": sharded_nearest(ref[3:7], shard, 3, exclude_self=True, query_offset=3),
        "own_rows": own_rows_as_queries(shard, lambda block, first: sharded_nearest(
            block, shard, 2, exclude_self=True, query_offset=first)),
        "own_rows_iou": own_rows_as_queries(masks, lambda block, first: sharded_max_iou(
            block, masks, 3, exclude_self=True, query_offset=first)),
        "evaluate": sharded_evaluate(TEMPLATE, weights, inputs, labels),
        "evaluate_empty": evaluate_rows(TEMPLATE, weights[:0], inputs, labels),
        "placed": (placed.offset, placed.total),
        "std": sharded_baselines.value_std(placed),
        "frontier": sharded_baselines.noise_frontier(placed, 13, 3),
        "average": sharded_baselines.average(placed, 4, 5, k=3),
        "gaussian": sharded_baselines.gaussian(placed, 6, 1),
    }
    return out


def _outcome(call) -> tuple:
    """("ok", result) or ("error", type name, message): exceptions are sent back as text."""
    try:
        return ("ok", call())
    except Exception as err:  # the test compares what every rank raised
        return ("error", type(err).__name__, str(err))


def _worker(scenario: str, rank: int, world: int, port: int, out: Path) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=20))
    results = {}
    if scenario == "compare":
        for name, (op, query, reference, k, kwargs) in _cases().items():
            results[name] = _outcome(lambda: _sharded(op, query, reference, k, kwargs, rank, world))
        op, query, reference, k, kwargs = _cases()["l2_k5"]
        start, _ = shard_rows(len(reference), rank, world)
        results["explicit_offset"] = _outcome(
            lambda: _sharded(op, query, reference, k, kwargs, rank, world, offset=start))
        # Shards placed in reverse rank order: the merge must order ties by global index, not by rank.
        mirror, _ = shard_rows(len(reference), world - 1 - rank, world)
        results["reversed_offsets"] = _outcome(
            lambda: _sharded(op, query, reference, k, kwargs, world - 1 - rank, world, offset=mirror))
        results["k_too_large"] = _outcome(lambda: _sharded(op, query, reference, 11, kwargs, rank, world))
        results["helpers"] = _outcome(lambda: _helpers(rank, world))
    else:  # "fail": rank 1 misbehaves; every rank must raise, none may hang
        ref = _reference(10, 5, 0)
        start, stop = shard_rows(10, rank, world)
        shard = ref[start:stop] if rank != 1 else torch.zeros(stop - start, 6)  # wrong width: fails in compute
        results["bad_width"] = _outcome(lambda: sharded_nearest(ref, shard, 2))
        k = 2 if rank != 1 else 2.0  # wrong type: fails in the collective validation
        results["bad_k"] = _outcome(lambda: sharded_nearest(ref, ref[start:stop], k))
        clouds = _clouds(10, 6)
        cloud_shard = clouds[start:stop] if rank != 1 else clouds[start:stop, 0]  # 2-D: fails in validation
        results["bad_clouds"] = _outcome(lambda: sharded_nearest_shape(clouds, cloud_shard, 2))
        weights, inputs, labels = _evaluation_data()
        rank_labels = labels if rank != 1 else labels + 5  # out of range for 2 classes
        results["bad_labels"] = _outcome(lambda: sharded_evaluate(TEMPLATE, weights, inputs, rank_labels))
        from weightmem_fast.audit import ClassifierTask, audit

        mlps = _mlps(10, 8)[start:stop]
        if rank == 1:
            mlps[0, 0] = float("nan")
        task = ClassifierTask(TEMPLATE, inputs, labels)
        results["audit_nan_shard"] = _outcome(lambda: audit(mlps[:1], mlps, task, progress=False, sharded=True))
        if rank == 1:  # dies without reaching the collective
            torch.save(results, out / f"rank{rank}.pt")
            dist.destroy_process_group()
            return
        results["dead_peer"] = _outcome(lambda: sharded_nearest(ref, ref[start:stop], 2))
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def _run(scenario: str, world: int, out: Path) -> list[dict]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, __file__, scenario, str(r), str(world), str(port), str(out)])
             for r in range(world)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def test_shard_rows_matches_load_zoo_split():
    assert [shard_rows(2, r, 3) for r in range(3)] == [(0, 0), (0, 1), (1, 2)]
    assert [shard_rows(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError, match="n_rows"):
        shard_rows(-1, 0, 1)
    with pytest.raises(ValueError, match="rank"):
        shard_rows(4, 3, 3)


def test_sharded_without_process_group_raises():
    with pytest.raises(RuntimeError, match="init_process_group"):
        sharded_nearest(torch.zeros(1, 2), torch.zeros(1, 2))


@pytest.fixture(scope="module", params=[2, 3])
def compared(request, tmp_path_factory) -> list[dict]:
    """Every rank's results of the "compare" scenario, once per world size."""
    return _run("compare", request.param, tmp_path_factory.mktemp(f"compare{request.param}"))


def test_sharded_equals_single_process(compared):
    ranks = compared
    for name, (op, query, reference, k, kwargs) in _cases().items():
        expected = _single(op, query, reference, k, kwargs)
        for rank, results in enumerate(ranks):
            status, got = results[name]
            assert status == "ok", (name, rank, results[name])
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1]), (name, rank, got, expected)
    expected = _single(*_cases()["l2_k5"][:4], {})
    messages = set()
    for results in ranks:
        for name in ("explicit_offset", "reversed_offsets"):
            assert torch.equal(results[name][1][0], expected[0]) and torch.equal(results[name][1][1], expected[1])
        status, kind, message = results["k_too_large"]
        assert (status, kind) == ("error", "ValueError") and "k must be between 1 and 10" in message
        messages.add(message)
    assert len(messages) == 1


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_helpers_equal_single_process(compared):
    ref = _reference(10, 5, 0)
    ref[2, 1] = -0.0
    masks = wmf.pack_masks(_masks(10, 2))
    weights, inputs, labels = _evaluation_data()
    single = wmf.evaluate(TEMPLATE, weights, inputs, labels)
    frontier = baselines.noise_frontier(ref, 13, 3)
    for rank, results in enumerate(compared):
        status, got = results["helpers"]
        assert status == "ok", (rank, got)
        assert torch.equal(got["gather"].view(torch.int32), ref.view(torch.int32))  # bit-exact, -0.0 included
        assert torch.equal(got["gather_bool"], ref > 0)
        assert torch.equal(got["take"].view(torch.int32), ref[[9, 2, 2, 0, 5]].view(torch.int32))
        assert _equal(got["query_offset"], [t[3:7] for t in wmf.nearest(ref, ref, 3, exclude_self=True)])
        assert _equal(got["own_rows"], wmf.nearest(ref, ref, 2, exclude_self=True))
        assert _equal(got["own_rows_iou"], wmf.max_iou(masks, masks, 3, exclude_self=True))
        evaluation = got["evaluate"]  # models are evaluated independently: equal to the bit, NaN loss included
        assert _equal([evaluation.predictions, evaluation.accuracy, evaluation.errors.words, evaluation.nonfinite],
                      [single.predictions, single.accuracy, single.errors.words, single.nonfinite])
        torch.testing.assert_close(evaluation.loss, single.loss, rtol=0, atol=0, equal_nan=True)
        empty = got["evaluate_empty"]
        assert empty.predictions.shape == (0, 70) and empty.errors.words.shape == (0, 2) and empty.accuracy.numel() == 0
        start, _ = shard_rows(10, rank, len(compared))
        assert got["placed"] == (start, 10)
        # Sums over all rows run in another order than torch's: equal to float64 rounding.
        assert got["std"] == pytest.approx(float(ref.double().std()), rel=1e-14)
        assert torch.allclose(got["frontier"][0], frontier[0], rtol=1e-14, atol=0)
        assert _equal(got["frontier"][1], frontier[1])  # float32 sets: the sigma's last float64 bits round away
        assert torch.equal(got["average"], baselines.average(ref, 4, 5, k=3))
        # float32 outputs of float64 mean + std * eps: an output flips only if those bits straddle a float32
        # rounding boundary (measured: equal).
        assert torch.allclose(got["gaussian"], baselines.gaussian(ref, 6, 1), rtol=1e-6, atol=0)


def test_duplicates_across_shards_go_to_lowest_index():
    # Rows 1, 5 and 9 of the reference are equal and lie in different shards for 2 and 3 ranks; query 4 is row 5.
    _, query, reference, k, _ = _cases()["l2_k5"]
    _, indices = wmf.nearest(query, reference, k)
    assert indices[4, :3].tolist() == [1, 5, 9]


def test_failing_rank_makes_every_rank_raise(tmp_path):
    rank0, rank1 = _run("fail", 2, tmp_path)
    assert rank1["bad_width"][:2] == ("error", "ValueError") and "width" in rank1["bad_width"][2]
    assert rank0["bad_width"][:2] == ("error", "RuntimeError") and "rank 1" in rank0["bad_width"][2]
    assert rank1["bad_k"][:2] == ("error", "TypeError")
    assert rank0["bad_k"][:2] == ("error", "RuntimeError") and "rank 1 failed with TypeError" in rank0["bad_k"][2]
    for name, kind, fragment in (("bad_clouds", "ValueError", "reference_shard"),
                                 ("bad_labels", "ValueError", "labels"), ("audit_nan_shard", "ValueError", "NaN")):
        assert rank1[name][:2] == ("error", kind) and fragment in rank1[name][2], rank1[name]
        assert rank0[name][:2] == ("error", "RuntimeError") and f"rank 1 failed with {kind}" in rank0[name][2]
    assert rank0["dead_peer"][0] == "error"  # not a hang: Gloo raises once the peer's connection closes


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
