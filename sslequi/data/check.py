"""Validation of a 3DIEBench-format root: split files, labels, folders, images, latents.

One set of checks serves both ``sslequi-data check ROOT`` (every object, every file,
full JPEG decode) and the loaders' cheap checks at open (split files, labels, a sample
of objects, JPEG markers only). Each problem names its file and what is wrong
(datasets.md §1.2, §1.7, §6.1):

- missing split files, with where they come from (the real tarball ships without them);
- a split entry whose folder does not exist;
- labels that disagree with the rank of the synset among all synsets sorted as strings;
- a view with an image but no latent, or the reverse; an object with no views;
- a latent that is not float64 of the expected shape (7 or 10 values);
- an unreadable or truncated JPEG.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from tqdm import tqdm

_CODEC_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"


@contextmanager
def quiet_codec() -> Iterator[None]:
    """torchvision 0.29 flags its image codecs as deprecated in favour of torchcodec (not a
    dependency here); libjpeg through torchvision.io stays the fast path, so silence it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CODEC_DEPRECATION, category=DeprecationWarning)
        yield


SPLITS = ("train", "val")
IMAGE_PATTERN = re.compile(r"^image_(\d+)\.jpg$")
LATENT_PATTERN = re.compile(r"^latent_(\d+)\.npy$")
SPLIT_FILES_ORIGIN = (
    "the real 3DIEBench tarball ships without its split files: they are in the SIE "
    "repository's data/ folder (github.com/facebookresearch/SIE, data/{train,val}_"
    "{images,labels}.npy; identical copies in EquiCaps and seq-JEPA). Copy them into the "
    "root or point splits_dir at the folder holding them. A root written by "
    "'sslequi-data render3d' has them in the root."
)

ProblemKind = Literal[
    "missing_split_file",
    "bad_split_file",
    "label_mismatch",
    "missing_folder",
    "no_views",
    "missing_image",
    "missing_latent",
    "bad_latent",
    "bad_jpeg",
]


