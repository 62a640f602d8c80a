"""Tests of replication.data on files made here in the official formats; no network.

Every test builds small archives (IDX .gz files as published for MNIST, a cifar-10-python.tar.gz
with Python-2-style pickles) and injects a Source whose checksums are those of the files it made,
so verification runs exactly as on real files. The test on Debian's real Fashion-MNIST files uses
the real checksums and is skipped where the package is not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import itertools
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from replication import data
from replication.data import DataError
from replication.datasets.sources import SourceFile

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
# The dataset checksum of the real Fashion-MNIST (docs/data.md), from its published content sha256s.
FASHION_MNIST_CHECKSUM = "3cd03151ed570a82a6bb36386a982f3edba9f1500583ac51baa5a2c9bec76d35"


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- IDX files, as MNIST publishes them


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX bytes of a uint8 array: magic 0x0000 08 <ndim>, sizes big-endian, values."""
    magic = 0x0800 + array.ndim if magic is None else magic
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def gz(content: bytes, mtime: int = 0) -> bytes:
    return gzip.compress(content, mtime=mtime)


def make_mnist(folder: Path, n_train=20, n_test=10, seed=0, contents=None):
    """Write the four MNIST .gz files into `folder`; return (Source with their checksums, contents).
    `contents` (published name -> IDX bytes) overrides what is written, not what the Source expects."""
    rng = np.random.default_rng(seed)
    good = {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, n_train, dtype=np.uint8)),
        "t10k-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte.gz": idx_bytes(rng.integers(0, 10, n_test, dtype=np.uint8)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, content in good.items():
        split = "train" if name.startswith("train") else "test"
        role = "images" if "images" in name else "labels"
        files.append(SourceFile(name, split, role, n_train if split == "train" else n_test, md5(gz(content)),
                                sha256(content)))
        (folder / name).write_bytes(gz((contents or {}).get(name, content)))
    source = dataclasses.replace(data.SOURCES["mnist"], files=tuple(files), mirrors=(folder.as_uri() + "/",),
                                 system_dirs=())
    return source, good


# ---------------------------------------------------------------- the CIFAR-10 python archive

N_PER_BATCH = 4
BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]


def batch_pickle(rows, labels, dtype=np.uint8, extra=None) -> bytes:
    """A batch as the official files hold it: a protocol-2 pickle with bytes keys (what Python 2's
    str keys load as) and numpy 1.x's module path numpy.core.multiarray."""
    d = {b"batch_label": b"testing batch", b"labels": list(labels), b"data": np.asarray(rows, dtype=dtype),
         b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    d.update(extra or {})
    raw = pickle.dumps(d, protocol=2)
    return raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def py2_batch_pickle(rows: np.ndarray, labels) -> bytes:
    """A batch byte for byte as Python 2's cPickle (protocol 2) with numpy 1.x writes the official
    files: str keys and array bytes as (BIN)STRING opcodes, numpy.core.multiarray._reconstruct."""
    def s(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + len(b).to_bytes(4, "little") + b

    def i(v):
        return b"K" + bytes([v]) if v < 256 else b"M" + v.to_bytes(2, "little")

    n, t = rows.shape
    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
             + b"(K\x01" + i(n) + i(t) + b"\x86" + dtype + b"\x89" + s(rows.astype(np.uint8).tobytes()) + b"tb")
    labels = b"](" + b"".join(i(int(v)) for v in labels) + b"e"
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"testing batch 1 of 5") + s(b"data") + array
            + s(b"labels") + labels + b"u.")


def meta_pickle() -> bytes:
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    return pickle.dumps({b"label_names": names, b"num_cases_per_batch": N_PER_BATCH, b"num_vis": 3072}, protocol=2)


def official_rows(seed: int) -> np.ndarray:
    """Raw rows of N_PER_BATCH images: 1024 red, 1024 green, 1024 blue values, each plane row-major."""
    return np.random.default_rng(seed).integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8)


