"""Reading and writing model zoos (issue 5, "Flat layout and I/O").

A zoo is N checkpoints of one architecture as flat float32 weights [N, D], the ``ParamLayout`` that says which
tensors form a row, and one metadata dict per row (accuracy, loss, seed, epoch, run_id, source file, ...).

Two on-disk forms:

- **flat** (``save_zoo`` / ``load_zoo``): a directory holding ``weights.safetensors`` (one float32 tensor
  ``"weights"`` [N, D]), ``layout.json`` (``ParamLayout.to_json()``) and ``metadata.jsonl`` (one JSON object per
  row, in row order). ``load_zoo(shard=(rank, world))`` reads a contiguous block of rows through safetensors'
  memory-mapped slices, so a rank never reads the whole matrix.
- **per checkpoint** (``load_checkpoints`` / ``save_checkpoints``): a directory of state_dicts, one per model:
  ``*.pt`` / ``*.pth`` (read with ``torch.load(weights_only=True)``, so pickled code never runs), ``*.safetensors``,
  or sharded Hugging Face-style checkpoints (``*.safetensors.index.json`` with a ``"weight_map"``; one checkpoint
  per index). Rows follow the sorted file names.

Every error names the file and the problem. Non-finite weights are refused on loading unless
``allow_nonfinite=True`` is passed: a generated model may legitimately be broken, but that must be a choice.

    >>> from weightmem_fast.io import Zoo, load_checkpoints, load_zoo, save_zoo
    >>> zoo = load_checkpoints("runs/", template=model)      # [N, D] in the module's parameter order
    >>> save_zoo(zoo, "zoo/")
    >>> part = load_zoo("zoo/", shard=(rank, world))         # rows [rank * N // world, (rank + 1) * N // world)
"""
from __future__ import annotations

import json
import operator
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._files import write_atomic
from .layout import ParamLayout, Selector

WEIGHTS_FILE = "weights.safetensors"
LAYOUT_FILE = "layout.json"
METADATA_FILE = "metadata.jsonl"
INDEX_SUFFIX = ".safetensors.index.json"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")

_ZOO_FORMAT = "weightmem_fast.zoo/1"
# safetensors headers do not keep the tensors' order (keys come back sorted), so save_checkpoints records the layout
# here; load_checkpoints uses it to keep a derived layout in the original order.
_LAYOUT_KEY = "weightmem_fast.layout"
# Rows checked for NaN/Inf at a time, scaled by D, so the bool mask stays around 16 M entries.
_FINITE_CHUNK_ELEMENTS = 1 << 24