class DataError(ValueError):
    """A dataset root or file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    path: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.path}: {self.message}"


@dataclass(frozen=True)
class SplitIndex:
    """One split file pair: object paths ('/<synset>/<object_id>/') and int labels."""

    split: str
    paths: tuple[str, ...]
    labels: np.ndarray  # [N] int64

    def synset(self, i: int) -> str:
        return self.paths[i].strip("/").split("/")[0]


def split_files(splits_dir: Path, split: str) -> tuple[Path, Path]:
    return splits_dir / f"{split}_images.npy", splits_dir / f"{split}_labels.npy"


def missing_split_files(splits_dir: Path, splits: Iterable[str] = SPLITS) -> list[Path]:
    return [p for s in splits for p in split_files(splits_dir, s) if not p.is_file()]


def load_split(splits_dir: Path, split: str) -> SplitIndex:
    """Read a split file pair; raise ``DataError`` naming what is missing or malformed."""
    images_path, labels_path = split_files(splits_dir, split)
    missing = [p for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise DataError(f"missing split file(s) {names}: {SPLIT_FILES_ORIGIN}")
    try:
        paths = np.load(images_path, allow_pickle=False)
        labels = np.load(labels_path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"{images_path} / {labels_path}: unreadable split file ({error})") from None
    if paths.ndim != 1 or paths.dtype.kind != "U":
        raise DataError(
            f"{images_path}: expected a 1-D array of strings, got {paths.dtype} {paths.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{labels_path}: expected a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if len(paths) != len(labels):
        raise DataError(
            f"{images_path} has {len(paths)} entries but {labels_path} has {len(labels)} labels"
        )
    bad = [
        str(p) for p in paths if not (p.startswith("/") and p.endswith("/") and p.count("/") == 3)
    ]
    if bad:
        raise DataError(
            f"{images_path}: entries must look like '/<synset>/<object_id>/' "
            f"(leading and trailing slash); e.g. {bad[:3]}"
        )
    return SplitIndex(split, tuple(str(p) for p in paths), labels.astype(np.int64))


def synset_order(indices: Iterable[SplitIndex]) -> list[str]:
    """All synsets of the given splits, sorted as strings: label = position (datasets.md §1.7)."""
    return sorted({index.synset(i) for index in indices for i in range(len(index.paths))})


def label_problems(index: SplitIndex, synsets: list[str], where: Path) -> list[Problem]:
    rank = {s: i for i, s in enumerate(synsets)}
    problems = []
    wrong: Counter[tuple[str, int, int]] = Counter()
    for i in range(len(index.paths)):
        expected = rank[index.synset(i)]
        if int(index.labels[i]) != expected:
            wrong[(index.synset(i), int(index.labels[i]), expected)] += 1
    for (synset, got, expected), count in sorted(wrong.items()):
        problems.append(
            Problem(
                "label_mismatch",
                str(where / f"{index.split}_labels.npy"),
                f"{count} object(s) of synset {synset} have label {got}, but its rank among "
                f"the {len(synsets)} sorted synsets is {expected}",
            )
        )
    return problems


def discover_views(folder: Path) -> tuple[list[int], list[Problem]]:
    """View numbers with both image_<v>.jpg and latent_<v>.npy, sorted; problems for the rest."""
    images, latents = set(), set()
    for entry in folder.iterdir():
        if m := IMAGE_PATTERN.match(entry.name):
            images.add(int(m.group(1)))
        elif m := LATENT_PATTERN.match(entry.name):
            latents.add(int(m.group(1)))
    problems = [
        Problem(
            "missing_latent", str(folder / f"latent_{v}.npy"), f"image_{v}.jpg has no latent file"
        )
        for v in sorted(images - latents)
    ] + [
        Problem(
            "missing_image", str(folder / f"image_{v}.jpg"), f"latent_{v}.npy has no image file"
        )
        for v in sorted(latents - images)
    ]
    views = sorted(images & latents)
    if not views:
        problems.append(Problem("no_views", str(folder), "no image_<v>.jpg / latent_<v>.npy pairs"))
    return views, problems


def read_latent(path: Path, latent_dim: int | None) -> np.ndarray:
    """Load one latent file, checking dtype float64 and shape (latent_dim,)."""
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: unreadable latent file ({error})") from None
    if (
        value.dtype != np.float64
        or value.ndim != 1
        or (latent_dim is not None and value.shape[0] != latent_dim)
    ):
        expected = f"({latent_dim},)" if latent_dim is not None else "(L,)"
        raise DataError(
            f"{path}: latent has dtype {value.dtype} shape {value.shape}, expected float64 {expected}"
        )
    return value


def jpeg_problem(data: bytes) -> str | None:
    """Cheap structural check: JPEG start and end markers present."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return "not a JPEG (no start-of-image marker)"
    if data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return "truncated JPEG (no end-of-image marker)"
    return None