def cifar_members(rows=None):
    """Published member name -> bytes for a complete, good archive, and the raw rows of each batch."""
    rows = rows or {name: official_rows(i) for i, name in enumerate(BATCHES)}
    members = {name: py2_batch_pickle(rows[name], np.arange(N_PER_BATCH) % 10) for name in BATCHES}
    members["batches.meta"] = meta_pickle()
    return members, rows


def write_tar(path: Path, members: dict, folder="cifar-10-batches-py", links=(), extra=()) -> Path:
    """A tar.gz with `folder`/ and its members; `links` are (name, target) symlinks, `extra` members
    with arbitrary names."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, content in list(members.items()) + [(n, b"x") for n in extra]:
            info = tarfile.TarInfo(f"{folder}/{name}" if name not in extra else name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in links:
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def cifar_source(members: dict, archive: Path, mirror: Path | None = None):
    """The CIFAR-10 Source, with member checksums of `members` and archive checksums of `archive`."""
    real = data.SOURCES["cifar10"]
    files = tuple(dataclasses.replace(f, count=N_PER_BATCH if f.count else 0, md5=md5(members[f.name]))
                  for f in real.files)
    blob = archive.read_bytes()
    arch = dataclasses.replace(real.archive, md5=md5(blob), sha256=sha256(blob), size=len(blob))
    return dataclasses.replace(real, files=files, archive=arch,
                               mirrors=((mirror or archive.parent).as_uri() + "/",))


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """A good synthetic cifar-10-python.tar.gz, registered as "cifar10"; (archive, source, rows)."""
    members, rows = cifar_members()
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    source = cifar_source(members, archive)
    monkeypatch.setitem(data.SOURCES, "cifar10", source)
    return archive, source, rows


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache; none touches the user's."""
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# ---------------------------------------------------------------- the layout contract


def test_cifar_channel_order_follows_the_official_layout(tmp_path, monkeypatch):
    """A row of the official batch is 1024 red, 1024 green, 1024 blue values; the byte sequence must
    be r1 g1 b1 r2 g2 b2 ... (DESIGN section 3), with planes that differ everywhere."""
    i, j = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    red, green, blue = (i * 7 + j) % 256, 100 + j, 255 - i  # three distinct planes
    image0 = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)])
    image1 = np.concatenate([red.ravel(), green.ravel(), blue.ravel()])
    rows = {name: official_rows(k) for k, name in enumerate(BATCHES)}
    rows["test_batch"][0], rows["test_batch"][1] = image0, image1
    members, _ = cifar_members(rows)
    archive = write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    monkeypatch.setitem(data.SOURCES, "cifar10", cifar_source(members, archive))

    images = data.load_dataset("cifar10", "test", data_dir=archive)
    seq = data.to_bytes(images)
    assert images.shape == (N_PER_BATCH, 32, 32, 3) and images.dtype == np.uint8
    assert seq.shape == (N_PER_BATCH, 3072)
    assert seq[0, :6].tolist() == [10, 20, 30, 10, 20, 30]
    assert seq[1, :6].tolist() == [red[0, 0], green[0, 0], blue[0, 0], red[0, 1], green[0, 1], blue[0, 1]]
    for c, plane in enumerate((red, green, blue)):
        assert (images[1, :, :, c] == plane).all()
    raw = rows["test_batch"]  # every byte: position p, channel c  <-  plane c at p
    p, c = np.divmod(np.arange(3072), 3)
    assert (seq == raw[:, c * 1024 + p]).all()
    assert (data.from_bytes(seq, (32, 32, 3)) == images).all()


def test_mnist_bytes_are_the_idx_values_in_raster_order(tmp_path, monkeypatch):
    source, good = make_mnist(tmp_path / "mnist")
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    images = data.load_dataset("mnist", "test", data_dir=tmp_path)
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8
    values = np.frombuffer(good["t10k-images-idx3-ubyte.gz"], np.uint8, offset=16).reshape(10, 784)
    assert (data.to_bytes(images) == values).all()