@dataclass(eq=False, repr=False)
class Zoo:
    """N checkpoints of one architecture as flat weights, their layout, and one metadata dict per row.

    Attributes:
        weights: [N, D] float32 tensor (any device), row i = checkpoint i flattened by ``layout``. N may be 0
            (e.g. an empty shard). NaN/Inf are allowed in memory (a generated model may be broken); the loaders
            refuse them unless asked.
        layout: the ParamLayout of every row; ``layout.size == D``.
        metadata: N dicts of JSON-serialisable values (accuracy, loss, seed, epoch, run_id, source, ...); may be
            empty dicts. None (the default) gives N empty dicts.

    ``len(zoo)`` is N. ``zoo[rows]`` is a Zoo of a row subset: an int (one row, kept 2-D), a slice (weights are a
    view), or a sequence / int64 tensor of row indices or a bool mask [N] (weights are a copy). Metadata dicts are
    shallow-copied.

    Raises:
        TypeError: weights is not a float32 tensor, layout is not a ParamLayout, or metadata is not a list of dicts.
        ValueError: weights is not [N, layout.size], or len(metadata) != N.
    """

    weights: torch.Tensor
    layout: ParamLayout
    metadata: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.layout, ParamLayout):
            raise TypeError(f"Zoo.layout must be a ParamLayout; got {type(self.layout).__name__}")
        if not isinstance(self.weights, torch.Tensor):
            raise TypeError(f"Zoo.weights must be a torch.Tensor [N, D]; got {type(self.weights).__name__}")
        if self.weights.dtype != torch.float32:
            raise TypeError(f"Zoo.weights must be float32 [N, D]; got {self.weights.dtype}; convert with .float()")
        if self.weights.dim() != 2 or self.weights.shape[1] != self.layout.size:
            raise ValueError(
                f"Zoo.weights must be [N, {self.layout.size}] (D = layout.size); got shape {tuple(self.weights.shape)}"
            )
        n = self.weights.shape[0]
        if self.metadata is None:
            self.metadata = [{} for _ in range(n)]
        if not isinstance(self.metadata, list):
            raise TypeError(f"Zoo.metadata must be a list of N dicts; got {type(self.metadata).__name__}")
        if len(self.metadata) != n:
            raise ValueError(f"Zoo.metadata must have one dict per row: {n} rows but {len(self.metadata)} dicts")
        for row, entry in enumerate(self.metadata):
            if not isinstance(entry, dict):
                raise TypeError(f"Zoo.metadata[{row}] must be a dict; got {type(entry).__name__}")

    def __len__(self) -> int:
        return self.weights.shape[0]

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray | torch.Tensor) -> "Zoo":
        n = len(self)
        if isinstance(index, slice):
            rows = range(n)[index]
            if rows.step > 0:
                weights = self.weights[index]
            else:  # torch tensors do not take negative slice steps
                weights = self.weights.index_select(0, torch.tensor(list(rows), dtype=torch.int64,
                                                                    device=self.weights.device))
            return Zoo(weights, self.layout, [dict(self.metadata[i]) for i in rows])
        if isinstance(index, bool):
            raise TypeError("Zoo indices must be ints, slices, index sequences or bool masks; got a bool")
        if isinstance(index, (torch.Tensor, np.ndarray)) and index.ndim == 0:
            index = index.item()
            if isinstance(index, (bool, float)):
                raise TypeError(f"Zoo indices must be ints, slices, index sequences or bool masks; got {index!r}")
        if isinstance(index, int) or (not isinstance(index, (torch.Tensor, np.ndarray, list, tuple, range))
                                      and hasattr(index, "__index__")):
            i = operator.index(index)
            if not -n <= i < n:
                raise IndexError(f"row {i} is out of range for a zoo of {n} rows")
            i %= n
            return self[i : i + 1]
        if not isinstance(index, (torch.Tensor, np.ndarray, list, tuple, range)):
            raise TypeError(
                f"Zoo indices must be ints, slices, index sequences or bool masks; got {type(index).__name__}"
            )
        rows = torch.as_tensor(index)
        if rows.numel() == 0 and not rows.dtype == torch.bool:
            rows = rows.to(torch.int64)
        if rows.dtype == torch.bool:
            if tuple(rows.shape) != (n,):
                raise IndexError(f"a bool mask must have shape ({n},) for this zoo; got {tuple(rows.shape)}")
            rows = rows.nonzero().flatten()
        elif rows.dtype.is_floating_point or rows.dtype.is_complex or rows.dim() != 1:
            raise TypeError(f"row indices must be a 1-D integer sequence; got dtype {rows.dtype}, shape "
                            f"{tuple(rows.shape)}")
        rows = rows.to(device="cpu", dtype=torch.int64)
        if rows.numel() and (int(rows.min()) < -n or int(rows.max()) >= n):
            bad = rows[(rows < -n) | (rows >= n)][0]
            raise IndexError(f"row {int(bad)} is out of range for a zoo of {n} rows")
        rows = torch.where(rows < 0, rows + n, rows)
        weights = self.weights.index_select(0, rows.to(self.weights.device))
        return Zoo(weights, self.layout, [dict(self.metadata[i]) for i in rows.tolist()])

    def __repr__(self) -> str:
        keys = sorted({key for entry in (self.metadata or []) for key in entry})
        return (f"Zoo(N={len(self)}, D={self.layout.size}, tensors={len(self.layout.entries)}, "
                f"device={self.weights.device}, metadata keys={keys})")


# ----------------------------------------------------------------------------------------------------------------
# Flat format
# ----------------------------------------------------------------------------------------------------------------

