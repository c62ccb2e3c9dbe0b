"""The ``weightmem-fast`` command (issue 8): ``audit`` on user checkpoints end to end, and its one-line errors
with exit code 2 for missing paths, mismatched layouts and bad templates; ``demo`` argument errors."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

from weightmem_fast import cli, io, zoo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A module defining the digits MLP template, 12 training and 4 generated checkpoint directories."""
    root = tmp_path_factory.mktemp("cli")
    (root / "cli_models.py").write_text(textwrap.dedent("""
        from weightmem_fast import zoo

        def digits_mlp():
            return zoo.mlp(64, 10, 10)

        def wider_mlp():
            return zoo.mlp(64, 12, 10)

        def not_a_module():
            return 42

        def small_field():
            from weightmem_fast import fields
            return fields.OccupancyMLP(hidden=8)
    """))
    sys.path.insert(0, str(root))
    trained = zoo.train_mlp_zoo(zoo.digits(), 16, epochs=3, progress=False)
    training = io.Zoo(trained.weights[:12], trained.layout, trained.metadata[:12])
    generated = io.Zoo(trained.weights[12:], trained.layout, trained.metadata[12:])
    io.save_checkpoints(training, root / "training")
    io.save_zoo(generated, root / "generated")  # the other supported form: a flat zoo
    yield root
    sys.path.remove(str(root))


def _audit_args(root, **changes):
    args = {"--training": root / "training", "--generated": root / "generated", "--template": "cli_models:digits_mlp",
            "--data": "digits", "--out": root / "out", "--grid": "20"}
    args.update(changes)
    return ["audit", "--quiet", *[str(x) for pair in args.items() for x in pair if x is not None]]


@pytest.mark.slow  # audits 16 MLPs and draws every figure (a few seconds)
def test_audit_command_writes_the_report(checkpoints, capsys):
    assert cli.main([*_audit_args(checkpoints), "--align"]) == 0
    out = checkpoints / "out"
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in capsys.readouterr().out
    doc = json.loads((out / "audit.json").read_text())
    assert doc["groups"]["training"]["models"] == 12 and doc["groups"]["generated"]["models"] == 4
    # Held-out runs of the same family: not copies.
    assert doc["verdicts"]["generated"]["near_copies"]["value"] == 0.0 and doc["settings"]["align"] is True


@pytest.mark.parametrize("changes, message", [
    ({"--training": "missing_dir"}, "--training missing_dir: no such file or directory"),
    ({"--template": "cli_models:wider_mlp"}, "--training"),
    ({"--template": "cli_models"}, "--template must be MODULE:CALLABLE"),
    ({"--template": "no_such_module:f"}, "--template no_such_module:f: cannot import it"),
    ({"--template": "cli_models:not_a_module"}, "returned int, not a torch.nn.Module"),
    ({"--data": "nowhere.pt"}, "--data must be 'digits' or a .safetensors/.pt file"),
])
def test_audit_command_bad_inputs_are_one_line_and_exit_2(checkpoints, capsys, changes, message):
    if changes.get("--training") == "missing_dir":
        changes = {"--training": checkpoints / "missing_dir"}
        message = f"--training {checkpoints / 'missing_dir'}: no such file or directory"
    assert cli.main(_audit_args(checkpoints, **changes)) == 2
    err = capsys.readouterr().err
    assert err.startswith("weightmem-fast audit: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mismatched_flat_zoo_layout_is_named(checkpoints, capsys):
    other = checkpoints / "other"
    wide = zoo.train_mlp_zoo(zoo.digits(), 2, epochs=1, hidden=12, progress=False)
    io.save_zoo(wide, other)
    assert cli.main(_audit_args(checkpoints, **{"--generated": other})) == 2
    assert "does not match the template's (760 parameters)" in capsys.readouterr().err


@pytest.mark.slow  # fits and meshes 8 small fields (a few seconds)
def test_audit_command_for_neural_fields(checkpoints, capsys):
    from safetensors.torch import save_file

    from weightmem_fast import fields

    shapes = fields.make_shapes("airplane", 8)
    fitted = fields.fit_fields(shapes, steps=200, hidden=8, progress=False)
    clouds = fields.shape_points(shapes, resolution=32, n_points=256).points
    io.save_zoo(io.Zoo(fitted.weights[:6], fitted.layout), checkpoints / "fields_training")
    io.save_zoo(io.Zoo(fitted.weights[:2].clone(), fitted.layout), checkpoints / "fields_generated")
    save_file({"training_clouds": clouds[:6].contiguous(), "test_clouds": clouds[6:].contiguous()},
              str(checkpoints / "clouds.safetensors"))
    args = _audit_args(checkpoints, **{"--training": checkpoints / "fields_training",
                                       "--generated": checkpoints / "fields_generated",
                                       "--template": "cli_models:small_field",
                                       "--data": checkpoints / "clouds.safetensors", "--out": checkpoints / "fout"})
    assert cli.main([*args, "--task", "field", "--no-baselines"]) == 0
    doc = json.loads((checkpoints / "fout" / "audit.json").read_text())
    assert doc["task"] == "field" and doc["settings"]["task"]["test_clouds"] == 2
    generated = [row for row in doc["models"] if row["group"] == "generated"]
    assert [(row["min_l2"], row["nearest_1"]) for row in generated] == [(0.0, 0), (0.0, 1)]  # the copies found
    # A classifier test set is not a field's data.
    bad = _audit_args(checkpoints, **{"--training": checkpoints / "fields_training",
                                      "--generated": checkpoints / "fields_generated",
                                      "--template": "cli_models:small_field", "--out": checkpoints / "fout"})
    assert cli.main([*bad, "--task", "field"]) == 2
    assert "'training_clouds' and 'test_clouds'" in capsys.readouterr().err


def test_debug_shows_the_traceback(checkpoints):
    with pytest.raises(Exception, match="MODULE:CALLABLE"):
        cli.main(["--debug", *_audit_args(checkpoints, **{"--template": "cli_models"})])


def test_demo_rejects_unknown_methods(capsys):
    assert cli.main(["demo", "--methods", "hr,nope", "--quick"]) == 2
    assert "--methods must be a comma-separated list of hr,gpt,hd,pdiff; got 'hr,nope'" in capsys.readouterr().err


def test_failures_are_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    from weightmem_fast import demo

    def broken(*args, **kwargs):
        raise RuntimeError("out of disk")

    monkeypatch.setattr(demo, "run_demo", broken)
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "weightmem-fast demo: failed: RuntimeError: out of disk" in err and "Traceback" not in err


def test_python_dash_m_runs_the_command():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "weightmem_fast", "info"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"]
    bad = subprocess.run([sys.executable, "-m", "weightmem_fast", "ablate", "--method", "pdiff", "--factors", "size"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "choose from epochs,noise,data" in bad.stderr
