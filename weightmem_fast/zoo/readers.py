"""Readers for MNIST, Fashion-MNIST and CIFAR-10 files a user already has on disk (issue 5).

No network and no torchvision: the files are parsed with numpy. Each reader looks in ``root`` itself and in the
folders torchvision's dataset classes use, so files fetched once with, e.g., ``torchvision.datasets.MNIST(root,
download=True)`` on a connected machine load here as ``mnist(root)``.

CIFAR-10 batches are Python pickles. They are opened with an unpickler that resolves only the few numpy globals an
array needs and refuses every other global before it is called, so a tampered file cannot run code.
"""
from __future__ import annotations

import codecs
import gzip
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .data import Dataset

__all__ = ["cifar10", "mnist"]

_NUM_CLASSES = 10
_IDX_IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dimensions [S, rows, cols]
_IDX_LABELS_MAGIC = 0x00000801  # uint8 data, 1 dimension [S]
_MNIST_SIDE = 28
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_PIXELS = 3 * 32 * 32
_GZIP_SIGNATURE = b"\x1f\x8b"


def mnist(root: str | os.PathLike, *, fashion: bool = False) -> Dataset:
    """MNIST or Fashion-MNIST from the four IDX files, each plain or gzip-compressed.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each optionally ending in ``.gz`` (a plain name wins over ``.gz`` when both
    exist; gzip data is recognised by its signature, whatever the name). The first of these folders that holds all
    four is used: ``root/MNIST/raw`` (``root/FashionMNIST/raw`` with ``fashion=True``; torchvision's layout),
    ``root/raw``, then ``root``. Both data sets use the same file names, so a folder searched later may hold the
    other one: keep them in separate folders.

    Args:
        root: the folder holding the files, or torchvision's ``root``.
        fashion: read Fashion-MNIST (name "fashion_mnist", torchvision folder ``FashionMNIST``) instead of MNIST.

    Returns:
        Dataset "mnist" or "fashion_mnist", num_classes 10. train_x [S_train, 1, 28, 28] and test_x
        [S_test, 1, 28, 28] are float32 on the CPU, pixel / 255 (so in [0, 1]); train_y and test_y are int64 in
        [0, 9]. The full files give S_train = 60000 and S_test = 10000; smaller files are read as they are.

    Raises:
        TypeError: root is not a str or os.PathLike, or fashion is not a bool.
        FileNotFoundError: no searched folder holds all four files; the message lists each folder and what it lacks.
        ValueError: a file is not an IDX file of the expected kind (magic number, 28 x 28 images), is truncated or
            has trailing bytes, is a damaged gzip file, holds no images, has a label above 9, or the images and
            labels of a split differ in count. The message names the file.
    """
    root = _root_path(root)
    if not isinstance(fashion, bool):
        raise TypeError(f"fashion must be a bool (True for Fashion-MNIST); got {type(fashion).__name__}")
    name, folder = ("fashion_mnist", "FashionMNIST") if fashion else ("mnist", "MNIST")
    searched = [root / folder / "raw", root / "raw", root]
    paths = _find_all(searched, _MNIST_FILES, gz_ok=True, what=f"the {name} IDX files")
    train_x, train_y = _mnist_split(paths[0], paths[1])
    test_x, test_y = _mnist_split(paths[2], paths[3])
    return Dataset(name, train_x, train_y, test_x, test_y, _NUM_CLASSES)