def save_zoo(zoo: Zoo, path: str | os.PathLike) -> Path:
    """Writes the flat format: ``path/weights.safetensors``, ``path/layout.json``, ``path/metadata.jsonl``.

    The directory is created if needed; the three files are replaced if present (each written to a temporary file
    and renamed, so a crash never leaves a truncated file under the final name). CUDA weights are copied to the CPU
    for writing. Non-finite weights are written as they are (``load_zoo`` refuses them unless
    ``allow_nonfinite=True``).

    Args:
        zoo: the zoo; ``zoo.weights`` is [N, D] float32.
        path: the directory.

    Returns:
        The directory as a Path.

    Raises:
        TypeError: ``zoo`` is not a Zoo, or a metadata value is not JSON-serialisable (names the row and key).
        NotADirectoryError: ``path`` exists and is not a directory.
    """
    from safetensors.torch import save_file

    if not isinstance(zoo, Zoo):
        raise TypeError(f"save_zoo needs a Zoo; got {type(zoo).__name__}")
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: exists and is not a directory; save_zoo writes a directory")
    lines = [_metadata_line(row, entry) for row, entry in enumerate(zoo.metadata)]
    root.mkdir(parents=True, exist_ok=True)
    weights = zoo.weights.detach().to("cpu").contiguous()
    write_atomic(root / WEIGHTS_FILE, lambda tmp: save_file({"weights": weights}, str(tmp),
                                                            metadata={"format": _ZOO_FORMAT}))
    write_atomic(root / LAYOUT_FILE, lambda tmp: tmp.write_text(zoo.layout.to_json() + "\n", encoding="utf-8"))
    write_atomic(root / METADATA_FILE, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines),
                                                                   encoding="utf-8"))
    return root


def load_zoo(path: str | os.PathLike, *, shard: tuple[int, int] | None = None,
             allow_nonfinite: bool = False) -> Zoo:
    """Reads the flat format written by ``save_zoo``, or one contiguous block of its rows.

    Args:
        path: the zoo directory.
        shard: None for every row, or ``(rank, world)`` for rows ``[start, stop)`` with
            ``start = rank * N // world`` and ``stop = (rank + 1) * N // world``: the ranks 0..world-1 cover each
            row exactly once, in order, in shards whose sizes differ by at most one row (e.g. N = 5, world = 4 gives
            1, 1, 1, 2; with N < world the leading ranks get 0 rows). Only those rows are read from disk
            (memory-mapped slice), though ``metadata.jsonl`` is read whole to check its line count.
        allow_nonfinite: accept NaN/Inf weights (e.g. a saved set of generated models, some broken).

    Returns:
        A Zoo with weights [rows, D] float32 on the CPU and the rows' metadata.

    Raises:
        FileNotFoundError: the directory or one of its three files is missing.
        NotADirectoryError: ``path`` is a file.
        TypeError / ValueError: a bad ``shard``.
        ValueError (naming the file): a malformed or truncated file; no tensor "weights", or one that is not 2-D
            float32; layout.json's D differs from the weights' width; metadata.jsonl's line count differs from N
            or a line is not a JSON object; non-finite weights (names the row and tensor) unless allowed.
    """
    from safetensors import safe_open

    _shard_rows(0, shard)  # checks the argument before any file is opened
    root = _existing_dir(path, "zoo directory")
    files = {name: root / name for name in (WEIGHTS_FILE, LAYOUT_FILE, METADATA_FILE)}
    for file in files.values():
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: missing; a flat zoo directory holds {WEIGHTS_FILE}, {LAYOUT_FILE} and {METADATA_FILE} "
                "(written by save_zoo; for a directory of per-model checkpoints use load_checkpoints)"
            )
    weights_file = files[WEIGHTS_FILE]
    layout = _read_layout(files[LAYOUT_FILE])
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            if "weights" not in handle.keys():
                raise ValueError(f"{weights_file}: has no tensor 'weights' (found {list(handle.keys())})")
            flat = handle.get_slice("weights")
            shape, dtype = flat.get_shape(), flat.get_dtype()
            if len(shape) != 2 or dtype != "F32":
                raise ValueError(f"{weights_file}: 'weights' must be a 2-D F32 (float32) tensor [N, D]; got shape "
                                 f"{tuple(shape)} dtype {dtype}")
            n, width = shape
            if width != layout.size:
                raise ValueError(
                    f"{files[LAYOUT_FILE]} describes D = {layout.size} parameters per model but {weights_file} has "
                    f"width {width}; the two files do not belong together"
                )
            start, stop = _shard_rows(n, shard)
            weights = flat[start:stop].contiguous()
    except ValueError:
        raise
    except Exception as err:  # SafetensorError (malformed / truncated header), OSError
        raise ValueError(f"{weights_file}: not a readable safetensors file ({type(err).__name__}: {err})") from err
    metadata = _read_metadata(files[METADATA_FILE], n)[start:stop]
    if not allow_nonfinite:
        found = _first_nonfinite(weights, layout)
        if found is not None:
            row, name, value, count = found
            raise ValueError(
                f"{weights_file}: row {start + row} has a non-finite value ({value}) in tensor {name!r} "
                f"({count} of the {weights.shape[0]} rows read have NaN/Inf); pass allow_nonfinite=True to load "
                "them anyway"
            )
    return Zoo(weights, layout, metadata)


