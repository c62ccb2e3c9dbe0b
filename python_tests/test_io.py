"""Zoo I/O: round trips in every format, sharded reads, metadata, and errors that name the file (issue 5)."""
from __future__ import annotations

import json
import os
import re

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from weightmem_fast.io import Zoo, load_checkpoints, load_zoo, save_checkpoints, save_zoo
from weightmem_fast.layout import ParamLayout


def tiny_mlp() -> nn.Module:
    """3 -> 4 (ReLU) -> 2: D = 12 + 4 + 8 + 2 = 26."""
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


class WithBatchNorm(nn.Module):
    """Parameters plus BatchNorm buffers (running stats, an int64 counter) that are not part of the flat vector."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 2)


def make_zoo(n: int, with_metadata: bool = True) -> Zoo:
    models = [tiny_mlp() for _ in range(n)]
    layout = ParamLayout.from_module(models[0])
    weights = layout.flatten([m.state_dict() for m in models])
    metadata = [{"accuracy": 0.5 + i / 100, "loss": 1.0 / (i + 1), "seed": i, "epoch": 3, "run_id": f"run-{i}"}
                for i in range(n)] if with_metadata else None
    return Zoo(weights, layout, metadata)


class Opaque:
    """A custom class: weights_only loading must refuse to unpickle it."""

    def __init__(self) -> None:
        self.value = 3


class RunsCode:
    """Unpickling this would call os.mkdir(path): proof that pickled code never runs."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def name(path) -> str:
    """A match= fragment naming the file."""
    return re.escape(os.path.basename(path))


# ---------------------------------------------------------------------------------------------------------------
# Zoo
# ---------------------------------------------------------------------------------------------------------------

def test_zoo_len_and_row_subsets():
    zoo = make_zoo(5)
    assert len(zoo) == 5
    for index, rows in [(slice(1, 4), [1, 2, 3]), (slice(None, None, -2), [4, 2, 0]), (2, [2]), (-1, [4]),
                        ([3, 0], [3, 0]), (torch.tensor([4, -5]), [4, 0]),
                        (torch.tensor([True, False, True, False, False]), [0, 2]), ([], [])]:
        part = zoo[index]
        assert isinstance(part, Zoo) and part.layout == zoo.layout
        assert torch.equal(part.weights, zoo.weights[rows]) and part.weights.shape == (len(rows), 26)
        assert part.metadata == [zoo.metadata[r] for r in rows]
    assert zoo[1:3].weights.data_ptr() == zoo.weights[1].data_ptr()  # a slice is a view
    assert "N=5" in repr(zoo) and "D=26" in repr(zoo)


def test_zoo_defaults_metadata_and_rejects_bad_fields():
    layout = ParamLayout.from_module(tiny_mlp())
    assert Zoo(torch.zeros(3, 26), layout).metadata == [{}, {}, {}]
    with pytest.raises(TypeError, match="float32"):
        Zoo(torch.zeros(3, 26, dtype=torch.float64), layout)
    with pytest.raises(ValueError, match=r"\[N, 26\]"):
        Zoo(torch.zeros(3, 25), layout)
    with pytest.raises(ValueError, match="3 rows but 2 dicts"):
        Zoo(torch.zeros(3, 26), layout, [{}, {}])
    with pytest.raises(TypeError, match=r"metadata\[1\]"):
        Zoo(torch.zeros(2, 26), layout, [{}, "x"])
    zoo = Zoo(torch.zeros(3, 26), layout)
    with pytest.raises(IndexError, match="row 3"):
        zoo[3]
    with pytest.raises(IndexError, match="row 7"):
        zoo[[0, 7]]
    with pytest.raises(IndexError, match="bool mask"):
        zoo[torch.tensor([True, False])]


# ---------------------------------------------------------------------------------------------------------------
# Flat format
# ---------------------------------------------------------------------------------------------------------------

