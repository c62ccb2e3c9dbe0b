"""Smoke tests of the benchmarks and the command line (STYLE §9): every case runs at --sizes small, so the
benchmarks cannot rot; the numbers themselves are only read on real runs."""
from __future__ import annotations

import json
import math

import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import cli
from weightmem_fast.bench import _harness
from weightmem_fast.bench.__main__ import main as bench_main


@pytest.mark.slow  # about 3 s on the 2-core machine
def test_bench_distances_small_prints_table_targets_and_json(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"

    assert bench_main(["distances", "--sizes", "small", "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "median s" in printed and "max rel err" in printed
    for method in ("nearest", "paper_cdist", "cdist_exact"):
        assert f" {method} " in printed
    targets = [line for line in printed.splitlines() if line.startswith("target: ")]
    assert len(targets) == 3
    assert "paper_cdist/nearest" in targets[0] and "cdist_exact/nearest" in targets[1] and "%" in targets[2]

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["case"], r["sizes"]["d"]) for r in records} == {(c, d) for c in ("cross", "self") for d in (256, 2048)}
    for record in records:
        assert record["build_info"] == wmf.build_info()
        assert record["torch"] == torch.__version__ and record["device_name"] and record["threads"] >= 1
        expected = {"nearest", "paper_cdist"} | ({"cdist_exact"} if record["case"] == "cross" else set())
        assert set(record["methods"]) == expected
        ours = record["methods"]["nearest"]
        # nearest's contract, so a broken oracle or scoring shows here: rel. error <= 1e-6, every partner found.
        assert ours["max_rel_err"] <= 1e-6 and ours["index_agreement"] == 1.0
        assert ours["runs"] >= 1 and ours["seconds"] > 0


def test_measure_records_out_of_memory_as_inf(tmp_path):
    def out_of_memory():
        raise torch.OutOfMemoryError("out of memory")

    result = _harness.measure(out_of_memory, "cpu")

    assert result.out_of_memory and result.seconds == math.inf and result.extra_peak_bytes == math.inf
    path = tmp_path / "oom.jsonl"
    _harness.append_jsonl(path, {"seconds": result.seconds})
    # Strict JSON has no Infinity: written as a string that float() reads back.
    assert float(json.loads(path.read_text())["seconds"]) == math.inf


def test_measure_does_not_hide_other_errors():
    def broken():
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        _harness.measure(broken, "cpu")


def test_cli_info_prints_build_as_json(capsys):
    assert cli.main(["info"]) == 0

    info = json.loads(capsys.readouterr().out)
    assert info["build_info"] == wmf.build_info()
    assert info["cuda_available"] == wmf.cuda_available()
    assert info["torch"] == torch.__version__ and info["version"] == wmf.__version__


def test_cli_bench_help_lists_the_benchmark_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "distances", "--help"])

    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for option in ("--device", "--sizes", "--out", "--large"):
        assert option in printed