# ----------------------------------------------------------------------------------------------------------------
# Per-checkpoint format
# ----------------------------------------------------------------------------------------------------------------

def save_checkpoints(zoo: Zoo, path: str | os.PathLike,
                     format: Literal["safetensors", "pt"] = "safetensors") -> list[Path]:
    """Writes one state_dict file per row: ``path/{i:06d}.safetensors`` or ``path/{i:06d}.pt``.

    Each file holds exactly the layout's tensors (own storage, CPU). ``.safetensors`` files also record the layout
    in their header, so ``load_checkpoints`` without a layout restores the same tensor order (safetensors itself
    keeps names sorted). Metadata is not written (``load_checkpoints`` records each row's source file instead);
    use ``save_zoo`` to keep it.

    Args:
        zoo: the zoo; ``zoo.weights`` is [N, D] float32.
        path: the directory, created if needed.
        format: "safetensors" or "pt" (``torch.save`` of a dict of tensors).

    Returns:
        The N paths written, in row order.

    Raises:
        TypeError: ``zoo`` is not a Zoo.
        ValueError: an unknown ``format``.
        FileExistsError: the directory already holds checkpoint files (a later load would mix the two zoos).
    """
    if not isinstance(zoo, Zoo):
        raise TypeError(f"save_checkpoints needs a Zoo; got {type(zoo).__name__}")
    if format not in ("safetensors", "pt"):
        raise ValueError(f"format must be 'safetensors' or 'pt'; got {format!r}")
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: exists and is not a directory; save_checkpoints writes a directory")
    root.mkdir(parents=True, exist_ok=True)
    existing = [p.name for p in sorted(root.iterdir()) if _is_checkpoint_name(p.name)]
    if existing:
        raise FileExistsError(
            f"{root}: already holds checkpoint files ({', '.join(existing[:3])}{', ...' if len(existing) > 3 else ''});"
            " write to an empty directory so that load_checkpoints does not mix two zoos"
        )
    written = []
    weights = zoo.weights.detach().to("cpu")
    for row, state in enumerate(zoo.layout.unflatten(weights)):
        # clone: the views share the [N, D] storage, and torch.save would write all of it into every file.
        state = {name: tensor.clone() for name, tensor in state.items()}
        file = root / f"{row:06d}.{format}"
        if format == "safetensors":
            from safetensors.torch import save_file

            write_atomic(file, lambda tmp: save_file(state, str(tmp), metadata={_LAYOUT_KEY: zoo.layout.to_json()}))
        else:
            write_atomic(file, lambda tmp: torch.save(state, tmp))
        written.append(file)
    return written