def test_flat_round_trip_keeps_weights_layout_and_metadata(tmp_path):
    zoo = make_zoo(4)
    zoo.metadata[1]["note"] = None
    zoo.metadata[2]["curve"] = [0.1, 0.2]
    zoo.metadata[3]["accuracy"] = torch.tensor(0.75)  # 0-d tensors are written as numbers
    save_zoo(zoo, tmp_path / "zoo")
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["layout.json", "metadata.jsonl",
                                                                    "weights.safetensors"]
    back = load_zoo(tmp_path / "zoo")
    assert torch.equal(back.weights, zoo.weights) and back.weights.dtype == torch.float32
    assert back.layout == zoo.layout
    assert back.metadata[:3] == zoo.metadata[:3]
    assert back.metadata[3]["accuracy"] == 0.75
    assert len((tmp_path / "zoo" / "metadata.jsonl").read_text().splitlines()) == 4


def test_flat_round_trip_of_empty_metadata_and_overwrite(tmp_path):
    save_zoo(make_zoo(3), tmp_path)
    zoo = make_zoo(2, with_metadata=False)
    save_zoo(zoo, tmp_path)  # replaces the earlier zoo's three files
    back = load_zoo(tmp_path)
    assert torch.equal(back.weights, zoo.weights) and back.metadata == [{}, {}]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("n", [1, 5, 7])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_cover_every_row_once_in_order(tmp_path, n, world):
    zoo = make_zoo(n)
    save_zoo(zoo, tmp_path)
    parts = [load_zoo(tmp_path, shard=(rank, world)) for rank in range(world)]
    sizes = [len(p) for p in parts]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1  # balanced shards
    assert torch.equal(torch.cat([p.weights for p in parts]), zoo.weights)
    assert [m for p in parts for m in p.metadata] == zoo.metadata


def test_shard_argument_is_checked(tmp_path):
    save_zoo(make_zoo(3), tmp_path)
    with pytest.raises(ValueError, match="0 <= rank < world"):
        load_zoo(tmp_path, shard=(2, 2))
    with pytest.raises(TypeError, match="pair of ints"):
        load_zoo(tmp_path, shard=2)