def cifar10(root: str | os.PathLike) -> Dataset:
    """CIFAR-10 from the python-pickle batches ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``.

    The first of ``root/cifar-10-batches-py`` (torchvision's layout, and what extracting the official
    ``cifar-10-python.tar.gz`` gives) and ``root`` that holds all six files is used. Each batch is a pickled dict
    with ``data`` (uint8 [S, 3072]: 1024 red, then green, then blue values, each row-major 32 x 32) and ``labels``
    (ints in [0, 9]); keys may be bytes (the official files) or str. Only the numpy globals an array needs are
    resolved while unpickling; anything else is refused before it is called.

    Args:
        root: the folder holding the batches, or its parent (torchvision's ``root``).

    Returns:
        Dataset "cifar10", num_classes 10. train_x [S_train, 3, 32, 32] (batches 1 to 5 in order) and test_x
        [S_test, 3, 32, 32] are float32 on the CPU, pixel / 255 (so in [0, 1]), channels R, G, B; train_y and test_y
        are int64 in [0, 9]. The official files give S_train = 50000 and S_test = 10000.

    Raises:
        TypeError: root is not a str or os.PathLike.
        FileNotFoundError: no searched folder holds all six batches; the message lists each folder and what it lacks.
        ValueError: a batch is not a readable pickle, refers to a global other than the numpy array machinery, is not
            a dict with ``data`` and ``labels``, has data that is not uint8 [S, 3072], or labels that are not S
            integers in [0, 9]. The message names the file.
    """
    root = _root_path(root)
    searched = [root / _CIFAR_FOLDER, root]
    paths = _find_all(searched, (*_CIFAR_TRAIN, _CIFAR_TEST), gz_ok=False, what="the CIFAR-10 python batches")
    train = [_cifar_batch(path) for path in paths[:-1]]
    test_x, test_y = _cifar_batch(paths[-1])
    train_x = torch.cat([x for x, _ in train])
    train_y = torch.cat([y for _, y in train])
    return Dataset("cifar10", train_x, train_y, test_x, test_y, _NUM_CLASSES)


# ---------------------------------------------------------------------------------------------------- locating files

def _root_path(root: object) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike naming a folder; got {type(root).__name__}")
    return Path(root).expanduser()


def _find_all(searched: Sequence[Path], names: Sequence[str], *, gz_ok: bool, what: str) -> list[Path]:
    """The paths of ``names`` in the first folder of ``searched`` holding all of them (never a mix of folders)."""
    lacking = []
    for folder in searched:
        found, missing = [], []
        for name in names:
            options = (name, name + ".gz") if gz_ok else (name,)
            path = next((folder / o for o in options if (folder / o).is_file()), None)
            if path is None:
                missing.append(name)
            else:
                found.append(path)
        if not missing:
            return found
        lacking.append(f"  {folder}: " + ("no such folder" if not folder.is_dir() else "lacks " + ", ".join(missing)))
    hint = ""
    if not gz_ok and any((folder / "cifar-10-python.tar.gz").is_file() for folder in searched):
        hint = f" Found cifar-10-python.tar.gz: extract it first (tar -xzf cifar-10-python.tar.gz -C {searched[-1]})."
    gz_note = " (each plain or .gz)" if gz_ok else ""
    raise FileNotFoundError(
        f"could not find {what}{gz_note}; searched:\n" + "\n".join(lacking) + "\nCopy the files into one of these "
        "folders (e.g. fetch them on a machine with network access with torchvision's dataset class, "
        f"download=True, and copy its root); this reader never downloads.{hint}"
    )


# --------------------------------------------------------------------------------------------------------- MNIST

def _mnist_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC, 3, "images")
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, 1, "labels")
    if images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(f"{images_path}: expected {_MNIST_SIDE} x {_MNIST_SIDE} images; the header says "
                         f"{images.shape[1]} x {images.shape[2]}. Is this an MNIST / Fashion-MNIST file?")
    if images.shape[0] == 0:
        raise ValueError(f"{images_path}: holds 0 images; re-download or re-extract it")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} "
                         "labels; they must match (are both files from the same data set and split?)")
    _check_label_range(labels_path, labels)
    return _to_unit_float(images[:, None]), torch.from_numpy(labels.astype(np.int64))


def _read_idx(path: Path, magic: int, ndim: int, kind: str) -> np.ndarray:
    """An IDX file's uint8 array: 4-byte big-endian magic, ``ndim`` big-endian uint32 sizes, then the data."""
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        got = f"0x{int.from_bytes(raw[:4], 'big'):08X}" if len(raw) >= 4 else f"a {len(raw)}-byte file"
        raise ValueError(f"{path}: expected an IDX {kind} file (uint8, {ndim}-D) starting with magic number "
                         f"0x{magic:08X}; got {got}. Check that the file is the one its name says and is not damaged.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes; the header alone is {header}); "
                         "re-download or re-extract the file")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header + math.prod(shape)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: {problem}: its header says {kind} of shape {shape}, {expected} bytes in all; "
                         f"the file holds {len(raw)}. Re-download or re-extract it.")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_SIGNATURE):  # IDX files start with two zero bytes, so this cannot misfire
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: damaged gzip file ({err}); re-download it") from err