def load_checkpoints(path: str | os.PathLike, layout: ParamLayout | None = None, *,
                     template: nn.Module | None = None, include: Selector = None,
                     allow_nonfinite: bool = False) -> Zoo:
    """Reads a directory of per-model checkpoints into a Zoo, one row per checkpoint.

    Checkpoints are the directory's ``*.pt`` / ``*.pth`` files (``torch.load(map_location="cpu",
    weights_only=True)``: only tensors and plain containers are unpickled, never code), ``*.safetensors`` files, and
    sharded checkpoints (``*.safetensors.index.json`` whose ``"weight_map"`` maps tensor names to shard files in the
    same directory; the index is one checkpoint and its shards are not read on their own). Other files are ignored.
    Rows follow the file names in sorted (lexicographic) order, so "ckpt_10" comes before "ckpt_2": zero-pad
    numbers. Each row's metadata is ``{"source": <file name>}``.

    The layout is, in order of precedence: ``layout``; ``ParamLayout.from_module(template, include)``; or
    ``ParamLayout.from_state_dict(first checkpoint, include)``. In the last case the order is the first file's:
    a .pt state_dict's order, a sharded index's weight_map order, and for a .safetensors file the order recorded by
    ``save_checkpoints`` or else sorted names (safetensors does not keep the order; pass ``template`` to get the
    module's). Tensors outside the layout (BatchNorm buffers, the part a subset leaves out) are ignored, except that
    a derived layout without ``include`` means "every floating tensor", so a later checkpoint with extra floating
    tensors is an error. Values are converted to float32; only the layout's tensors are read from safetensors files.

    Args:
        path: the directory.
        layout: the layout of every checkpoint; excludes ``template`` and ``include``.
        template: a module of the zoo's architecture; its parameter order gives the layout.
        include: a subset selector, as in ``ParamLayout.from_module``.
        allow_nonfinite: accept checkpoints with NaN/Inf in the layout's tensors.

    Returns:
        A Zoo with weights [N, D] float32 on the CPU, N = the number of checkpoints.

    Raises:
        FileNotFoundError: the directory is missing, has no checkpoint files, or an index names a missing shard.
        NotADirectoryError: ``path`` is a file.
        TypeError: ``layout`` / ``template`` of the wrong type; a .pt file that does not hold a dict of tensors.
        ValueError (naming the file): a malformed or truncated file; a .pt file that weights_only loading refuses
            because it pickles other objects; a missing tensor or wrong shape for the layout; extra floating tensors
            under a derived layout; a non-finite value (names the tensor) unless allowed; a flat zoo directory
            (use ``load_zoo``); ``layout`` given together with ``template`` / ``include``.
    """
    root = _existing_dir(path, "checkpoint directory")
    if layout is not None:
        if not isinstance(layout, ParamLayout):
            raise TypeError(f"layout must be a ParamLayout; got {type(layout).__name__}")
        if template is not None or include is not None:
            raise ValueError("give either layout, or template (optionally with include), not both")
    if template is not None and not isinstance(template, nn.Module):
        raise TypeError(f"template must be an nn.Module; got {type(template).__name__}")
    if (root / WEIGHTS_FILE).is_file() and (root / LAYOUT_FILE).is_file():
        raise ValueError(f"{root}: is a flat zoo ({WEIGHTS_FILE} + {LAYOUT_FILE}); read it with load_zoo")
    sources = _discover(root)
    if not sources:
        raise FileNotFoundError(
            f"{root}: no checkpoint files (*.pt, *.pth, *.safetensors, *{INDEX_SUFFIX}) in this directory"
        )
    if layout is None and template is not None:
        layout = ParamLayout.from_module(template, include)
    derived = layout is None
    first_float: set[str] = set()
    weights: torch.Tensor | None = None
    for row, source in enumerate(sources):
        state, float_names = source.read(None if layout is None else layout.names)
        if derived and row == 0:
            try:
                layout = ParamLayout.from_state_dict(state, include)
            except ValueError as err:
                raise ValueError(f"{source.path}: cannot take the layout from this first checkpoint: {err}") from err
            first_float = set(float_names)
        elif derived and include is None:
            extra = [name for name in float_names if name not in first_float]
            if extra:
                raise ValueError(
                    f"{source.path}: has floating-point tensors {extra} that the first checkpoint "
                    f"({sources[0].path.name}) lacks, so the checkpoints do not share an architecture; the layout "
                    "was taken from the first checkpoint: pass layout=, template= or include= to choose the tensors"
                )
        if weights is None:
            weights = torch.empty(len(sources), layout.size, dtype=torch.float32)
        try:
            weights[row] = layout.flatten(state)[0].cpu()
        except ValueError as err:
            raise ValueError(f"{source.path}: does not match the layout: {err}") from err
        if not allow_nonfinite:
            found = _first_nonfinite(weights[row : row + 1], layout)
            if found is not None:
                _, name, value, _ = found
                raise ValueError(
                    f"{source.path}: tensor {name!r} holds a non-finite value ({value}) (row {row}, as float32); pass "
                    "allow_nonfinite=True to load it anyway"
                )
    return Zoo(weights, layout, [{"source": source.path.name} for source in sources])


