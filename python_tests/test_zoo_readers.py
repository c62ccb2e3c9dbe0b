"""Readers for MNIST / Fashion-MNIST (IDX) and CIFAR-10 (python pickle) files on disk (issue 5).

Every test writes tiny files in the real formats into tmp_path; nothing is downloaded.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from weightmem_fast.zoo import Dataset, cifar10, mnist

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
CIFAR_NAMES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


# ------------------------------------------------------------------------------------------------------ helpers

def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file: big-endian magic (uint8 data, array.ndim dimensions), big-endian uint32 sizes, then the data."""
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def mnist_arrays(seed: int, train: int = 5, test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (train, test)]
    for block in images:  # both extremes appear, so the scaling check sees 0.0 and 1.0 exactly
        block[0, 0, 0], block[0, 27, 27] = 0, 255
    labels = [rng.integers(0, 10, n, dtype=np.uint8) for n in (train, test)]
    labels[0][:2] = (0, 9)
    return dict(zip(MNIST_NAMES, (images[0], labels[0], images[1], labels[1])))


def write_mnist(folder: Path, arrays: dict[str, np.ndarray], gz: tuple[bool, ...] = (False,) * 4) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for (name, array), compress in zip(arrays.items(), gz):
        data = idx_bytes(array)
        path = folder / (name + ".gz" if compress else name)
        path.write_bytes(gzip.compress(data) if compress else data)
        paths[name] = path
    return paths