@pytest.mark.slow  # about 4 s on the 2-core machine
def test_bench_similarity_small_prints_table_targets_and_json(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"

    assert bench_main(["similarity", "--sizes", "small", "--out", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "median s" in printed and "x packed" in printed and "agrees" in printed
    for method in ("max_iou", "max_iou_packed", "paper", "float_gemm"):
        assert f" {method} " in printed
    targets = [line for line in printed.splitlines() if line.startswith("target: ")]
    assert len(targets) == 3
    assert "paper/max_iou" in targets[0] and "faiss_hammings/max_iou" in targets[1] and "packed" in targets[2]

    records = [json.loads(line) for line in out.read_text().splitlines()]
    cases = [(r["case"], r["sizes"]["n"], r["sizes"]["s"]) for r in records]
    assert cases == [("full", 100, 1000), ("full", 100, 3000)]
    for record in records:
        assert record["op"] == "similarity" and record["build_info"] == wmf.build_info()
        assert record["torch"] == torch.__version__ and record["device_name"] and record["threads"] >= 1
        assert {"max_iou", "max_iou_packed", "paper", "float_gemm"} <= set(record["methods"])
        # Every method finds the same max IoUs and argmaxes on this data (paper: atol 1e-6), so a broken
        # method or comparison shows here.
        for name, scores in record["methods"].items():
            assert scores["agrees"], name
            assert scores["runs"] >= 1 and scores["seconds"] > 0
        assert record["ratios"]["paper/max_iou"] > 0


@pytest.mark.slow  # a few seconds on the 2-core machine
def test_bench_evaluate_small_prints_table_targets_and_json(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert bench_main(["evaluate", "--sizes", "small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for method in ("evaluate", "loop", "vmap"):
        assert f" {method} " in printed
    targets = [line for line in printed.splitlines() if line.startswith("target: ")]
    assert len(targets) == 4 and "loop/evaluate" in targets[0] and "vmap/evaluate" in targets[1]
    assert targets[2].startswith("target: cnn") and "memory" in targets[3]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["arch"] for record in records] == ["mlp", "mlp", "cnn"]
    for record in records:
        assert record["op"] == "evaluate" and "build_info" in record
        assert all(m["agreement"] == 1.0 for m in record["methods"].values())  # evaluate reproduces the loop


@pytest.mark.slow  # a few seconds on the 2-core machine
def test_bench_chamfer_small_prints_table_targets_and_json(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert bench_main(["chamfer", "--sizes", "small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ms/pair" in printed and "max rel diff" in printed
    for method in ("chamfer_matrix", "cdist_chunked", "ckdtree"):
        assert f" {method} " in printed
    targets = [line for line in printed.splitlines() if line.startswith("target: ")]
    assert len(targets) == 3
    assert "cdist_chunked/chamfer_matrix" in targets[0] and "ckdtree/chamfer_matrix" in targets[1]
    assert "O(tile)" in targets[2]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["case"], r["sizes"]["n"], r["sizes"]["m"]) for r in records] == [("shapes", 8, 12)]
    record = records[0]
    assert record["op"] == "chamfer" and record["build_info"] == wmf.build_info()
    assert set(record["methods"]) == {"chamfer_matrix", "cdist_chunked", "ckdtree"}
    # cKDTree's float64 distances agree with the exact kernel; the cdist expansion only roughly (near-duplicates).
    assert record["methods"]["ckdtree"]["max_rel_diff"] <= 1e-6
    assert all(m["runs"] >= 1 and m["seconds"] > 0 for m in record["methods"].values())


def test_bench_all_runs_every_benchmark_with_its_defaults_and_the_shared_options(monkeypatch, tmp_path):
    from weightmem_fast.bench import __main__ as bench_module

    seen = {}

    def recorder(name, code):
        def run(args):
            seen[name] = args
            return code
        return run

    ops = {name: op._replace(run=recorder(name, 1 if name == "similarity" else 0))
           for name, op in bench_module.OPS.items()}
    monkeypatch.setattr(bench_module, "OPS", ops)
    out = tmp_path / "all.jsonl"
    assert cli.main(["bench", "all", "--sizes", "small", "--out", str(out)]) == 1  # the worst exit code
    assert list(seen) == ["distances", "similarity", "evaluate", "chamfer", "aligned"]
    for args in seen.values():
        assert (args.sizes, args.device, args.out) == ("small", "cpu", str(out))
    assert seen["distances"].large is False  # an op's own option keeps its default


@pytest.mark.slow  # about 3 s on the 2-core machine
def test_bench_aligned_small_prints_table_targets_and_json(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert bench_main(["aligned", "--sizes", "small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert " aligned_nearest " in printed and " study " in printed
    assert len([line for line in printed.splitlines() if line.startswith("target: ")]) == 4
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["case"], r["sizes"]["arch"]) for r in records} == {
        (c, a) for c in ("random", "permuted copies") for a in ("gpt_mnist", "digits")}
    for record in records:
        # The study's float64 cdist + scipy agrees with aligned_nearest's exact distances.
        assert record["methods"]["study"]["max_rel_diff"] <= 1e-6
