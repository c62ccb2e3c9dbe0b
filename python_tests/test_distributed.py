"""Sharded nearest / max_iou over Gloo equal the single-process ops on the full set (issue 10).

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
from weightmem_fast.distributed import shard_rows, sharded_max_iou, sharded_nearest

pytestmark = pytest.mark.slow


def _reference(rows: int, width: int, seed: int) -> torch.Tensor:
    """Random rows with exact duplicates spread over the shards (rows 1, rows // 2 and rows - 1 are equal)."""
    ref = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
    if rows >= 4:
        ref[rows // 2] = ref[1]
        ref[rows - 1] = ref[1]
    return ref


def _masks(rows: int, seed: int) -> torch.Tensor:
    masks = torch.rand(rows, 70, generator=torch.Generator().manual_seed(seed)) < 0.3
    masks[rows // 2] = masks[1]
    masks[rows - 1] = masks[1]
    return masks


def _cases() -> dict[str, tuple]:
    """name -> (op, query, full reference, k, keyword arguments): uneven shards, k above a shard's size,
    duplicates in different shards, exclude_self across shard boundaries, 2 rows over up to 3 ranks."""
    ref10 = _reference(10, 5, 0)
    # Query 4 is reference row 5; exact ties only (near-ties that round to one float32 may order differently,
    # as sharded_nearest documents).
    query = torch.cat([_reference(4, 5, 1), ref10[5:6]])
    masks = _masks(10, 2)
    cases = {
        "l2_k1": ("nearest", query, ref10, 1, {}),
        "l2_k5": ("nearest", query, ref10, 5, {}),
        "l2_k10": ("nearest", query, ref10, 10, {}),
        "cosine_k4": ("nearest", query, ref10, 4, {"metric": "cosine"}),
        "self_k3": ("nearest", ref10, ref10, 3, {"exclude_self": True}),
        "self_k9": ("nearest", ref10, ref10, 9, {"exclude_self": True}),
        "tiny_k2": ("nearest", query, _reference(2, 5, 3), 2, {}),
        "tiny_self": ("nearest", _reference(2, 5, 3), _reference(2, 5, 3), 1, {"exclude_self": True}),
        "iou_k4": ("max_iou", _masks(6, 4), masks, 4, {}),
        "iou_self_k3": ("max_iou", masks, masks, 3, {"exclude_self": True}),
        "iou_packed_k7": ("max_iou", wmf.pack_masks(_masks(6, 4)), wmf.pack_masks(masks), 7, {}),
    }
    return cases


def _single(op: str, query, reference, k: int, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return wmf.nearest(query, reference, k, **kwargs) if op == "nearest" else wmf.max_iou(query, reference, k, **kwargs)


def _sharded(op: str, query, reference, k: int, kwargs: dict, rank: int, world: int, **extra):
    start, stop = shard_rows(len(reference), rank, world)
    shard = reference[start:stop]
    search = sharded_nearest if op == "nearest" else sharded_max_iou
    return search(query, shard, k, **kwargs, **extra)


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
    else:  # "fail": rank 1 misbehaves; every rank must raise, none may hang
        ref = _reference(10, 5, 0)
        start, stop = shard_rows(10, rank, world)
        shard = ref[start:stop] if rank != 1 else torch.zeros(stop - start, 6)  # wrong width: fails in compute
        results["bad_width"] = _outcome(lambda: sharded_nearest(ref, shard, 2))
        k = 2 if rank != 1 else 2.0  # wrong type: fails in the collective validation
        results["bad_k"] = _outcome(lambda: sharded_nearest(ref, ref[start:stop], k))
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


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_equals_single_process(world, tmp_path):
    ranks = _run("compare", world, tmp_path)
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
    assert rank0["dead_peer"][0] == "error"  # not a hang: Gloo raises once the peer's connection closes


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
