"""The sharded audit (issue 10): ``audit(..., sharded=True)`` over Gloo, and ``weightmem-fast audit`` under torchrun,
give the single-process audit's JSON: exactly, except the numbers derived from the std of all training values
(the std itself and the default frontier sigmas), which are float64 sums in another order (``check_same_audit``).

Workers are this file run as a script (one process per rank, localhost TCP store), as in test_distributed.py. The
test process trains a tiny digits zoo (classifier audits) or fits a few tiny occupancy networks (field audits),
saves them as a flat zoo, and every rank loads only its rows (``io.load_zoo(path, shard=(rank, world))``); the
folder's name says which audits run (``_case_audits``).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from weightmem_fast import cli, fields, io, zoo
from weightmem_fast.generators import gpt
from weightmem_fast.audit import ClassifierTask, FieldTask, audit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TEMPLATE = "sharded_models:digits_mlp"  # written by the ``saved`` fixture
FIELD_TEMPLATE = "sharded_fields:occupancy"  # written by the ``field_saved`` fixture
FIELD_HIDDEN = 16


def _task(layout) -> ClassifierTask:
    data = zoo.digits()
    return ClassifierTask(zoo.mlp(64), data.test_x.flatten(1), data.test_y, layout=layout)


def _broken(model: torch.Tensor) -> torch.Tensor:
    """[1, D]: a copy of the model [D] with one NaN weight (reported with NaN numbers, not an error)."""
    broken = model[None].clone()
    broken[0, 3] = float("nan")
    return broken


def _groups(training: io.Zoo, new: torch.Tensor) -> dict[str, torch.Tensor]:
    """Copies of rows in different shards (the first and the last row), models from other seeds, and one broken
    (NaN) model."""
    return {"copies": training.weights[[0, -1]].clone(), "new": new, "broken": _broken(new[0])}


def _audits(training: io.Zoo, groups: dict, task: ClassifierTask, sharded: bool, tiny: bool) -> dict[str, str]:
    """Every audit the test compares, as JSON text. "default" has every baseline (trajectory=True adds average and
    gaussian); "aligned" measures aligned distances; "tiny" runs on 2 training rows (an empty shard on 3 ranks)."""
    if tiny:
        return {"tiny": audit({"copy": groups["copies"][:1]}, training, task, progress=False, k=1,
                              trajectory=True, frontier_models=2, baseline_models=3, resamples=20,
                              sharded=sharded).to_json()}
    small = {"progress": False, "resamples": 50, "sharded": sharded}
    return {
        "default": audit(groups, training, task, trajectory=True, frontier_models=4, baseline_models=6,
                         **small).to_json(),
        "aligned": audit(groups, training, task, baselines="none", align=True, frontier_sigmas=[0.01, 0.1],
                         frontier_models=2, **small).to_json(),
    }


def _field_audits(training: io.Zoo, root: Path, sharded: bool) -> dict[str, str]:
    """A field audit (Chamfer distances of meshed occupancy networks; coarse meshes to stay cheap) with every
    default baseline, k = 2 (more than rank 0's 2 rows hold once self is excluded) and the groups of
    ``field_saved``."""
    clouds = torch.load(root / "clouds.pt")
    task = FieldTask(training.layout, clouds["training_clouds"], clouds["test_clouds"], resolution=16, n_points=128)
    return {"field": audit(torch.load(root / "groups.pt"), training, task, progress=False, k=2, frontier_models=2,
                           baseline_models=3, resamples=50, sharded=sharded).to_json()}


def _case_audits(root: Path, training: io.Zoo, sharded: bool) -> dict[str, str]:
    """The audits of the case saved in ``root``, named by its folder: "field", "tiny", or the classifier zoo."""
    if root.name == "field":
        return _field_audits(training, root, sharded)
    return _audits(training, torch.load(root / "groups.pt"), _task(training.layout), sharded, tiny=root.name == "tiny")


def check_same_audit(got: str | dict, expected: str | dict) -> None:
    """Equal JSON, except the std-derived numbers: equal to float64 rounding (measured: 3e-15 relative)."""
    docs, rounded = [], []
    for doc in (got, expected):
        doc = json.loads(doc) if isinstance(doc, str) else doc
        settings = doc["settings"]
        rounded.append([settings.pop("training_std"), *settings.pop("frontier_sigmas"), *doc["frontier"].pop("sigmas"),
                        *[row.pop("sigma") for row in doc["models"] if "sigma" in row]])
        docs.append(doc)
    assert docs[0] == docs[1]
    assert rounded[0] == pytest.approx(rounded[1], rel=1e-13, abs=0)


def _worker(root: Path, rank: int, world: int, port: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    texts = _case_audits(root, io.load_zoo(root / "training", shard=(rank, world)), sharded=True)
    (root / f"rank{rank}.json").write_text(json.dumps(texts))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    # The quick demo's G.pt zoo (issue 10's "demo zoo"; cached, and built in seconds): 20 runs of the digits MLP
    # 64 -> 10 -> 10, 7 checkpoints each.
    root = tmp_path_factory.mktemp("sharded_audit")
    training = gpt.demo_zoo(n_runs=20, epochs=3)
    new = zoo.train_mlp_zoo(zoo.digits(), 3, epochs=2, seed=100, progress=False).weights
    (root / "sharded_models.py").write_text("from weightmem_fast import zoo\n\n\ndef digits_mlp():\n"
                                            "    return zoo.mlp(64)\n")
    io.save_zoo(training, root / "training")
    io.save_zoo(training[:2], root / "tiny" / "training")
    for path in (root, root / "tiny"):
        torch.save(_groups(training, new), path / "groups.pt")
    return root


@pytest.fixture(scope="module")
def field_saved(tmp_path_factory) -> Path:
    """field/: 5 training fields (shards of 2 and 3 rows on 2 ranks), their shapes' clouds and 2 held-out
    shapes' clouds, a template module for the command, and the audited groups: copies of a row in each shard, and
    the held-out shapes' fields plus one broken (NaN) model, so a group where some models have no surface."""
    root = tmp_path_factory.mktemp("sharded_field") / "field"
    shapes = fields.make_shapes("airplane", 7)
    fitted = fields.fit_fields(shapes, steps=300, hidden=FIELD_HIDDEN, progress=False)
    clouds = fields.shape_points(shapes, resolution=32, n_points=128).points
    io.save_zoo(fitted[:5], root / "training")
    torch.save({"training_clouds": clouds[:5], "test_clouds": clouds[5:]}, root / "clouds.pt")
    new = torch.cat([fitted.weights[5:], _broken(fitted.weights[5])])
    torch.save({"copies": fitted.weights[[0, 4]].clone(), "new": new}, root / "groups.pt")
    (root / "sharded_fields.py").write_text(f"from weightmem_fast import fields\n\n\ndef occupancy():\n"
                                            f"    return fields.OccupancyMLP(hidden={FIELD_HIDDEN})\n")
    return root


def check_ranks_against_single_process(root: Path, world: int) -> dict[str, str]:
    """Runs ``_case_audits`` of ``root`` on ``world`` Gloo ranks, checks every rank's JSON against the
    single-process audits (``check_same_audit``) and returns those."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(root), str(r), str(world), str(port)])
             for r in range(world)]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    expected = _case_audits(root, io.load_zoo(root / "training"), sharded=False)
    for rank in range(world):
        got = json.loads((root / f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        for name in expected:
            check_same_audit(got[name], expected[name])
    return expected


@pytest.mark.parametrize("world, folder", [(2, ""), (3, "tiny")])
def test_sharded_audit_json_equals_single_process(saved, world, folder):
    check_ranks_against_single_process(saved / folder, world)


def test_sharded_field_audit_json_equals_single_process(field_saved):
    expected = json.loads(check_ranks_against_single_process(field_saved, 2)["field"])
    # What the equality covers: the copies found across shards, a model without a surface, and the training
    # group's set-level metrics (computed from every training cloud on every rank).
    copies = [row for row in expected["models"] if row["group"] == "copies"]
    assert [row["min_chamfer_index"] for row in copies] == [0, 4]
    assert 0 < expected["groups"]["new"]["surface_rate"] < 1
    assert {"mmd", "cov", "1-nna"} <= set(expected["groups"]["training"])


def _single_and_torchrun(args: list[str], modules: Path, out: Path, monkeypatch) -> tuple[dict, dict]:
    """``weightmem-fast *args`` in this process and under torch.distributed.run on 2 ranks (``modules`` on both
    paths, for --template): (sharded, single) audit.json, after checking that rank 0 alone wrote a report."""
    monkeypatch.syspath_prepend(str(modules))
    assert cli.main([*args, "--out", str(out / "single")]) == 0
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                str(_free_port()), "--no-python", sys.executable, "-c",
                "import sys; from weightmem_fast import cli; sys.exit(cli.main())"]
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run([*launcher, *args, "--out", str(out / "sharded")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report: ") == 1  # rank 0 alone writes
    assert "Sharded audit over 2 ranks" in (out / "sharded" / "report.html").read_text()
    sharded, single = (json.loads((out / d / "audit.json").read_text()) for d in ("sharded", "single"))
    return sharded, single


def test_audit_command_under_torchrun_writes_the_single_process_json(saved, tmp_path, monkeypatch):
    args = ["audit", "--quiet", "--training", str(saved / "training"), "--generated", str(saved / "training"),
            "--template", TEMPLATE, "--data", "digits", "--k", "2", "--grid", "10"]
    check_same_audit(*_single_and_torchrun(args, saved, tmp_path, monkeypatch))


def test_field_audit_command_under_torchrun_writes_the_single_process_json(field_saved, tmp_path, monkeypatch):
    # The command meshes at FieldTask's default resolution (64^3, 2,048 points): baselines are left out to save
    # time (the Python test above covers them), the frontier's 48 models and the 5 generated ones stay.
    args = ["audit", "--quiet", "--task", "field", "--training", str(field_saved / "training"), "--generated",
            str(field_saved / "training"), "--template", FIELD_TEMPLATE, "--data", str(field_saved / "clouds.pt"),
            "--k", "2", "--no-baselines"]
    sharded, single = _single_and_torchrun(args, field_saved, tmp_path, monkeypatch)
    check_same_audit(sharded, single)
    assert single["settings"]["task"]["resolution"] == 64 and "1-nna" in single["groups"]["training"]


def test_sharded_audit_argument_errors_need_no_process_group(saved):
    training = io.load_zoo(saved / "training")
    with pytest.raises(TypeError, match="sharded must be a bool"):
        audit(training.weights[:1], training, _task(training.layout), sharded="yes")
    with pytest.raises(RuntimeError, match="init_process_group"):
        audit(training.weights[:1], training, _task(training.layout), sharded=True)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