# ------------------------------------------------------------------------------------------------------- CIFAR-10

def _cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _load_numpy_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict with 'data' and 'labels' (a CIFAR-10 batch); "
                         f"got {type(batch).__name__}")
    data = _batch_entry(path, batch, "data")
    labels = _batch_entry(path, batch, "labels")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _CIFAR_PIXELS):
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array [S, {_CIFAR_PIXELS}] (3 x 32 x 32 per row); "
                         f"got {got}. Is this a CIFAR-10 python batch (not CIFAR-100 or the binary version)?")
    if data.shape[0] == 0:
        raise ValueError(f"{path}: holds 0 images; re-download or re-extract it")
    expected = f"{path}: 'labels' must be {data.shape[0]} integers (one per row of 'data'); got"
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise ValueError(f"{expected} {type(labels).__name__} that numpy cannot read as an array ({err})") from err
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.shape[0] != data.shape[0]:
        raise ValueError(f"{expected} {labels.dtype} values of shape {labels.shape}")
    _check_label_range(path, labels)
    return _to_unit_float(data.reshape(-1, 3, 32, 32)), torch.from_numpy(labels.astype(np.int64))


def _batch_entry(path: Path, batch: dict, key: str) -> Any:
    # The official files were pickled by Python 2, so with encoding="bytes" their keys are bytes.
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    keys = ", ".join(repr(k) for k in list(batch)[:8])
    raise ValueError(f"{path}: CIFAR-10 batch has no {key!r} entry (as bytes or str); its keys are: {keys}")


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1"); allowing only that codec
    # keeps the call from reaching any other codec.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal("_codecs", f"encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _frombuffer(buffer: object, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    # numpy's own pickling helper for protocol 5 does exactly this; defined here to avoid numpy's private modules.
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array reconstructor, whatever module it lives in
_SCALAR = np.int64(0).__reduce__()[0]  # numpy's scalar reconstructor (labels written as numpy ints)
# Everything a pickled numpy array (or numpy scalar) needs, keyed by the (module, name) pickles record; the legacy
# numpy.core names are what the official files (and numpy 1.x) wrote, mapped to the objects without importing the
# deprecated numpy.core shim.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _RECONSTRUCT for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _SCALAR for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    # Protocol 2 writes b"" (the data of an empty array) as __builtin__.bytes(); it builds only byte strings.
    **{(module, "bytes"): bytes for module in ("__builtin__", "builtins")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only ``_ALLOWED_GLOBALS``; any other global is refused before anything can call it."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(module, name) from None


def _load_numpy_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    except _RefusedGlobal as err:
        raise ValueError(
            f"{path}: refused to load the pickled global {err.qualified}: a CIFAR-10 batch holds only numpy "
            "arrays, lists, bytes and ints, and resolving other globals could run arbitrary code (nothing from the "
            "file was run). Use the official cifar-10-python.tar.gz files."
        ) from None
    except OSError:
        raise
    except Exception as err:  # any malformed pickle: the unpickler raises many types on garbage input
        raise ValueError(f"{path}: not a readable CIFAR-10 batch pickle ({type(err).__name__}: {err}); "
                         "re-download or re-extract it") from err


# ------------------------------------------------------------------------------------------------------- shared

def _check_label_range(path: Path, labels: np.ndarray) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= _NUM_CLASSES))
    if bad.size:
        raise ValueError(f"{path}: labels must be in [0, {_NUM_CLASSES - 1}]; {bad.size} are not, first "
                         f"{int(labels[bad[0]])} at position {int(bad[0])}")


def _to_unit_float(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels as float32 pixel / 255 (a writable copy, so torch shares no read-only file buffer)."""
    return torch.from_numpy(pixels.astype(np.float32)).div_(255.0)
