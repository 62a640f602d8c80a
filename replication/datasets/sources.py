"""What the publishers distribute: each data set's files, mirrors and published checksums.

Every constant here is copied from a public source named beside it; tests inject their own
`Source` (with checksums of the files they generate) instead of switching verification off.

Two kinds of checksum are kept for IDX files. `md5` is the published checksum of the `.gz` file as
downloaded; `content_sha256` is the sha256 of the decompressed IDX bytes. Verification requires the
content checksum, so a re-compressed copy of the same data (Debian's dataset-fashion-mnist re-gzips
the files: other .gz bytes, identical content) is accepted; a download must also match `md5`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """One file of a data set: an IDX file, or a member of the CIFAR archive."""

    name: str  # as published: "train-images-idx3-ubyte.gz", or the member "data_batch_1"
    split: str  # "train" or "test"; "" for metadata (CIFAR's batches.meta)
    role: str  # "images", "labels" (IDX), "batch" or "meta" (CIFAR)
    count: int  # images or labels it holds; 0 for metadata
    md5: str  # published md5 of the file (the .gz, or the archive member)
    content_sha256: str = ""  # IDX only: sha256 of the decompressed bytes


@dataclass(frozen=True)
class Archive:
    """A single published archive that holds all the files (CIFAR-10)."""

    name: str  # file name, also its name in the cache
    md5: str
    sha256: str
    size: int  # bytes
    folder: str  # the folder inside the archive that holds the members


@dataclass(frozen=True)
class Source:
    """A data set as published: where it comes from and what its files must be."""

    name: str  # the name users type: "mnist", "fashion-mnist", "cifar10"
    format: str  # "idx" or "cifar-python"
    image_shape: tuple  # (height, width, channels)
    mirrors: tuple  # base URLs, tried in order; a file's URL is mirror + file name
    files: tuple  # SourceFile, in the order the dataset checksum lists them
    archive: Archive | None = None
    subdirs: tuple = ()  # other layouts searched inside a folder (torchvision's, for example)
    system_dirs: tuple = ()  # folders an operating-system package installs the files into
    homepage: str = ""

    @property
    def fix(self) -> str:
        """The remedy for a bad or missing file, appended to every fault about this data set."""
        return (
            f"Run `replication data fetch --dataset {self.name}` to download it again "
            f"(from {self.mirrors[0]}), or give a good copy with --path/--data-dir (docs/data.md)"
        )

    def split_files(self, split: str, role: str) -> list[SourceFile]:
        return [f for f in self.files if f.split == split and f.role == role]


# MNIST. Mirrors, file names and .gz md5s: torchvision/datasets/mnist.py (pytorch/vision), whose first
# mirror is the official page and second the PyTorch team's copy. .gz sha256 and content sha256 of the
# decompressed files: cited identically by several independent projects (e.g. a TensorFlow-mirror
# fetch script: "uncompressed_sha256" ba891046... with 47,040,016 bytes for train-images).
MNIST = Source(
    name="mnist",
    format="idx",
    image_shape=(28, 28, 1),
    mirrors=("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    files=(
        SourceFile("train-images-idx3-ubyte.gz", "train", "images", 60000, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        SourceFile("train-labels-idx1-ubyte.gz", "train", "labels", 60000, "d53e105ee54ea40749a09fcbcd1e9432",
                   "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        SourceFile("t10k-images-idx3-ubyte.gz", "test", "images", 10000, "9fb629c4189551a2d022fa330f9573f3",
                   "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        SourceFile("t10k-labels-idx1-ubyte.gz", "test", "labels", 10000, "ec29112dd5afa0611ce80d1b7f02629c",
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    subdirs=("MNIST/raw",),  # torchvision's layout
    homepage="http://yann.lecun.com/exdb/mnist/",
)

# Fashion-MNIST. URLs and .gz md5s: the "Get the Data" table of zalandoresearch/fashion-mnist's README
# (also torchvision's FashionMNIST.resources); the second mirror is that repository's data/fashion
# folder. Content md5s (f4a8712d..., 9018921c..., 8181f547..., 15d48437...) and sha256s are cited by
# several projects; the sha256s below were also measured on Debian's dataset-fashion-mnist
# 0.0~git20200523.55506a9-1, whose re-gzipped files decompress to exactly these bytes.
FASHION_MNIST = Source(
    name="fashion-mnist",
    format="idx",
    image_shape=(28, 28, 1),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    files=(
        SourceFile("train-images-idx3-ubyte.gz", "train", "images", 60000, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                   "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        SourceFile("train-labels-idx1-ubyte.gz", "train", "labels", 60000, "25c81989df183df01b3e8a0aad5dffbe",
                   "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        SourceFile("t10k-images-idx3-ubyte.gz", "test", "images", 10000, "bef4ecab320f06d8554ea6380940ec79",
                   "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        SourceFile("t10k-labels-idx1-ubyte.gz", "test", "labels", 10000, "bb300cfdad3c16e7a12a480ee83cd310",
                   "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    subdirs=("FashionMNIST/raw",),  # torchvision's layout
    system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian: apt-get install dataset-fashion-mnist
    homepage="https://github.com/zalandoresearch/fashion-mnist",
)

# CIFAR-10, python version (shared/notes/tooling.md section 3). Archive URL and md5: the official page
# https://www.cs.toronto.edu/~kriz/cifar.html and torchvision/datasets/cifar.py (tgz_md5); sha256 and
# size: Keras' cifar10.load_data (file_hash) and tensorflow/datasets. Member md5s: torchvision's
# train_list, test_list and meta.
CIFAR10 = Source(
    name="cifar10",
    format="cifar-python",
    image_shape=(32, 32, 3),
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    files=(
        SourceFile("data_batch_1", "train", "batch", 10000, "c99cafc152244af753f735de768cd75f"),
        SourceFile("data_batch_2", "train", "batch", 10000, "d4bba439e000b95fd0a9bffe97cbabec"),
        SourceFile("data_batch_3", "train", "batch", 10000, "54ebc095f3ab1f0389bbae665268c751"),
        SourceFile("data_batch_4", "train", "batch", 10000, "634d18415352ddfa80567beed471001a"),
        SourceFile("data_batch_5", "train", "batch", 10000, "482c414d41f54cd18b22e5b47cb7c3cb"),
        SourceFile("test_batch", "test", "batch", 10000, "40351d587109b95175f43aff81a1287e"),
        SourceFile("batches.meta", "", "meta", 0, "5ff9c542aee3614f3951f8cda6e48888"),
    ),
    archive=Archive(
        name="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        size=170498071,
        folder="cifar-10-batches-py",
    ),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
)

# The registry the public API reads at call time, so that tests can replace an entry.
SOURCES = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10)}