def cifar_arrays(seed: int, sizes=(2, 3, 1, 2, 2, 3)) -> dict[str, tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in zip(CIFAR_NAMES, sizes):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        data[0, 0], data[0, -1] = 0, 255
        out[name] = (data, [int(v) for v in rng.integers(0, 10, n)])
    return out


def write_cifar(folder: Path, arrays, *, protocol: int = 2, str_keys: bool = False) -> dict[str, Path]:
    """Batches shaped like the official files: a dict with bytes keys, a uint8 data array and a list of labels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (data, labels) in arrays.items():
        key = (lambda k: k) if str_keys else (lambda k: k.encode())
        batch = {key("batch_label"): name.encode(), key("labels"): labels, key("data"): data,
                 key("filenames"): [f"img_{i}.png".encode() for i in range(len(labels))]}
        paths[name] = folder / name
        with open(paths[name], "wb") as handle:
            pickle.dump(batch, handle, protocol=protocol)
    return paths


def write_batch(path: Path, batch: object) -> None:
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


def expected_unit(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32)) / 255


def check_split(x: torch.Tensor, y: torch.Tensor, pixels: np.ndarray, labels) -> None:
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, expected_unit(pixels))
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(pixels))  # exact pixel round trip
    assert torch.equal(y, torch.as_tensor(np.asarray(labels, dtype=np.int64)))


# --------------------------------------------------------------------------------------------------------- MNIST

@pytest.mark.parametrize("layout,fashion", [(".", False), ("MNIST/raw", False), ("raw", False), (".", True),
                                            ("FashionMNIST/raw", True)])
@pytest.mark.parametrize("gz", [(False,) * 4, (True,) * 4, (True, False, False, True)], ids=["plain", "gz", "mixed"])
def test_mnist_reads_every_layout_and_compression(tmp_path, layout, fashion, gz):
    arrays = mnist_arrays(seed=1)
    write_mnist(tmp_path / layout, arrays, gz)
    data = mnist(tmp_path, fashion=fashion)
    assert isinstance(data, Dataset)
    assert data.name == ("fashion_mnist" if fashion else "mnist") and data.num_classes == 10
    assert data.train_x.shape == (5, 1, 28, 28) and data.test_x.shape == (3, 1, 28, 28)
    assert data.input_shape == (1, 28, 28)
    check_split(data.train_x, data.train_y, arrays[MNIST_NAMES[0]][:, None], arrays[MNIST_NAMES[1]])
    check_split(data.test_x, data.test_y, arrays[MNIST_NAMES[2]][:, None], arrays[MNIST_NAMES[3]])
    assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0


def test_mnist_pixels_keep_row_major_orientation(tmp_path):
    arrays = mnist_arrays(seed=2)
    image = np.zeros((28, 28), np.uint8)
    image[3, 17] = 200  # row 3, column 17: transposing would move it to [17, 3]
    arrays[MNIST_NAMES[0]][0] = image
    write_mnist(tmp_path, arrays)
    first = mnist(tmp_path).train_x[0, 0]
    assert float(first[3, 17]) == pytest.approx(200 / 255) and float(first[17, 3]) == 0.0


def test_mnist_accepts_str_path_and_plain_wins_over_gz(tmp_path):
    plain, other = mnist_arrays(seed=3), mnist_arrays(seed=4)
    write_mnist(tmp_path, plain)
    write_mnist(tmp_path, other, (True,) * 4)  # same names + .gz, different content
    data = mnist(str(tmp_path))
    assert torch.equal(data.train_y, torch.from_numpy(plain[MNIST_NAMES[1]].astype(np.int64)))


def test_mnist_gzip_is_recognised_by_content_not_name(tmp_path):
    arrays = mnist_arrays(seed=5)
    paths = write_mnist(tmp_path, arrays)
    paths[MNIST_NAMES[0]].write_bytes(gzip.compress(paths[MNIST_NAMES[0]].read_bytes()))  # gzip under a plain name
    check_split(mnist(tmp_path).train_x, mnist(tmp_path).train_y, arrays[MNIST_NAMES[0]][:, None],
                arrays[MNIST_NAMES[1]])


def test_mnist_and_fashion_read_their_own_torchvision_folders(tmp_path):
    digits_arrays, fashion_arrays = mnist_arrays(seed=6), mnist_arrays(seed=7)
    write_mnist(tmp_path / "MNIST" / "raw", digits_arrays)
    write_mnist(tmp_path / "FashionMNIST" / "raw", fashion_arrays)
    assert torch.equal(mnist(tmp_path).test_x, expected_unit(digits_arrays[MNIST_NAMES[2]][:, None]))
    assert torch.equal(mnist(tmp_path, fashion=True).test_x, expected_unit(fashion_arrays[MNIST_NAMES[2]][:, None]))


def test_mnist_never_mixes_files_from_two_folders(tmp_path):
    arrays = mnist_arrays(seed=8)
    write_mnist(tmp_path / "MNIST" / "raw", {k: arrays[k] for k in MNIST_NAMES[:2]})  # train files only
    write_mnist(tmp_path, {k: arrays[k] for k in MNIST_NAMES[2:]}, (False,) * 2)  # test files only
    with pytest.raises(FileNotFoundError, match="lacks t10k-images-idx3-ubyte"):
        mnist(tmp_path)


def test_mnist_missing_files_lists_every_folder_searched(tmp_path):
    arrays = mnist_arrays(seed=9)
    write_mnist(tmp_path / "MNIST" / "raw", {k: arrays[k] for k in MNIST_NAMES[:3]})
    with pytest.raises(FileNotFoundError) as info:
        mnist(tmp_path)
    message = str(info.value)
    for folder in (tmp_path / "MNIST" / "raw", tmp_path / "raw", tmp_path):
        assert str(folder) in message
    assert "lacks t10k-labels-idx1-ubyte" in message and "never downloads" in message
    with pytest.raises(FileNotFoundError, match="FashionMNIST"):  # MNIST files are not Fashion-MNIST files
        mnist(tmp_path, fashion=True)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        mnist(tmp_path / "absent")


def test_mnist_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="root must be a str or os.PathLike"):
        mnist(3)
    with pytest.raises(TypeError, match="fashion must be a bool"):
        mnist(tmp_path, fashion="yes")


def _corrupt(tmp_path: Path, name: str, change) -> Path:
    paths = write_mnist(tmp_path, mnist_arrays(seed=10))
    paths[name].write_bytes(change(paths[name].read_bytes()))
    return paths[name]


@pytest.mark.parametrize("name,change,fragment", [
    (MNIST_NAMES[0], lambda b: b"\x00\x00\x08\x01" + b[4:], "magic number 0x00000803; got 0x00000801"),
    (MNIST_NAMES[1], lambda b: b"\x00\x00\x08\x03" + b[4:], "magic number 0x00000801; got 0x00000803"),
    (MNIST_NAMES[1], lambda b: b"\x00\x00\x0d\x01" + b[4:], "got 0x00000D01"),  # float32 data, not uint8
    (MNIST_NAMES[0], lambda b: b[:3], "a 3-byte file"),
    (MNIST_NAMES[0], lambda b: b[:10], "truncated IDX header"),
    (MNIST_NAMES[0], lambda b: b[:-1], "truncated: its header says images of shape \\(5, 28, 28\\)"),
    (MNIST_NAMES[3], lambda b: b[:-1], "truncated"),
    (MNIST_NAMES[2], lambda b: b + b"\x00", "has trailing bytes"),
    (MNIST_NAMES[0], lambda b: gzip.compress(b)[:-9], "damaged gzip file"),
])
def test_mnist_rejects_damaged_files_naming_them(tmp_path, name, change, fragment):
    path = _corrupt(tmp_path, name, change)
    with pytest.raises(ValueError, match=fragment) as info:
        mnist(tmp_path)
    assert str(path) in str(info.value)


def test_mnist_rejects_count_mismatch_naming_both_files(tmp_path):
    arrays = mnist_arrays(seed=11)
    arrays[MNIST_NAMES[3]] = arrays[MNIST_NAMES[3]][:2]  # 3 test images, 2 test labels
    paths = write_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match="holds 3 images but .* holds 2 labels") as info:
        mnist(tmp_path)
    assert str(paths[MNIST_NAMES[2]]) in str(info.value) and str(paths[MNIST_NAMES[3]]) in str(info.value)


def test_mnist_rejects_labels_out_of_range(tmp_path):
    arrays = mnist_arrays(seed=12)
    arrays[MNIST_NAMES[1]][4] = 10
    paths = write_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]; 1 are not, first 10 at position 4") as info:
        mnist(tmp_path)
    assert str(paths[MNIST_NAMES[1]]) in str(info.value)


@pytest.mark.parametrize("shape,fragment", [((2, 27, 28), "expected 28 x 28 images"),
                                            ((0, 28, 28), "holds 0 images")])
def test_mnist_rejects_wrong_image_size_and_empty_files(tmp_path, shape, fragment):
    arrays = mnist_arrays(seed=13)
    arrays[MNIST_NAMES[0]] = np.zeros(shape, np.uint8)
    arrays[MNIST_NAMES[1]] = np.zeros(shape[0], np.uint8)
    write_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match=fragment):
        mnist(tmp_path)


# ------------------------------------------------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("layout", [".", "cifar-10-batches-py"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_reads_official_format(tmp_path, layout, protocol):
    arrays = cifar_arrays(seed=20)
    write_cifar(tmp_path / layout, arrays, protocol=protocol)
    data = cifar10(tmp_path)
    assert data.name == "cifar10" and data.num_classes == 10 and data.input_shape == (3, 32, 32)
    assert data.train_x.shape == (10, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    train_pixels = np.concatenate([arrays[n][0] for n in CIFAR_NAMES[:5]]).reshape(-1, 3, 32, 32)
    train_labels = sum((arrays[n][1] for n in CIFAR_NAMES[:5]), [])  # batches 1..5 in order
    check_split(data.train_x, data.train_y, train_pixels, train_labels)
    check_split(data.test_x, data.test_y, arrays["test_batch"][0].reshape(-1, 3, 32, 32), arrays["test_batch"][1])
    assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0


def test_cifar10_rows_are_channel_major_rgb(tmp_path):
    arrays = cifar_arrays(seed=21)
    row = np.zeros(3072, np.uint8)
    row[1024 + 32 * 5 + 7] = 255  # green channel, row 5, column 7
    arrays["data_batch_1"][0][0] = row
    write_cifar(tmp_path, arrays)
    image = cifar10(tmp_path).train_x[0]
    assert float(image[1, 5, 7]) == 1.0 and float(image.sum()) == 1.0


def test_cifar10_accepts_str_keys_and_numpy_labels(tmp_path):
    arrays = cifar_arrays(seed=22)
    write_cifar(tmp_path, arrays, str_keys=True)
    data, labels = arrays["data_batch_2"]
    write_batch(tmp_path / "data_batch_2", {"data": data, "labels": [np.int64(v) for v in labels]})
    write_batch(tmp_path / "data_batch_3", {"data": arrays["data_batch_3"][0],
                                           "labels": np.asarray(arrays["data_batch_3"][1], np.uint8)})
    loaded = cifar10(tmp_path)
    assert loaded.train_y.tolist() == sum((arrays[n][1] for n in CIFAR_NAMES[:5]), [])


def _legacy_py2_batch(pixels: bytes, shape: tuple[int, int], labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle wrote the official files: numpy.core globals and py2 str (SHORT_BINSTRING)."""
    assert len(labels) < 256 and len(pixels) < 2 ** 31

    def string(s: bytes) -> bytes:
        return b"U" + bytes([len(s)]) + s if len(s) < 256 else b"T" + struct.pack("<i", len(s)) + s

    def int1(v: int) -> bytes:
        return b"K" + bytes([v])

    dtype = b"cnumpy\ndtype\n" + string(b"u1") + int1(0) + int1(1) + b"\x87R" + (
        b"(" + int1(3) + string(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + int1(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + int1(0) + b"\x85" + string(b"b")
             + b"\x87R" + b"(" + int1(1) + struct.pack("<cIcI", b"J", shape[0], b"J", shape[1]) + b"\x86" + dtype
             + b"\x89" + string(pixels) + b"tb")
    label_list = b"](" + b"".join(int1(v) for v in labels) + b"e"
    return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + label_list + b"u."


def test_cifar10_reads_python2_pickles_like_the_official_files(tmp_path):
    arrays = cifar_arrays(seed=23)
    write_cifar(tmp_path, arrays)
    data, labels = arrays["test_batch"]
    (tmp_path / "test_batch").write_bytes(_legacy_py2_batch(data.tobytes(), data.shape, labels))
    loaded = cifar10(tmp_path)
    check_split(loaded.test_x, loaded.test_y, data.reshape(-1, 3, 32, 32), labels)


class _Exploit:
    """Unpickling this calls ``func(*args)``; a safe reader must refuse ``func`` before calling it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _exploits(marker: Path) -> list:
    from numpy.testing._private.utils import runstring  # a numpy function that runs code: numpy.* is not trusted

    code = f"open({str(marker)!r}, 'w').close()"
    return [(_Exploit(os.system, f"touch '{marker}'"), "posix.system" if os.name == "posix" else "system"),
            (_Exploit(exec, code), "__builtin__.exec"),  # protocol 2 spells builtins so
            (_Exploit(eval, code), "__builtin__.eval"),
            (_Exploit(runstring, code, {}), "runstring"),
            (_Exploit(__import__("codecs").encode, b"x\x9c", "zlib"), "encode with encoding 'zlib'")]


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("where", ["data", "labels", "top"])
def test_cifar10_refuses_pickled_code_without_running_it(tmp_path, which, where):
    marker = tmp_path / "pwned"
    exploit, fragment = _exploits(marker)[which]
    arrays = cifar_arrays(seed=24)
    write_cifar(tmp_path, arrays)
    data, labels = arrays["data_batch_4"]
    batch = {b"data": data, b"labels": labels}
    if where == "top":
        batch = exploit
    else:
        batch[where.encode()] = exploit
    write_batch(tmp_path / "data_batch_4", batch)
    with pytest.raises(ValueError, match="refused to load the pickled global") as info:
        cifar10(tmp_path)
    assert fragment in str(info.value) and str(tmp_path / "data_batch_4") in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("make,fragment", [
    (lambda d, l: [d, l], "expected a pickled dict"),
    (lambda d, l: {b"data": d}, "has no 'labels' entry"),
    (lambda d, l: {b"labels": l, b"pixels": d}, "has no 'data' entry .* b'pixels'"),
    (lambda d, l: {b"data": d.astype(np.int16), b"labels": l}, "'data' must be a uint8 array .* got int16"),
    (lambda d, l: {b"data": d.reshape(-1, 3, 32, 32), b"labels": l}, r"got uint8 array of shape \(3, 3, 32, 32\)"),
    (lambda d, l: {b"data": d[:, :3000], b"labels": l}, r"\[S, 3072\]"),
    (lambda d, l: {b"data": d.tobytes(), b"labels": l}, "got bytes"),
    (lambda d, l: {b"data": d, b"labels": l[:-1]}, "'labels' must be 3 integers"),
    (lambda d, l: {b"data": d, b"labels": [float(v) for v in l]}, "got float64"),
    (lambda d, l: {b"data": d, b"labels": [[v] for v in l]}, r"shape \(3, 1\)"),
    (lambda d, l: {b"data": d, b"labels": [1, [2, 3], 4]}, "'labels' must be 3 integers .*; got list that numpy"),
    (lambda d, l: {b"data": d, b"labels": [1, 2**70, 4]}, "got object values"),
    (lambda d, l: {b"data": d, b"labels": [1, 10, 2]}, "first 10 at position 1"),
    (lambda d, l: {b"data": d, b"labels": [1, 2, -1]}, "first -1 at position 2"),
    (lambda d, l: {b"data": d[:0], b"labels": []}, "holds 0 images"),
])
def test_cifar10_rejects_malformed_batches_naming_the_file(tmp_path, make, fragment):
    arrays = cifar_arrays(seed=25)
    write_cifar(tmp_path, arrays)
    data, labels = arrays["test_batch"]
    write_batch(tmp_path / "test_batch", make(data, labels))
    with pytest.raises(ValueError, match=fragment) as info:
        cifar10(tmp_path)
    assert str(tmp_path / "test_batch") in str(info.value)


@pytest.mark.parametrize("change", [lambda b: b[: len(b) // 2], lambda b: b"not a pickle", lambda b: b""],
                         ids=["truncated", "garbage", "empty"])
def test_cifar10_rejects_unreadable_pickles(tmp_path, change):
    paths = write_cifar(tmp_path, cifar_arrays(seed=26))
    paths["data_batch_5"].write_bytes(change(paths["data_batch_5"].read_bytes()))
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch pickle") as info:
        cifar10(tmp_path)
    assert str(paths["data_batch_5"]) in str(info.value)


def test_cifar10_missing_files_lists_folders_and_hints_at_the_archive(tmp_path):
    arrays = cifar_arrays(seed=27)
    write_cifar(tmp_path / "cifar-10-batches-py", {n: arrays[n] for n in CIFAR_NAMES[:5]})
    with pytest.raises(FileNotFoundError) as info:
        cifar10(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") + ": lacks test_batch" in message
    assert f"{tmp_path}: lacks data_batch_1" in message and "extract it first" not in message
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="extract it first"):
        cifar10(tmp_path)
    with pytest.raises(TypeError, match="root must be a str or os.PathLike"):
        cifar10(None)