# ---------------------------------------------------------------- downloads and the cache


def test_corrupted_download_is_not_cached(tmp_path, monkeypatch, empty_cache):
    mirror = tmp_path / "mirror"
    source, good = make_mnist(mirror)
    blob = bytearray((mirror / "train-images-idx3-ubyte.gz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte, as a bad transfer would leave it
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(bytes(blob))
    monkeypatch.setitem(data.SOURCES, "mnist", source)

    with pytest.raises(DataError) as e:
        data.fetch("mnist")
    message = str(e.value)
    assert "train-images-idx3-ubyte.gz" in message and source.files[0].md5 in message
    assert md5(bytes(blob)) in message and mirror.as_uri() in message
    assert files_under(empty_cache) == [] and not empty_cache.exists()
    assert not data.available("mnist")


def test_html_error_page_from_the_mirror_is_not_cached(cifar, tmp_path, empty_cache):
    archive, source, _ = cifar
    archive.write_bytes(b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n")
    with pytest.raises(DataError) as e:
        data.fetch("cifar10")
    assert "HTML" in str(e.value) and source.archive.md5 in str(e.value)
    assert files_under(empty_cache) == []


def test_fetch_downloads_verifies_and_caches_with_mirror_fallback(tmp_path, monkeypatch, empty_cache):
    mirror = tmp_path / "mirror"
    source, _ = make_mnist(mirror)
    source = dataclasses.replace(source, mirrors=((tmp_path / "gone").as_uri() + "/", mirror.as_uri() + "/"))
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    assert not data.available("mnist")

    where = data.fetch("mnist")
    assert where == empty_cache / "mnist"
    assert sorted(p.name for p in files_under(empty_cache)) == sorted(f.name for f in source.files)  # no .part left
    assert all((where / f.name).read_bytes() == (mirror / f.name).read_bytes() for f in source.files)
    assert data.available("mnist")
    assert data.load_dataset("mnist", "test").shape == (10, 28, 28, 1)
    stamp = (where / source.files[0].name).stat().st_mtime_ns
    assert data.fetch("mnist") == where  # already cached: nothing is downloaded again
    assert (where / source.files[0].name).stat().st_mtime_ns == stamp


def test_fetch_of_the_cifar_archive(cifar, empty_cache):
    archive, source, rows = cifar
    where = data.fetch("cifar10")
    assert where == empty_cache / "cifar10" / "cifar-10-python.tar.gz"
    assert where.read_bytes() == archive.read_bytes()
    assert data.verify("cifar10").files[0].official
    train = data.load_dataset("cifar10", "train")
    assert train.shape == (5 * N_PER_BATCH - 2, 32, 32, 3)


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "elsewhere"))
    assert data.cache_dir() == tmp_path / "elsewhere"
    assert data.cache_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(data.ENV_VAR)
    assert data.cache_dir() == Path.home() / ".cache" / "transformers-are-rnns"


# ---------------------------------------------------------------- faults, each refused with a clear message


def assert_clear(message: str, where, *words):
    """A fault message names the file, what was expected, what was found and what to do."""
    assert str(where) in message, message
    assert "expected" in message and "found" in message, message
    assert "replication data fetch" in message, message
    for w in words:
        assert w in message, f"{w!r} not in {message!r}"


def bad_batch(kind):
    """Member bytes for one fault of a batch's content."""
    labels = np.arange(N_PER_BATCH) % 10
    if kind == "shape":
        return batch_pickle(np.zeros((N_PER_BATCH, 1024)), labels)
    if kind == "dtype":
        return batch_pickle(np.zeros((N_PER_BATCH, 3072)), labels, dtype=np.float32)
    if kind == "global":  # a pickle that would run a command if the unpickler allowed it
        return b"cos\nsystem\n(S'echo hacked'\ntR."
    raise ValueError(kind)


@pytest.mark.parametrize("fault, words", [
    ("truncated", ["truncated"]),
    ("html", ["HTML", "1f 8b"]),
    ("wrong checksum", ["data_batch_2", "md5"]),
    ("missing member", ["data_batch_3", "no such member"]),
    ("wrong shape", ["shape (4, 3072)", "(4, 1024)"]),
    ("wrong dtype", ["uint8", "float32"]),
    ("foreign global", ["os.system"]),
    ("unsafe name", ["../evil"]),
    ("link", ["link", "data_batch_1"]),
])
def test_a_bad_cifar_archive_is_refused(cifar, tmp_path, monkeypatch, capsys, empty_cache, fault, words):
    archive, source, _ = cifar
    members, _ = cifar_members()
    bad = tmp_path / "bad" / "cifar-10-python.tar.gz"
    bad.parent.mkdir()
    injected = source
    if fault == "truncated":
        blob = archive.read_bytes()
        bad.write_bytes(blob[: len(blob) // 2])
    elif fault == "html":
        bad.write_bytes(b"<!DOCTYPE html><html><head><title>Error</title></head></html>")
    elif fault == "wrong checksum":
        members["data_batch_2"] = members["data_batch_2"].replace(b"testing batch", b"testing batcX")
        assert members["data_batch_2"] != cifar_members()[0]["data_batch_2"]
        write_tar(bad, members)
    elif fault == "missing member":
        del members["data_batch_3"]
        write_tar(bad, members)
    elif fault in ("wrong shape", "wrong dtype", "foreign global"):
        members["data_batch_4"] = bad_batch(fault.split()[-1])
        write_tar(bad, members)
        injected = cifar_source(members, bad)  # checksums match, so the content check must refuse it
    elif fault == "unsafe name":
        write_tar(bad, members, extra=["../evil"])
    elif fault == "link":
        del members["data_batch_2"]
        write_tar(bad, members, links=[("data_batch_2", "data_batch_1")])
    monkeypatch.setitem(data.SOURCES, "cifar10", injected)

    with pytest.raises(DataError) as e:
        data.verify("cifar10", bad)
    assert_clear(str(e.value), bad, *words)
    with pytest.raises(DataError):
        data.load_dataset("cifar10", "train", data_dir=bad)
    assert not data.available("cifar10", data_dir=bad)

    rc, out, err = run_cli(["data", "fetch", "--dataset", "cifar10", "--path", str(bad)], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("replication data fetch: error: ") and str(bad) in err
    assert files_under(empty_cache) == []


@pytest.mark.parametrize("fault, file, words", [
    ("truncated", "t10k-images-idx3-ubyte.gz", ["truncated"]),
    ("html", "train-labels-idx1-ubyte.gz", ["HTML", "1f 8b"]),
    ("wrong checksum", "train-images-idx3-ubyte.gz", ["sha256"]),
    ("missing", "t10k-labels-idx1-ubyte.gz", ["no such file"]),
    ("labels as images", "t10k-images-idx3-ubyte.gz", ["2051", "2049"]),
    ("wrong size", "train-images-idx3-ubyte.gz", ["20 x 28 x 28", "20 x 32 x 32"]),
    ("wrong count", "t10k-images-idx3-ubyte.gz", ["10 x 28 x 28", "9 x 28 x 28"]),
    ("wrong dtype", "train-images-idx3-ubyte.gz", ["uint8", "float32"]),
    ("cut content", "t10k-labels-idx1-ubyte.gz", ["expected 18 bytes", "found 15 bytes (truncated)"]),
])
def test_bad_idx_files_are_refused(tmp_path, monkeypatch, capsys, fault, file, words):
    folder = tmp_path / "mnist"
    source, good = make_mnist(folder)
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    path = folder / file
    content = good[file]
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    elif fault == "html":
        path.write_bytes(b"<html><body>Access denied</body></html>")
    elif fault == "wrong checksum":
        path.write_bytes(gz(content[:-1] + bytes([content[-1] ^ 1])))
    elif fault == "missing":
        path.unlink()
    elif fault == "labels as images":
        path.write_bytes(gz(good["t10k-labels-idx1-ubyte.gz"]))
    elif fault == "wrong size":
        path.write_bytes(gz(idx_bytes(np.zeros((20, 32, 32), np.uint8))))
    elif fault == "wrong count":
        path.write_bytes(gz(idx_bytes(np.zeros((9, 28, 28), np.uint8))))
    elif fault == "wrong dtype":
        path.write_bytes(gz(idx_bytes(np.zeros((20, 28, 28), np.uint8), magic=0x0D03)))
    elif fault == "cut content":
        path.write_bytes(gz(content[:-3]))

    with pytest.raises(DataError) as e:
        data.verify("mnist", folder)
    assert_clear(str(e.value), path if fault != "missing" else folder, *words)
    with pytest.raises(DataError):
        data.load_dataset("mnist", "test", data_dir=folder)
    rc, out, err = run_cli(["data", "verify", "--dataset", "mnist", "--path", str(folder)], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_every_bad_file_is_named_at_once(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    source, _ = make_mnist(folder)
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"<html></html>")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        data.verify("mnist", folder)
    assert len(e.value.faults) == 2
    assert "train-labels-idx1-ubyte.gz" in e.value.faults[0] and "t10k-images-idx3-ubyte.gz" in e.value.faults[1]


# ---------------------------------------------------------------- other layouts, checksums, the CLI


def test_python3_pickles_load_like_the_official_python2_ones(tmp_path, monkeypatch):
    rows = {name: official_rows(k) for k, name in enumerate(BATCHES)}
    members, _ = cifar_members(rows)
    members3 = dict(members, test_batch=batch_pickle(rows["test_batch"], np.arange(N_PER_BATCH) % 10))
    assert members3["test_batch"] != members["test_batch"]
    images = []
    for name, m in (("py2", members), ("py3", members3)):
        archive = write_tar(tmp_path / f"{name}.tar.gz", m)
        monkeypatch.setitem(data.SOURCES, "cifar10", cifar_source(m, archive))
        images.append(data.load_dataset("cifar10", "test", data_dir=archive))
    assert (images[0] == images[1]).all()


def test_unpacked_folder_and_archive_give_the_same_data_and_checksum(cifar, tmp_path):
    archive, source, rows = cifar
    members, _ = cifar_members(rows)
    unpacked = tmp_path / "unpacked" / "cifar-10-batches-py"
    unpacked.mkdir(parents=True)
    for name, content in members.items():
        (unpacked / name).write_bytes(content)
    from_archive = data.load_dataset("cifar10", "valid", data_dir=archive)
    from_folder = data.load_dataset("cifar10", "valid", data_dir=unpacked.parent)
    assert (from_archive == from_folder).all()
    assert data.dataset_checksum("cifar10", archive) == data.dataset_checksum("cifar10", unpacked.parent)
    assert data.verify("cifar10", unpacked.parent).layout == "unpacked folder"


def test_dataset_checksum_identifies_content_not_packaging(tmp_path, monkeypatch):
    source, good = make_mnist(tmp_path / "a")
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    regzipped = tmp_path / "b"  # as Debian does: same content, other .gz bytes
    regzipped.mkdir()
    for name, content in good.items():
        (regzipped / name).write_bytes(gz(content, mtime=1591347949))
    gunzipped = tmp_path / "c"  # a user who ran gunzip
    gunzipped.mkdir()
    for name, content in good.items():
        (gunzipped / name.removesuffix(".gz")).write_bytes(content)
    checksums = {data.dataset_checksum("mnist", tmp_path / d) for d in "abc"}
    assert len(checksums) == 1 and len(checksums.pop()) == 64
    assert all(f.official for f in data.verify("mnist", tmp_path / "a").files)
    assert not any(f.official for f in data.verify("mnist", regzipped).files)


def test_splits_are_deterministic_disjoint_and_complete(tmp_path, monkeypatch):
    source, good = make_mnist(tmp_path / "mnist", n_train=50)
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    official = np.frombuffer(good["train-images-idx3-ubyte.gz"], np.uint8, offset=16).reshape(50, 28, 28, 1)
    train = data.load_dataset("mnist", "train", tmp_path)
    valid = data.load_dataset("mnist", "valid", tmp_path)
    assert len(valid) == 5 and len(train) == 45
    expected_valid = np.sort(np.random.RandomState(0).permutation(50)[-5:])  # as documented
    assert (valid == official[expected_valid]).all()
    assert (train == np.delete(official, expected_valid, axis=0)).all()
    assert (data.load_dataset("mnist", "valid", tmp_path) == valid).all()
    with pytest.raises(DataError, match="split 'validation'"):
        data.load_dataset("mnist", "validation", tmp_path)


def test_batches_are_seeded_full_and_cover_each_epoch_once():
    items = np.arange(10)
    first = [b.tolist() for b in data.batches(items, 3, seed=7, epochs=2)]
    assert first == [b.tolist() for b in data.batches(items, 3, seed=7, epochs=2)]
    assert first != [b.tolist() for b in data.batches(items, 3, seed=8, epochs=2)]
    assert len(first) == 6 and all(len(b) == 3 for b in first)
    for epoch in (first[:3], first[3:]):
        seen = sum(epoch, [])
        assert len(set(seen)) == 9  # distinct within a pass; one item is left out
    assert first[:3] != first[3:]  # a new permutation each pass
    assert len(list(itertools.islice(data.batches(items, 5, seed=0), 100))) == 100  # epochs=None: forever
    for bad in (0, 11, 2.5):
        with pytest.raises(DataError, match="batch size"):
            data.batches(items, bad, seed=0)


def test_to_bytes_wants_uint8_nhwc():
    with pytest.raises(DataError, match="uint8"):
        data.to_bytes(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(DataError, match="height, width, channels"):
        data.to_bytes(np.zeros((2, 28, 28), np.uint8))


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="replication")
    data.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc = args.func(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_verify_and_fetch_from_a_local_copy(cifar, tmp_path, capsys, empty_cache):
    archive, source, _ = cifar
    rc, out, err = run_cli(["data", "verify", "--dataset", "cifar10", "--path", str(archive)], capsys)
    assert rc == 0 and err == ""
    checksum = data.dataset_checksum("cifar10", archive)
    assert f"dataset checksum (sha256): {checksum}" in out

    rc, out, err = run_cli(["data", "verify", "--dataset", "cifar10"], capsys)  # nothing cached yet
    assert rc == 2 and "replication data fetch --dataset cifar10" in err

    rc, out, err = run_cli(["data", "fetch", "--dataset", "cifar10", "--path", str(archive)], capsys)
    assert rc == 0 and checksum in out
    assert (empty_cache / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert data.available("cifar10") and data.dataset_checksum("cifar10") == checksum


def test_the_replication_command_has_the_data_subcommands(tmp_path, monkeypatch, capsys):
    cli = pytest.importorskip("replication.cli")
    source, _ = make_mnist(tmp_path / "mnist")
    monkeypatch.setitem(data.SOURCES, "mnist", source)
    assert cli.main(["data", "verify", "--dataset", "mnist", "--path", str(tmp_path)]) == 0
    assert cli.main(["data", "verify", "--dataset", "mnist", "--path", str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


# ---------------------------------------------------------------- the real Fashion-MNIST from Debian


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_debian_fashion_mnist_is_found_and_verified_with_the_real_checksums():
    assert data.available("fashion-mnist")  # the cache is empty: found in the system folder
    report = data.verify("fashion-mnist")
    assert report.path == DEBIAN_FASHION and report.complete
    assert report.counts == {"train": 60000, "test": 10000}
    assert data.dataset_checksum("fashion-mnist") == FASHION_MNIST_CHECKSUM
    test = data.load_dataset("fashion-mnist", "test")
    assert test.shape == (10000, 28, 28, 1) and test.dtype == np.uint8
    assert 0 < test.mean() < 255 and test.max() == 255