# ----------------------------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    """One checkpoint: a .pt/.pth/.safetensors file, or a sharded index with its weight_map."""

    path: Path
    weight_map: dict[str, str] | None = None

    def read(self, names: list[str] | None) -> tuple[dict[str, torch.Tensor], list[str]]:
        """(tensors, names of every floating tensor in the checkpoint); with ``names``, safetensors files load only
        those tensors (the ones they hold)."""
        if self.weight_map is not None:
            return _read_sharded(self.path, self.weight_map, names)
        if self.path.name.endswith(".safetensors"):
            return _read_safetensors(self.path, names)
        return _read_pickle(self.path)


def _discover(root: Path) -> list[_Source]:
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    sources, shards = [], set()
    for file in files:
        if file.name.endswith(INDEX_SUFFIX):
            weight_map = _read_index(file)
            shards.update((root / shard).resolve() for shard in weight_map.values())
            sources.append(_Source(file, weight_map))
    for file in files:
        if file.name.endswith(CHECKPOINT_SUFFIXES) and file.resolve() not in shards:
            sources.append(_Source(file))
    return sorted(sources, key=lambda source: source.path.name)


def _is_checkpoint_name(name: str) -> bool:
    return not name.startswith(".") and (name.endswith(CHECKPOINT_SUFFIXES) or name.endswith(INDEX_SUFFIX))