def decode_image(path: Path, deep: bool = True) -> torch.Tensor:
    """Read and decode one JPEG to uint8 [3, H, W]; ``DataError`` naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read image ({error})") from None
    problem = jpeg_problem(data)
    if problem:
        raise DataError(f"{path}: {problem}")
    if not deep:
        return torch.empty(0, dtype=torch.uint8)
    try:
        with quiet_codec():
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_jpeg(buffer, mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise DataError(f"{path}: unreadable JPEG ({str(error).splitlines()[0]})") from None


def object_problems(
    root: Path, entry: str, latent_dim: int | None, deep: bool
) -> tuple[int, list[Problem]]:
    """Check one object folder; returns (number of complete views, problems)."""
    folder = root / entry.strip("/")
    if not folder.is_dir():
        return 0, [Problem("missing_folder", str(folder), f"split entry {entry!r} has no folder")]
    views, problems = discover_views(folder)
    for v in views:
        try:
            read_latent(folder / f"latent_{v}.npy", latent_dim)
        except DataError as error:
            problems.append(
                Problem("bad_latent", str(folder / f"latent_{v}.npy"), str(error).split(": ", 1)[1])
            )
        try:
            decode_image(folder / f"image_{v}.jpg", deep=deep)
        except DataError as error:
            problems.append(
                Problem("bad_jpeg", str(folder / f"image_{v}.jpg"), str(error).split(": ", 1)[1])
            )
    return len(views), problems


@dataclass
class SplitCounts:
    objects: Counter[str] = field(default_factory=Counter)  # synset → objects
    images: Counter[str] = field(default_factory=Counter)  # synset → complete views


@dataclass
class CheckReport:
    """Counts per split and class, and every problem found."""

    root: Path
    splits_dir: Path
    counts: dict[str, SplitCounts]
    problems: list[Problem]
    synsets: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, class_names: dict[str, str] | None = None, max_problems: int = 200) -> str:
        names = class_names or {}
        lines = [f"root: {self.root}", f"splits: {self.splits_dir}"]
        header = f"{'label':>5}  {'synset':<9} {'class':<12}" + "".join(
            f" {s + ' objs':>10} {s + ' imgs':>10}" for s in self.counts
        )
        lines.append(header)
        for label, synset in enumerate(self.synsets):
            row = f"{label:>5}  {synset:<9} {names.get(synset, ''):<12}"
            for counts in self.counts.values():
                row += f" {counts.objects[synset]:>10} {counts.images[synset]:>10}"
            lines.append(row)
        total = f"{'':>5}  {'total':<9} {'':<12}"
        for counts in self.counts.values():
            total += f" {sum(counts.objects.values()):>10} {sum(counts.images.values()):>10}"
        lines.append(total)
        if self.ok:
            lines.append("OK: no problems found")
        else:
            lines.append(f"{len(self.problems)} problem(s):")
            lines += [f"  {p}" for p in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        return "\n".join(lines)


def check_root(
    root: Path | str,
    splits_dir: Path | str | None = None,
    latent_dim: int | None = None,
    splits: Iterable[str] = SPLITS,
    deep: bool = True,
    sample: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Validate a 3DIEBench-format root.

    ``latent_dim`` None takes the most common length over a sample of objects (it must
    be 7 or 10) and then requires it of every latent file.
    ``sample`` checks only that many objects per split (evenly spaced, first and last
    included); ``deep`` decodes every JPEG instead of checking its markers.
    """
    root = Path(root)
    splits_dir = Path(splits_dir) if splits_dir else root
    problems: list[Problem] = []
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist")
    splits = tuple(splits)
    for path in missing_split_files(splits_dir, splits):
        problems.append(Problem("missing_split_file", str(path), SPLIT_FILES_ORIGIN))
    indices: list[SplitIndex] = []
    for split in splits:
        if all(p.is_file() for p in split_files(splits_dir, split)):
            try:
                indices.append(load_split(splits_dir, split))
            except DataError as error:
                problems.append(
                    Problem("bad_split_file", str(split_files(splits_dir, split)[0]), str(error))
                )
    synsets = synset_order(indices)
    counts: dict[str, SplitCounts] = {}
    if latent_dim is None:
        latent_dim = infer_latent_dim(root, indices)
        if latent_dim not in (7, 10):
            problems.append(
                Problem(
                    "bad_latent",
                    str(root),
                    f"latents have {latent_dim} values: expected 7 (3DIEBench) or 10 (-T)",
                )
            )
    for index in indices:
        problems += label_problems(index, synsets, splits_dir)
        counts[index.split] = split_counts = SplitCounts()
        chosen = _sample_positions(len(index.paths), sample)
        for i in tqdm(chosen, desc=f"check {index.split}", unit="obj", disable=not progress):
            entry = index.paths[i]
            n_views, found = object_problems(root, entry, latent_dim, deep)
            problems += found
            split_counts.objects[index.synset(i)] += 1
            split_counts.images[index.synset(i)] += n_views
    return CheckReport(root, splits_dir, counts, problems, synsets)


def infer_latent_dim(root: Path, indices: list[SplitIndex], sample: int = 16) -> int | None:
    """The most common latent length over the first view of a sample of objects."""
    lengths: Counter[int] = Counter()
    for index in indices:
        for i in _sample_positions(len(index.paths), sample):
            folder = root / index.paths[i].strip("/")
            if not folder.is_dir():
                continue
            latents = sorted(folder.glob("latent_*.npy"))
            if latents:
                try:
                    lengths[read_latent(latents[0], None).shape[0]] += 1
                except DataError:
                    continue
    return lengths.most_common(1)[0][0] if lengths else None


def _sample_positions(n: int, sample: int | None) -> list[int]:
    if sample is None or sample >= n:
        return list(range(n))
    if sample <= 1:
        return [0] if n else []
    return sorted({round(i * (n - 1) / (sample - 1)) for i in range(sample)})
