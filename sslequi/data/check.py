"""Validation of a 3DIEBench-format root: split files, labels, folders, images, latents.

One set of checks serves both ``sslequi-data check ROOT`` (every object, every file,
full JPEG decode) and the loaders' structural scan at open (``scan_split``: every object
of the split, every latent read, every JPEG's markers and headers parsed, no decode;
cached by the split's file listing, so reopening an unchanged root reads no file).
Each problem names its file and what is wrong (datasets.md §1.2, §1.7, §6.1):

- missing split files, with where they come from (the real tarball ships without them);
- a split entry whose folder does not exist;
- labels that disagree with the rank of the synset among all synsets sorted as strings;
- a view with an image but no latent, or the reverse; an object with no views;
- a latent that is not float64 of the expected shape (7 or 10 values), or holds NaN/inf;
- an unreadable, truncated or structurally corrupt JPEG (markers, frame header).

What a structural scan cannot see (entropy-coded image data that only a full decode
rejects) fails when the item is loaded: a ``DataError`` naming the file, with the same
clean message whether it was raised in the main process or in a DataLoader worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    """A dataset root or file that cannot be used; the message names the file.

    A DataLoader worker's error reaches the main process re-raised by torch as
    ``DataError("Caught DataError in DataLoader worker process N. Original Traceback
    ...")``; the original message is recovered here, so a data error reads the same from
    any process and never carries a worker traceback.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(_without_worker_traceback(str(message)))


_WORKER_PREFIX = "Caught DataError in DataLoader worker"


def _without_worker_traceback(message: str) -> str:
    if not message.startswith(_WORKER_PREFIX):
        return message
    marker = f"\n{DataError.__module__}.{DataError.__qualname__}: "
    at = message.rfind(marker)
    return message[at + len(marker) :].rstrip("\n") if at >= 0 else message


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
    return views_from_names(folder, [entry.name for entry in folder.iterdir()])


def views_from_names(folder: Path, names: Iterable[str]) -> tuple[list[int], list[Problem]]:
    """``discover_views`` over a listing of ``folder`` already read."""
    images, latents = set(), set()
    for name in names:
        if m := IMAGE_PATTERN.match(name):
            images.add(int(m.group(1)))
        elif m := LATENT_PATTERN.match(name):
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
    finite = np.isfinite(value)
    if not finite.all():
        bad = [f"[{i}]={value[i]}" for i in np.flatnonzero(~finite)]
        raise DataError(f"{path}: latent holds non-finite values ({', '.join(bad)})")
    return value


# Frame headers (SOF0–SOF15 except DHT C4, JPG C8, DAC CC) and markers without a length.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
_NEEDS_MORE = "needs more bytes"


def _jpeg_header_problem(data: bytes) -> str | None:
    """Walk the marker segments from SOI to SOS: each length inside the file, a frame
    header with non-zero size before the scan. ``_NEEDS_MORE`` if ``data`` ends first."""
    pos, frame = 2, False
    while True:
        if pos + 4 > len(data):
            return _NEEDS_MORE
        if data[pos] != 0xFF:
            return f"corrupt JPEG header (no marker at byte {pos})"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (0xD8, 0xD9):
            return f"corrupt JPEG header (marker 0x{marker:02X} at byte {pos} before the scan)"
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return f"corrupt JPEG header (segment 0x{marker:02X} at byte {pos} has length {length})"
        if pos + 2 + length > len(data):
            return _NEEDS_MORE
        if marker in _SOF_MARKERS:
            if length < 8:
                return f"corrupt JPEG header (frame header of length {length})"
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            components = data[pos + 9]
            if not height or not width or components not in (1, 3, 4):
                return f"corrupt JPEG header (frame {width}×{height} with {components} components)"
            frame = True
        if marker == 0xDA:
            return None if frame else "corrupt JPEG header (image data before any frame header)"
        pos += 2 + length


def jpeg_problem(data: bytes, tail: bytes | None = None) -> str | None:
    """Structural check without decoding: start and end markers, and the marker segments
    up to the scan (lengths inside the file, a frame header of non-zero size).

    ``data`` is the whole file, or its first bytes when ``tail`` (the last bytes) is given.
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return "not a JPEG (no start-of-image marker)"
    end = data if tail is None else tail
    if end.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return "truncated JPEG (no end-of-image marker)"
    header = _jpeg_header_problem(data)
    if header == _NEEDS_MORE:
        if tail is not None:
            return _NEEDS_MORE
        return "truncated JPEG header (the file ends before the image data)"
    return header


JPEG_HEAD_BYTES = 1 << 16
JPEG_TAIL_BYTES = 64


def jpeg_file_problem(path: Path) -> str | None:
    """``jpeg_problem`` of a file, reading its head and tail (the whole file only when its
    headers are longer than ``JPEG_HEAD_BYTES``)."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= JPEG_HEAD_BYTES + JPEG_TAIL_BYTES:
                return jpeg_problem(handle.read())
            head = handle.read(JPEG_HEAD_BYTES)
            handle.seek(size - JPEG_TAIL_BYTES)
            problem = jpeg_problem(head, handle.read())
            if problem == _NEEDS_MORE:
                handle.seek(0)
                problem = jpeg_problem(handle.read())
            return problem
    except OSError as error:
        return f"cannot read image ({error})"


# torchvision prefixes libjpeg's message with its own source location
_DECODER_LOCATION = re.compile(r"^decode_jpeg, \S+:\d+, ")


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
        reason = _DECODER_LOCATION.sub("", str(error).splitlines()[0])
        raise DataError(f"{path}: unreadable JPEG ({reason})") from None


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


# --------------------------------------------------------------------------- scan at open

SCAN_FORMAT = 1
CACHE_ENV = "SSLEQUI_CACHE_DIR"
SCAN_THREADS = 8  # file metadata and small reads wait on the disk, not the CPU
_SCAN_MEMO: dict[str, dict[str, object]] = {}

Listing = tuple[tuple[str, int, int], ...]  # (name, size, mtime_ns) per entry, sorted


@dataclass(frozen=True)
class ScanSummary:
    """What ``scan_split`` found: counts, the object with the fewest views, problems."""

    split: str
    objects: int
    views: int  # complete image + latent pairs over the split
    min_views: int
    fewest_views: str  # the folder holding ``min_views`` views
    problems: tuple[Problem, ...] = ()
    cached: bool = False  # True: an unchanged listing; no file was read


def scan_cache_dir() -> Path:
    """``$SSLEQUI_CACHE_DIR/data_scans``, else ``$XDG_CACHE_HOME/sslequi/data_scans``,
    else ``~/.cache/sslequi/data_scans``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser() / "data_scans"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sslequi" / "data_scans"


def _listing(folder: Path) -> Listing | str:
    """The folder's entries with size and mtime, or why it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            rows = []
            for entry in entries:
                stat = entry.stat()
                rows.append((entry.name, stat.st_size, stat.st_mtime_ns))
    except FileNotFoundError:
        return "no folder"
    except NotADirectoryError:
        return "not a folder"
    except OSError as error:
        return f"cannot list ({error.strerror or error})"
    return tuple(sorted(rows))


def _scan_object(
    folder: Path, entry: str, listing: Listing | str, latent_dim: int
) -> tuple[int, list[Problem]]:
    if isinstance(listing, str):
        return 0, [Problem("missing_folder", str(folder), f"split entry {entry!r}: {listing}")]
    views, problems = views_from_names(folder, (name for name, _, _ in listing))
    for v in views:
        try:
            read_latent(folder / f"latent_{v}.npy", latent_dim)
        except DataError as error:
            message = str(error).split(": ", 1)[-1]
            problems.append(Problem("bad_latent", str(folder / f"latent_{v}.npy"), message))
        problem = jpeg_file_problem(folder / f"image_{v}.jpg")
        if problem:
            problems.append(Problem("bad_jpeg", str(folder / f"image_{v}.jpg"), problem))
    return len(views), problems


def _listing_key(root: Path, index: SplitIndex, latent_dim: int, listings: list) -> str:
    digest = hashlib.sha256(
        json.dumps([SCAN_FORMAT, str(root.resolve()), index.split, latent_dim]).encode()
    )
    for entry, listing in zip(index.paths, listings, strict=True):
        digest.update(f"{entry}\0{listing!r}\n".encode())
    return digest.hexdigest()[:32]


def _read_cached(key: str) -> dict[str, object] | None:
    if key in _SCAN_MEMO:
        return _SCAN_MEMO[key]
    try:
        data = json.loads((scan_cache_dir() / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != SCAN_FORMAT:
        return None
    return data


def _write_cached(key: str, data: dict[str, object]) -> None:
    """Best effort: an unwritable cache only means the next open scans again."""
    _SCAN_MEMO[key] = data
    folder = scan_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(data))
        os.replace(temporary, folder / f"{key}.json")
    except OSError:
        pass


def scan_split(root: Path, index: SplitIndex, latent_dim: int) -> ScanSummary:
    """The structural scan at open: every object of ``index``, every view pair, every
    latent read (dtype, shape, finite), every JPEG's markers and headers parsed.

    A clean result is cached under a digest of the split's listing (every entry's name,
    size and mtime, the root and the latent size): reopening an unchanged root lists the
    object folders and reads no file; any file added, removed or rewritten scans again.
    """
    folders = [root / entry.strip("/") for entry in index.paths]
    progress = len(folders) >= 2000
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        listings = list(
            tqdm(
                pool.map(_listing, folders),
                total=len(folders),
                desc=f"list {index.split}",
                unit="obj",
                disable=not progress,
            )
        )
        key = _listing_key(root, index, latent_dim, listings)
        cached = _read_cached(key)
        if cached is not None:
            return ScanSummary(
                split=index.split,
                objects=int(cached["objects"]),  # type: ignore[call-overload]
                views=int(cached["views"]),  # type: ignore[call-overload]
                min_views=int(cached["min_views"]),  # type: ignore[call-overload]
                fewest_views=str(cached["fewest_views"]),
                cached=True,
            )
        results = list(
            tqdm(
                pool.map(
                    _scan_object,
                    folders,
                    index.paths,
                    listings,
                    [latent_dim] * len(folders),
                ),
                total=len(folders),
                desc=f"scan {index.split}",
                unit="obj",
                disable=not progress,
            )
        )
    problems = [p for _, found in results for p in found]
    counts = [n for n, _ in results]
    fewest = min(range(len(counts)), key=counts.__getitem__) if counts else 0
    summary = ScanSummary(
        split=index.split,
        objects=len(folders),
        views=sum(counts),
        min_views=counts[fewest] if counts else 0,
        fewest_views=str(folders[fewest]) if folders else "",
        problems=tuple(problems),
    )
    if not problems:
        _write_cached(
            key,
            {
                "format": SCAN_FORMAT,
                "root": str(root),
                "split": index.split,
                "objects": summary.objects,
                "views": summary.views,
                "min_views": summary.min_views,
                "fewest_views": summary.fewest_views,
            },
        )
    return summary