def test_flat_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_zoo(tmp_path / "nowhere")
    save_zoo(make_zoo(2), tmp_path)
    (tmp_path / "metadata.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata\.jsonl: missing"):
        load_zoo(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_flat_malformed_weights_file(tmp_path, damage):
    save_zoo(make_zoo(2), tmp_path)
    file = tmp_path / "weights.safetensors"
    data = file.read_bytes()
    damaged = {"truncate": data[: len(data) - 9], "garbage": b"not a safetensors file" * 4, "empty": b""}
    file.write_bytes(damaged[damage])
    with pytest.raises(ValueError, match=r"weights\.safetensors: not a readable safetensors file") as info:
        load_zoo(tmp_path)
    assert info.value.__cause__ is not None  # the library's exception is chained


def test_flat_weights_file_without_a_weights_matrix(tmp_path):
    save_zoo(make_zoo(2), tmp_path)
    save_file({"w": torch.zeros(2, 26)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match=r"weights\.safetensors: has no tensor 'weights'"):
        load_zoo(tmp_path)
    save_file({"weights": torch.zeros(2, 26, dtype=torch.float64)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match=r"weights\.safetensors: 'weights' must be a 2-D F32"):
        load_zoo(tmp_path)


def test_flat_layout_width_differs_from_weights(tmp_path):
    save_zoo(make_zoo(2), tmp_path)
    (tmp_path / "layout.json").write_text(ParamLayout.from_named_tensors([("w", (5,))]).to_json())
    with pytest.raises(ValueError, match=r"layout\.json describes D = 5 .*weights\.safetensors has width 26"):
        load_zoo(tmp_path)
    (tmp_path / "layout.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"layout\.json: not a valid ParamLayout JSON"):
        load_zoo(tmp_path)


def test_flat_metadata_line_count_and_syntax(tmp_path):
    save_zoo(make_zoo(3), tmp_path)
    meta = tmp_path / "metadata.jsonl"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match=r"metadata\.jsonl: has 2 metadata lines but the weights have N = 3"):
        load_zoo(tmp_path)
    meta.write_text("\n".join(lines[:2] + ["[1, 2]"]) + "\n")
    with pytest.raises(ValueError, match=r"metadata\.jsonl: line 3 is a JSON list"):
        load_zoo(tmp_path)
    meta.write_text("\n".join(lines[:2] + ["{oops"]) + "\n")
    with pytest.raises(ValueError, match=r"metadata\.jsonl: line 3 is not valid JSON"):
        load_zoo(tmp_path)


def test_save_zoo_rejects_unserialisable_metadata(tmp_path):
    zoo = make_zoo(2)
    zoo.metadata[1]["bad"] = {1, 2}
    with pytest.raises(TypeError, match=r"metadata\[1\] is not JSON-serialisable: it holds a set"):
        save_zoo(zoo, tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_flat_non_finite_weights_are_refused_unless_allowed(tmp_path, bad):
    zoo = make_zoo(4)
    zoo.weights[2, 20] = bad  # column 20 lies in "2.weight" (offsets 16..23)
    save_zoo(zoo, tmp_path)
    with pytest.raises(ValueError, match=r"weights\.safetensors: row 2 has a non-finite value .* tensor '2\.weight'"):
        load_zoo(tmp_path)
    with pytest.raises(ValueError, match=r"row 2 has a non-finite"):
        load_zoo(tmp_path, shard=(1, 2))  # the row number is the zoo's, not the shard's
    assert len(load_zoo(tmp_path, shard=(0, 2))) == 2  # a shard without the bad row loads
    back = load_zoo(tmp_path, allow_nonfinite=True)
    assert torch.equal(back.weights.nan_to_num(), zoo.weights.nan_to_num())


# ---------------------------------------------------------------------------------------------------------------
# Per-checkpoint formats
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_checkpoint_round_trip(tmp_path, fmt):
    zoo = make_zoo(3)
    files = save_checkpoints(zoo, tmp_path, format=fmt)
    assert [f.name for f in files] == [f"{i:06d}.{fmt}" for i in range(3)]
    for kwargs in ({}, {"layout": zoo.layout}, {"template": tiny_mlp()}):
        back = load_checkpoints(tmp_path, **kwargs)
        assert back.layout == zoo.layout  # safetensors files record the order; sorted names would differ
        assert torch.equal(back.weights, zoo.weights)
        assert back.metadata == [{"source": f.name} for f in files]


def test_pt_files_hold_only_their_own_row(tmp_path):
    zoo = make_zoo(50)
    save_checkpoints(zoo, tmp_path, format="pt")
    # the rows are views of one [50, 26] storage; saved uncloned, every file would hold all of it
    assert (tmp_path / "000000.pt").stat().st_size < 50 * 26 * 4


def test_user_checkpoints_with_buffers_through_a_template_or_a_subset(tmp_path):
    models = [WithBatchNorm() for _ in range(3)]
    for i, model in enumerate(models):
        model.bn.running_mean.fill_(i)
        torch.save(model.state_dict(), tmp_path / f"model_{i}.pth")
    expected = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]
    zoo = load_checkpoints(tmp_path, template=WithBatchNorm())
    assert zoo.layout.size == 12 + 4 + 4 + 4 + 8 + 2 and torch.equal(zoo.weights, torch.stack(expected))
    subset = load_checkpoints(tmp_path, template=WithBatchNorm(), include=["bn"])
    assert subset.layout.names == ["bn.weight", "bn.bias"]
    # without a template, every floating tensor of the state_dict, running statistics included, in its order
    derived = load_checkpoints(tmp_path)
    assert derived.layout.names == [k for k, v in models[0].state_dict().items() if v.is_floating_point()]
    assert derived.weights[2, 24:28].tolist() == [2.0] * 4  # bn.running_mean of model_2


def test_files_are_read_in_sorted_name_order_and_others_ignored(tmp_path):
    zoo = make_zoo(3)
    for row, state in zip(["b", "c", "a"], zoo.layout.unflatten(zoo.weights)):
        torch.save({k: v.clone() for k, v in state.items()}, tmp_path / f"{row}.pt")
    (tmp_path / "notes.txt").write_text("ignored")
    back = load_checkpoints(tmp_path, zoo.layout)
    assert [m["source"] for m in back.metadata] == ["a.pt", "b.pt", "c.pt"]
    assert torch.equal(back.weights, zoo.weights[[2, 0, 1]])


def test_foreign_safetensors_use_sorted_names_unless_given_a_template(tmp_path):
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    save_file({k: v.clone() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    derived = load_checkpoints(tmp_path)
    assert derived.layout.names[:6] == ["0.bias", "0.weight", "1.bias", "1.weight", "10.bias", "10.weight"]
    by_module = load_checkpoints(tmp_path, template=model)
    assert by_module.layout == ParamLayout.from_module(model)
    assert torch.equal(by_module.weights, ParamLayout.from_module(model).flatten(model.state_dict()))


def write_sharded(directory, stem: str, state: dict[str, torch.Tensor]) -> None:
    """An HF-style sharded checkpoint: two .safetensors shards and ``{stem}.safetensors.index.json``."""
    names = list(state)
    half = len(names) // 2
    weight_map = {}
    for part, chunk in enumerate([names[:half], names[half:]], start=1):
        shard = f"{stem}-{part:05d}-of-00002.safetensors"
        save_file({n: state[n].clone() for n in chunk}, str(directory / shard))
        weight_map.update({n: shard for n in chunk})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / f"{stem}.safetensors.index.json").write_text(json.dumps(index))


def test_sharded_index_is_one_checkpoint(tmp_path):
    zoo = make_zoo(3)
    states = zoo.layout.unflatten(zoo.weights)
    write_sharded(tmp_path, "a_model", states[0])
    save_file({k: v.clone() for k, v in states[1].items()}, str(tmp_path / "b_model.safetensors"))
    write_sharded(tmp_path, "c_model", states[2])
    back = load_checkpoints(tmp_path)
    assert [m["source"] for m in back.metadata] == ["a_model.safetensors.index.json", "b_model.safetensors",
                                                   "c_model.safetensors.index.json"]
    assert back.layout == zoo.layout  # weight_map order for the derived layout
    assert torch.equal(back.weights, zoo.weights)
    subset = load_checkpoints(tmp_path, template=tiny_mlp(), include=["2"])
    assert torch.equal(subset.weights, zoo.weights[:, 16:])


# ---------------------------------------------------------------------------------------------------------------
# Per-checkpoint errors
# ---------------------------------------------------------------------------------------------------------------

def test_checkpoints_missing_directory_or_no_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir: no such checkpoint directory"):
        load_checkpoints(tmp_path / "missing_dir")
    (tmp_path / "readme.txt").write_text("no checkpoints here")
    with pytest.raises(FileNotFoundError, match=f"{name(tmp_path)}: no checkpoint files"):
        load_checkpoints(tmp_path)
    save_zoo(make_zoo(2), tmp_path / "flat")
    with pytest.raises(ValueError, match="flat: is a flat zoo .* load_zoo"):
        load_checkpoints(tmp_path / "flat")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the garbage bytes
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_malformed_checkpoint_file_is_named(tmp_path, suffix, damage):
    zoo = make_zoo(2)
    save_checkpoints(zoo, tmp_path, format=suffix[1:])
    file = tmp_path / f"000001{suffix}"
    data = file.read_bytes()
    file.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x80garbage" * 8, "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"{name(file)}: malformed or truncated") as info:
        load_checkpoints(tmp_path, zoo.layout)
    assert info.value.__cause__ is not None


def test_pt_with_a_custom_object_is_refused(tmp_path):
    torch.save({"0.weight": torch.zeros(4, 3), "extra": Opaque()}, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match=r"custom\.pt: refused: it pickles objects .*Opaque.*weights_only=True"):
        load_checkpoints(tmp_path)


def test_pt_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"w": torch.zeros(2), "payload": RunsCode(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt: refused: .*mkdir"):
        load_checkpoints(tmp_path)
    assert not marker.exists()


def test_pt_that_is_not_a_state_dict(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(TypeError, match=r"tensor\.pt: holds a Tensor, not a state_dict"):
        load_checkpoints(tmp_path)
    (tmp_path / "tensor.pt").unlink()
    torch.save({"state_dict": tiny_mlp().state_dict(), "epoch": 3}, tmp_path / "train.pt")
    with pytest.raises(TypeError, match=r"train\.pt: entry 'state_dict' is a .*training checkpoint"):
        load_checkpoints(tmp_path)


def test_missing_key_or_wrong_shape_names_the_file(tmp_path):
    zoo = make_zoo(3)
    save_checkpoints(zoo, tmp_path, format="pt")
    state = torch.load(tmp_path / "000001.pt", weights_only=True)
    del state["2.bias"]
    torch.save(state, tmp_path / "000001.pt")
    with pytest.raises(ValueError, match=r"000001\.pt: does not match the layout: .*no tensor '2\.bias'"):
        load_checkpoints(tmp_path, zoo.layout)
    state["2.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "000001.pt")
    with pytest.raises(ValueError, match=r"000001\.pt: does not match the layout: .*'2\.bias' has shape \(3,\)"):
        load_checkpoints(tmp_path)  # the layout derived from 000000.pt


def test_extra_tensors_under_a_derived_layout_are_an_error(tmp_path):
    zoo = make_zoo(2)
    save_checkpoints(zoo, tmp_path, format="safetensors")
    states = zoo.layout.unflatten(zoo.weights)
    save_file({**{k: v.clone() for k, v in states[1].items()}, "3.weight": torch.zeros(2, 2)},
              str(tmp_path / "000001.safetensors"))
    with pytest.raises(ValueError, match=r"000001\.safetensors: has floating-point tensors \['3\.weight'\]"):
        load_checkpoints(tmp_path)
    assert len(load_checkpoints(tmp_path, zoo.layout)) == 2  # a given layout ignores tensors outside it


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_non_finite_checkpoint_is_refused_unless_allowed(tmp_path, fmt, bad):
    zoo = make_zoo(3)
    zoo.weights[1, 13] = bad  # column 13 lies in "0.bias" (offsets 12..15)
    save_checkpoints(zoo, tmp_path, format=fmt)
    with pytest.raises(ValueError, match=rf"000001\.{fmt}: tensor '0\.bias' holds a non-finite value"):
        load_checkpoints(tmp_path)
    back = load_checkpoints(tmp_path, allow_nonfinite=True)
    assert torch.equal(back.weights.nan_to_num(), zoo.weights.nan_to_num())


def test_sharded_index_errors_name_the_file(tmp_path):
    zoo = make_zoo(1)
    write_sharded(tmp_path, "m", zoo.layout.unflatten(zoo.weights)[0])
    (tmp_path / "m-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"m-00002-of-00002\.safetensors: missing, but m\.safetensors\.index"):
        load_checkpoints(tmp_path)
    index = tmp_path / "m.safetensors.index.json"
    index.write_text("{\"weight_map\": ")
    with pytest.raises(ValueError, match=r"m\.safetensors\.index\.json: malformed index"):
        load_checkpoints(tmp_path)
    index.write_text("{\"metadata\": {}}")
    with pytest.raises(ValueError, match=r"m\.safetensors\.index\.json: .*weight_map"):
        load_checkpoints(tmp_path)
    # the first shard holds 0.weight and 0.bias; this map also places 2.weight there
    index.write_text(json.dumps({"weight_map": {"0.weight": "m-00001-of-00002.safetensors", "2.weight":
                                                "m-00001-of-00002.safetensors"}}))
    with pytest.raises(ValueError, match=r"m-00001-of-00002\.safetensors: has no tensor '2\.weight'"):
        load_checkpoints(tmp_path)


def test_argument_errors(tmp_path):
    zoo = make_zoo(2)
    save_checkpoints(zoo, tmp_path / "a")
    with pytest.raises(ValueError, match="either layout, or template"):
        load_checkpoints(tmp_path / "a", zoo.layout, template=tiny_mlp())
    with pytest.raises(TypeError, match="layout must be a ParamLayout"):
        load_checkpoints(tmp_path / "a", {"0.weight": (4, 3)})
    with pytest.raises(FileExistsError, match=r"a: already holds checkpoint files \(000000\.safetensors"):
        save_checkpoints(zoo, tmp_path / "a")
    with pytest.raises(ValueError, match="format must be"):
        save_checkpoints(zoo, tmp_path / "b", format="npz")