def _read_pickle(file: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            # torch words this differently by case: "Unsupported global: GLOBAL fractions.Fraction was not an
            # allowed global" for classes, "unsupported GLOBAL posix.mkdir whose module posix is blocked" for functions
            found = re.search(r"GLOBAL ([\w.]+)", str(err))
            what = found.group(1) if found else "see the chained error"
            raise ValueError(
                f"{file}: refused: it pickles objects other than tensors and plain containers ({what}), and "
                "loading with weights_only=True never runs pickled code; if the file is trusted, load it yourself "
                "and re-save a plain state_dict (names -> tensors)"
            ) from err
        raise ValueError(f"{file}: malformed or truncated .pt file ({type(err).__name__}: {err})") from err
    except MemoryError:
        raise
    except Exception as err:  # RuntimeError (truncated zip), EOFError (empty), KeyError (garbage), ...
        message = str(err).split(". ")[0]  # torch appends long advice to the first sentence
        detail = f"{type(err).__name__}: {message}" if message else type(err).__name__
        raise ValueError(f"{file}: malformed or truncated .pt file ({detail})") from err
    if not isinstance(state, Mapping):
        raise TypeError(f"{file}: holds a {type(state).__name__}, not a state_dict (a dict of names -> tensors)")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            hint = ""
            nested = [key for key, val in state.items() if isinstance(val, Mapping)]
            if nested:
                hint = f"; it looks like a training checkpoint: save its state_dict (under {nested[0]!r}?) alone"
            raise TypeError(
                f"{file}: entry {name!r} is a {type(value).__name__}, not a tensor; expected a state_dict "
                f"(names -> tensors){hint}"
            )
    return dict(state), [name for name, value in state.items() if torch.is_floating_point(value)]


def _read_safetensors(file: Path, names: list[str] | None,
                      context: str = "") -> tuple[dict[str, torch.Tensor], list[str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            keys = list(handle.keys())
            float_names = [key for key in keys if handle.get_slice(key).get_dtype().startswith(("F", "BF"))]
            if names is None:
                keys = _recorded_order(handle.metadata(), keys)
                wanted = keys
            else:
                present = set(keys)
                wanted = [name for name in names if name in present]
            state = {name: handle.get_tensor(name) for name in wanted}
    except Exception as err:  # SafetensorError (malformed / truncated), OSError
        raise ValueError(
            f"{file}: malformed or truncated safetensors file{context} ({type(err).__name__}: {err})"
        ) from err
    return state, float_names


def _recorded_order(header: dict[str, str] | None, keys: list[str]) -> list[str]:
    """``keys`` in the order save_checkpoints recorded, then any others in file order."""
    if not header or _LAYOUT_KEY not in header:
        return keys
    try:
        recorded = ParamLayout.from_json(header[_LAYOUT_KEY]).names
    except ValueError:
        return keys
    present = set(keys)
    first = [name for name in recorded if name in present]
    chosen = set(first)
    return first + [key for key in keys if key not in chosen]


def _read_index(file: Path) -> dict[str, str]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: malformed index, not JSON ({err})") from err
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{file}: a sharded-checkpoint index needs a non-empty \"weight_map\" object "
                         "(tensor name -> shard file)")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard.endswith(".safetensors") or Path(shard).name != shard:
            raise ValueError(f"{file}: weight_map[{name!r}] = {shard!r} is not a .safetensors file name in the "
                             "index's directory")
    return weight_map


def _read_sharded(index: Path, weight_map: dict[str, str],
                  names: list[str] | None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A sharded checkpoint's tensors in weight_map order (only ``names`` if given)."""
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(name)
    wanted = set(weight_map) if names is None else set(names)
    state: dict[str, torch.Tensor] = {}
    float_names: set[str] = set()
    for shard, listed in by_shard.items():
        file = index.parent / shard
        if not file.is_file():
            raise FileNotFoundError(f"{file}: missing, but {index.name}'s weight_map lists it")
        loaded, floats = _read_safetensors(file, [name for name in listed if name in wanted],
                                           context=f" (a shard of {index.name})")
        missing = [name for name in listed if name in wanted and name not in loaded]
        if missing:
            raise ValueError(f"{file}: has no tensor {missing[0]!r}, which {index.name}'s weight_map places there")
        state.update(loaded)
        float_names.update(name for name in floats if name in weight_map)
    ordered = {name: state[name] for name in weight_map if name in state}
    return ordered, [name for name in weight_map if name in float_names]


def _existing_dir(path: str | os.PathLike, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such {what}")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory; expected a {what}")
    return root


def _shard_rows(n: int, shard: object) -> tuple[int, int]:
    if shard is None:
        return 0, n
    if not isinstance(shard, (tuple, list)) or len(shard) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in shard
    ):
        raise TypeError(f"shard must be None or a pair of ints (rank, world); got {shard!r}")
    rank, world = shard
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard (rank, world) needs world >= 1 and 0 <= rank < world; got {tuple(shard)}")
    # Balanced: shard sizes differ by at most one row, so no rank idles while another holds two extra.
    return rank * n // world, (rank + 1) * n // world


def _read_layout(file: Path) -> ParamLayout:
    try:
        return ParamLayout.from_json(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: {err}") from err


def _read_metadata(file: Path, n: int) -> list[dict[str, Any]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{file}: not UTF-8 text ({err})") from err
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{file}: line {number} is not valid JSON ({err})") from err
        if not isinstance(entry, dict):
            raise ValueError(f"{file}: line {number} is a JSON {type(entry).__name__}, expected an object")
        rows.append(entry)
    if len(rows) != n:
        raise ValueError(f"{file}: has {len(rows)} metadata lines but the weights have N = {n} rows; "
                         "one JSON object per row is needed")
    return rows


def _metadata_line(row: int, entry: dict[str, Any]) -> str:
    def convert(value: object) -> object:
        if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
            return value.tolist()
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError(f"it holds a {type(value).__name__} value")

    try:
        return json.dumps(entry, default=convert, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise TypeError(f"zoo.metadata[{row}] is not JSON-serialisable: {err}") from err


def _first_nonfinite(weights: torch.Tensor, layout: ParamLayout) -> tuple[int, str, float, int] | None:
    """(first bad row, its first bad tensor's name, the value, number of bad rows), or None if all are finite."""
    rows_per_chunk = max(1, _FINITE_CHUNK_ELEMENTS // max(1, weights.shape[1]))
    first, count = None, 0
    for begin in range(0, weights.shape[0], rows_per_chunk):
        bad = ~torch.isfinite(weights[begin : begin + rows_per_chunk]).all(dim=1)
        count += int(bad.sum())
        if first is None and bool(bad.any()):
            first = begin + int(bad.nonzero()[0])
    if first is None:
        return None
    column = int((~torch.isfinite(weights[first])).nonzero()[0])
    entry = next(e for e in layout.entries if e.offset <= column < e.offset + e.numel)
    return first, entry.name, float(weights[first, column]), count
