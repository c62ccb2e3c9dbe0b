"""The sharded audit (issue 10): ``audit(..., sharded=True)`` over Gloo, and ``weightmem-fast audit`` under torchrun,
give the single-process audit's JSON: exactly, except the numbers derived from the std of all training values
(the std itself and the default frontier sigmas), which are float64 sums in another order (``_same_audit``).

Workers are this file run as a script (one process per rank, localhost TCP store), as in test_distributed.py. The
test process trains a tiny digits zoo, saves it as a flat zoo, and every rank loads only its rows
(``io.load_zoo(path, shard=(rank, world))``).
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
from weightmem_fast.audit import ClassifierTask, FieldTask, audit
from weightmem_fast.layout import ParamLayout

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TEMPLATE = "sharded_models:digits_mlp"  # written by the ``saved`` fixture


def _task(layout) -> ClassifierTask:
    data = zoo.digits()
    return ClassifierTask(zoo.mlp(64), data.test_x.flatten(1), data.test_y, layout=layout)


def _groups(training: io.Zoo, new: torch.Tensor) -> dict[str, torch.Tensor]:
    """Copies of rows in different shards, models from other seeds, and one broken (NaN) model."""
    broken = new[:1].clone()
    broken[0, 3] = float("nan")
    return {"copies": training.weights[[0, 7]].clone(), "new": new, "broken": broken}


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


def _same_audit(got: str | dict, expected: str | dict) -> None:
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
    shard = io.load_zoo(root / "training", shard=(rank, world))
    groups = torch.load(root / "groups.pt")
    texts = _audits(shard, groups, _task(shard.layout), sharded=True, tiny=root.name == "tiny")
    (root / f"rank{rank}.json").write_text(json.dumps(texts))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sharded_audit")
    data = zoo.digits()
    training = zoo.train_mlp_zoo(data, 9, epochs=2, progress=False)
    new = zoo.train_mlp_zoo(data, 3, epochs=2, seed=100, progress=False).weights
    (root / "sharded_models.py").write_text("from weightmem_fast import zoo\n\n\ndef digits_mlp():\n"
                                            "    return zoo.mlp(64)\n")
    io.save_zoo(training, root / "training")
    io.save_zoo(training[:2], root / "tiny" / "training")
    for path in (root, root / "tiny"):
        torch.save(_groups(training, new), path / "groups.pt")
    return root


@pytest.mark.parametrize("world, folder", [(2, ""), (3, "tiny")])
def test_sharded_audit_json_equals_single_process(saved, world, folder):
    root = saved / folder
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(root), str(r), str(world), str(port)])
             for r in range(world)]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    training = io.load_zoo(root / "training")
    expected = _audits(training, torch.load(root / "groups.pt"), _task(training.layout), sharded=False,
                       tiny=folder == "tiny")
    for rank in range(world):
        got = json.loads((root / f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        for name in expected:
            _same_audit(got[name], expected[name])


def test_audit_command_under_torchrun_writes_the_single_process_json(saved, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(saved))
    args = ["audit", "--quiet", "--training", str(saved / "training"), "--generated", str(saved / "training"),
            "--template", TEMPLATE, "--data", "digits", "--k", "2", "--grid", "10"]
    assert cli.main([*args, "--out", str(tmp_path / "single")]) == 0
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                str(_free_port()), "--no-python", sys.executable, "-c",
                "import sys; from weightmem_fast import cli; sys.exit(cli.main())"]
    path = os.pathsep.join(filter(None, [str(saved), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run([*launcher, *args, "--out", str(tmp_path / "sharded")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("report: ") == 1  # rank 0 alone writes
    sharded, single = (json.loads((tmp_path / d / "audit.json").read_text()) for d in ("sharded", "single"))
    _same_audit(sharded, single)
    assert "Sharded audit over 2 ranks" in (tmp_path / "sharded" / "report.html").read_text()


def test_sharded_audit_argument_errors_need_no_process_group(saved):
    training = io.load_zoo(saved / "training")
    with pytest.raises(TypeError, match="sharded must be a bool"):
        audit(training.weights[:1], training, _task(training.layout), sharded="yes")
    clouds = torch.rand(3, 16, 3)
    field = FieldTask(ParamLayout.from_module(fields.OccupancyMLP(hidden=8)), clouds, clouds)
    with pytest.raises(ValueError, match="ClassifierTask only"):
        audit(torch.zeros(1, field.layout.size), torch.zeros(3, field.layout.size), field, sharded=True)
    with pytest.raises(RuntimeError, match="init_process_group"):
        audit(training.weights[:1], training, _task(training.layout), sharded=True)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
