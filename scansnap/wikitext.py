"""WikiText-2 (tokenized ``wikitext-2-v1``): locate, download, verify, tokenize, batchify.

This is the data of the paper's real-data experiments (PAPER.md B.8 / Fig 7 and App. G / Fig 10):
the tokenized WikiText-2 of Merity et al. (2016), read the way the authors read it (the PyTorch
``nn.Transformer`` tutorial with torchtext): ``basic_english`` tokenizer, a vocabulary built from
the training split with ``<unk>`` as default index, token lists concatenated with empty lines
dropped, ``batchify`` into columns, and ``bptt``-long windows whose targets are shifted by one.

Where the data comes from (:func:`locate`, DESIGN.md section 6), first match wins:

1. a folder given as argument, else the environment variable ``SCANSNAP_WIKITEXT_DIR``. File names
   of pytorch/examples (``train.txt``, ``valid.txt``, ``test.txt``) or of the official archive
   (``wiki.train.tokens``, ...) are both accepted; any subset of splits may be present;
2. the three splits extracted from the official archive into the per-user cache
   (:func:`cache_dir`, located by ``platformdirs``), downloaded there once when ``download=True``
   (a progress bar shows it) or taken from ``wikitext-2-v1.zip`` put into the cache by hand;
3. otherwise a :class:`WikiTextNotFound` error naming the variable and the archive's URL.

Nothing unverified is used: the archive must match its pinned size and sha256 (:data:`OFFICIAL`),
each split its line count, the validation and test splits of a folder their pinned sha256, and
the cached splits the sha256 recorded when they were extracted from the verified archive. Every
file is written under a temporary name and renamed into place only when complete and verified, so
an interrupted download leaves nothing that is later trusted. A mismatch raises
:class:`WikiTextCorrupt` (unless ``verify=False`` is asked for explicitly).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
import torch
from tqdm.auto import tqdm

from ._validate import check_bool, check_int, check_tensor

__all__ = [
    "ARCHIVE_URL", "ARCHIVE_SHA256", "ARCHIVE_BYTES", "SPLITS", "SPLIT_SHA256", "SPLIT_LINES",
    "ENV_VAR", "OFFICIAL", "Source", "WikiTextNotFound", "WikiTextCorrupt", "Corpus", "Vocab",
    "Location", "tokenize", "build_vocab", "locate", "fetch", "read_splits", "load_corpus",
    "split_policy", "batchify", "get_batch", "cache_dir",
]

SPLITS = ("train", "valid", "test")
ENV_VAR = "SCANSNAP_WIKITEXT_DIR"

# The official archive. Its original host (s3.amazonaws.com/research.metamind.io/wikitext/) is
# gone; the dataset author re-hosts the identical file, and the Hugging Face `datasets` library
# downloads it from there. The sha256 and size are the ones `datasets` publishes for this archive
# (datasets/wikitext/dataset_infos.json); Julia's MLDatasets and other loaders pin the same
# sha256; torchtext pins the same file by MD5 542ccefacc6c27f945fb54453812b3cd. These machines
# cannot reach the host, so the archive itself was not hashed here.
ARCHIVE_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"
ARCHIVE_SHA256 = "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"
ARCHIVE_BYTES = 4_475_746
ARCHIVE_MEMBERS = {s: f"wikitext-2/wiki.{s}.tokens" for s in SPLITS}

# Per-split checks of the text of a local folder. sha256 of valid/test as in
# ../shared/data/wikitext-2/README.md (pytorch/examples' valid.txt/test.txt, hashed here). Line
# counts as torchtext's NUM_LINES for the archive's splits, also checked after extraction.
SPLIT_SHA256 = {
    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}
SPLIT_LINES = {"train": 36718, "valid": 3760, "test": 4358}

_FILE_NAMES = {s: (f"{s}.txt", f"wiki.{s}.tokens") for s in SPLITS}
_CHECKSUMS = "SHA256SUMS"  # written into an extracted cache folder, last, before it is renamed


@dataclass(frozen=True)
class Source:
    """An archive to download (``url``) and what it must be: ``size`` bytes hashing to ``sha256``,
    holding the three splits at ``members`` (paths inside the zip). :data:`OFFICIAL` is
    ``wikitext-2-v1``; a mirror (or a test's local server) is another :class:`Source`."""

    url: str
    sha256: str
    size: int | None = None
    members: Mapping[str, str] = field(default_factory=lambda: dict(ARCHIVE_MEMBERS))

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        if not isinstance(self.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.size is not None:
            check_int("size", self.size, low=1)
        if set(self.members) != set(SPLITS):
            raise ValueError(f"members must name exactly the splits {SPLITS}")


OFFICIAL = Source(ARCHIVE_URL, ARCHIVE_SHA256, ARCHIVE_BYTES)


def _how_to_provide(source: Source) -> str:
    return (
        "Provide WikiText-2 (tokenized, v1) in one of these ways:\n"
        f"  * set the environment variable {ENV_VAR} to a folder holding train.txt/valid.txt/"
        "test.txt (pytorch/examples names) or wiki.train.tokens/wiki.valid.tokens/wiki.test.tokens "
        "(official names), or pass that folder as `path`;\n"
        f"  * or go online once: the loader downloads {source.url} into {cache_dir()} and checks "
        "its sha256;\n"
        f"  * or download that archive yourself and put it at {cache_dir() / _archive_name(source)}."
    )


class WikiTextNotFound(FileNotFoundError):
    """No WikiText-2 split could be found locally, in the cache, or downloaded."""


class WikiTextCorrupt(ValueError):
    """A WikiText-2 file failed its checksum or line-count check (truncated or different data)."""


# --------------------------------------------------------------------------------------------
# Tokenizer and vocabulary
# --------------------------------------------------------------------------------------------

# torchtext's `basic_english` (torchtext.data.utils._basic_english_normalize): lowercase, then
# these substitutions in this order, then split on whitespace. Reproduced, not imported, so the
# book does not depend on torchtext (which no longer ships for current torch).
_BASIC_ENGLISH = [
    (re.compile(p), r)
    for p, r in zip(
        [r"\'", r"\"", r"\.", r"<br \/>", r",", r"\(", r"\)", r"\!", r"\?", r"\;", r"\:", r"\s+"],
        [" '  ", "", " . ", " ", " , ", " ( ", " ) ", " ! ", " ? ", " ", " ", " "],
    )
]


def tokenize(line: str) -> list[str]:
    """torchtext ``basic_english``: lowercase, split off ``' . , ( ) ! ?``, drop ``" ; :``."""
    if not isinstance(line, str):
        raise TypeError(f"line must be a str, got {type(line).__name__}")
    line = line.lower()
    for pattern, replacement in _BASIC_ENGLISH:
        line = pattern.sub(replacement, line)
    return line.split()


@dataclass(frozen=True)
class Vocab:
    """Token ↔ id map with ``<unk>`` (id 0) as the default for unknown tokens (torchtext style)."""

    itos: tuple[str, ...]
    stoi: Mapping[str, int] = field(repr=False, compare=False, default_factory=dict)
    unk: str = "<unk>"

    def __post_init__(self) -> None:
        if not self.itos or self.itos[0] != self.unk:
            raise ValueError(f"itos must start with the unknown token {self.unk!r}")
        if len(set(self.itos)) != len(self.itos):
            raise ValueError("itos must not contain duplicate tokens")
        object.__setattr__(self, "stoi", {t: i for i, t in enumerate(self.itos)})

    @property
    def default_index(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __call__(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``<unk>`` (0)."""
        get = self.stoi.get
        return [get(t, 0) for t in tokens]

    def lookup_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def encode(self, text: str) -> torch.Tensor:
        """Tokenize ``text`` with :func:`tokenize` and return int64 ids [n]."""
        return torch.tensor(self(tokenize(text)), dtype=torch.long)


def build_vocab(token_lines: Iterable[Sequence[str]], max_size: int | None = None) -> Vocab:
    """Vocabulary of the tokens in ``token_lines``, most frequent first, ``<unk>`` at id 0.

    Matches torchtext's ``build_vocab_from_iterator(..., specials=["<unk>"])``: ties in frequency
    are broken alphabetically (deterministic), a literal ``<unk>`` in the text is not counted as a
    word, and ``max_size`` (when given) counts ``<unk>`` too, keeping the ``max_size - 1`` most
    frequent words.
    """
    if max_size is not None:
        max_size = check_int("max_size", max_size, low=2)
    counts: Counter[str] = Counter()
    for tokens in token_lines:
        counts.update(tokens)
    counts.pop("<unk>", None)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if max_size is not None:
        ordered = ordered[: max_size - 1]
    return Vocab(("<unk>",) + tuple(t for t, _ in ordered))


# --------------------------------------------------------------------------------------------
# Locating, downloading, verifying
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The per-user cache folder of scansnap (``platformdirs``; ``~/.cache/scansnap`` on Linux)."""
    return Path(platformdirs.user_cache_dir("scansnap", appauthor=False))


@dataclass(frozen=True)
class Location:
    """A folder holding some of the splits, and the sha256 each split there must have."""

    kind: str  # "folder" (kept for callers that print it)
    path: Path
    splits: tuple[str, ...]  # splits present, in SPLITS order
    source: str  # how it was found: "argument", "environment variable ...", "cache", "download"
    sha256: Mapping[str, str] = field(default_factory=lambda: dict(SPLIT_SHA256), compare=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_files(folder: Path) -> dict[str, Path]:
    found = {}
    for split in SPLITS:
        for name in _FILE_NAMES[split]:
            if (folder / name).is_file():
                found[split] = folder / name
                break
    return found


def _folder_location(folder: Path, source: str) -> Location:
    if not folder.is_dir():
        raise WikiTextNotFound(f"WikiText-2 folder {folder} (from {source}) does not exist.\n"
                               + _how_to_provide(OFFICIAL))
    files = _folder_files(folder)
    if not files:
        names = ", ".join(n for s in SPLITS for n in _FILE_NAMES[s])
        raise WikiTextNotFound(f"WikiText-2 folder {folder} (from {source}) holds none of {names}.\n"
                               + _how_to_provide(OFFICIAL))
    return Location("folder", folder, tuple(s for s in SPLITS if s in files), source)


def _archive_name(source: Source) -> str:
    return Path(urllib.parse.urlparse(source.url).path).name or "wikitext-2.zip"


def _extracted_dir(source: Source) -> Path:
    # One folder per archive checksum: data extracted from another archive is never mistaken for it.
    return cache_dir() / f"{Path(_archive_name(source)).stem}-{source.sha256[:16]}"


def _cached_location(folder: Path, source: str) -> Location | None:
    """The extracted cache folder, if complete: its checksum file is written last."""
    sums = folder / _CHECKSUMS
    if not sums.is_file():
        return None
    try:
        recorded = dict(line.split()[::-1] for line in sums.read_text().splitlines()
                        if line.strip())
    except ValueError as error:
        raise WikiTextCorrupt(f"{sums} is not a checksum list ({error}): delete {folder}"
                              ) from error
    files = {split: folder / Path(ARCHIVE_MEMBERS[split]).name for split in SPLITS}
    if set(recorded) != {p.name for p in files.values()}:
        raise WikiTextCorrupt(f"{sums} does not list the three splits: delete {folder}")
    sha = {split: recorded[path.name] for split, path in files.items()}
    return Location("folder", folder, SPLITS, source, sha)


def _download(source: Source, dest: Path, *, timeout: float, progress: bool) -> None:
    """Stream ``source.url`` into ``dest`` (inside a temporary folder) with a progress bar; an
    early end of the transfer raises ``http.client.IncompleteRead``."""
    with urllib.request.urlopen(source.url, timeout=timeout) as response, open(dest, "wb") as out:
        announced = int(response.headers.get("Content-Length") or 0)
        received = 0
        with tqdm(total=announced or source.size, unit="B", unit_scale=True,
                  desc=f"downloading {source.url}", disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if announced and received != announced:  # the connection closed early
        raise http.client.IncompleteRead(b"", announced - received)


def _verify_archive(path: Path, source: Source, origin: str) -> None:
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        raise WikiTextCorrupt(f"{origin} has {size} bytes, expected {source.size} "
                              "(truncated or different file)")
    got = _sha256(path)
    if got != source.sha256:
        raise WikiTextCorrupt(f"{origin} has sha256 {got}, expected {source.sha256} "
                              "(truncated or different file)")


def _extract(archive: Path, source: Source, work: Path) -> dict[str, str]:
    """Extract the three splits of the verified ``archive`` into ``work``, checking their line
    counts; return each file's sha256."""
    try:
        with zipfile.ZipFile(archive) as z:
            raw = {split: z.read(member) for split, member in source.members.items()}
    except (zipfile.BadZipFile, KeyError) as error:
        raise WikiTextCorrupt(f"{source.url}: not a WikiText-2 archive ({error})") from error
    sums = {}
    for split, data in raw.items():
        _check_text(split, data, f"{source.url}:{source.members[split]}", {})
        name = Path(ARCHIVE_MEMBERS[split]).name
        (work / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums


def fetch(
    source: Source = OFFICIAL,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Location:
    """Download ``source`` (unless its archive was put in the cache by hand), verify it, and
    extract its three splits into the per-user cache; return that folder's :class:`Location`.

    Everything is written into a temporary folder inside the cache and renamed into place only
    when the archive matched its size and sha256 and every split its line count, so an
    interrupted or altered download never sits where :func:`locate` looks.
    """
    if not isinstance(source, Source):
        raise TypeError(f"source must be a wikitext.Source, got {type(source).__name__}")
    progress = check_bool("progress", progress)
    final = _extracted_dir(source)
    by_hand = cache_dir() / _archive_name(source)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=final.parent))
    try:
        if by_hand.is_file():
            archive, origin, how = by_hand, str(by_hand), "cache"
        else:
            archive, origin, how = work / "archive.zip", source.url, "download"
            _download(source, archive, timeout=timeout, progress=progress)
        _verify_archive(archive, source, origin)
        sums = _extract(archive, source, work)
        (work / _CHECKSUMS).write_text("".join(f"{sha}  {name}\n" for name, sha in sums.items()))
        if archive.parent == work:
            archive.unlink()
        if final.exists() and _cached_location(final, how) is None:
            shutil.rmtree(final)  # not a complete extraction (no checksum list): never trusted
        try:
            os.replace(work, final)  # atomic: the folder appears complete or not at all
        except OSError:
            if _cached_location(final, how) is None:  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if progress and how == "download":
        print(f"WikiText-2: downloaded {source.url}, verified it, extracted it into {final}")
    location = _cached_location(final, how)
    assert location is not None  # written just above
    return location


def locate(
    path: str | Path | None = None,
    *,
    download: bool = True,
    source: Source = OFFICIAL,
    progress: bool = True,
) -> Location:
    """Find WikiText-2: argument folder, ``$SCANSNAP_WIKITEXT_DIR``, the cache, a download.

    Raises :class:`WikiTextNotFound` naming the variable and the URL when nothing is found (and
    the download, when allowed, fails), and :class:`WikiTextCorrupt` when a downloaded archive
    does not match ``source``'s size and sha256.
    """
    download = check_bool("download", download)
    if not isinstance(source, Source):
        raise TypeError(f"source must be a wikitext.Source, got {type(source).__name__}")
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        return _folder_location(Path(path).expanduser(), "argument")
    env = os.environ.get(ENV_VAR)
    if env:
        return _folder_location(Path(env).expanduser(), f"environment variable {ENV_VAR}")
    cached = _cached_location(_extracted_dir(source), "cache")
    if cached is not None:
        return cached
    if not download and not (cache_dir() / _archive_name(source)).is_file():
        raise WikiTextNotFound(f"WikiText-2 not found and download=False: {ENV_VAR} is not set "
                               "and the cache holds no extracted splits.\n"
                               + _how_to_provide(source))
    try:
        return fetch(source, progress=progress)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError,
            ConnectionError) as error:
        raise WikiTextNotFound(
            f"WikiText-2 not found: {ENV_VAR} is not set, the cache {cache_dir()} holds no "
            f"extracted splits, and downloading {source.url} failed ({error}).\n"
            + _how_to_provide(source)
        ) from error


def _check_text(split: str, data: bytes, origin: str, sha256: Mapping[str, str]) -> None:
    want = sha256.get(split)
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise WikiTextCorrupt(
            f"{origin} ({split} split) does not match its known sha256 {want}: truncated or "
            "different data. Replace it with the tokenized wikitext-2-v1 file (or pass "
            "verify=False to use it anyway)."
        )
    # A last line without its newline is a line too: text appended at the end must not pass.
    lines = data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    if lines != SPLIT_LINES[split]:
        raise WikiTextCorrupt(
            f"{origin} ({split} split) has {lines} lines, expected {SPLIT_LINES[split]}: "
            "truncated or different data (pass verify=False to use it anyway)."
        )


def read_splits(location: Location, *, verify: bool = True) -> dict[str, str]:
    """The text of each split present at ``location``, checked unless ``verify=False``."""
    verify = check_bool("verify", verify)
    files = _folder_files(location.path)
    texts = {}
    for split in location.splits:
        if split not in files:
            raise WikiTextNotFound(f"{location.path} no longer holds the {split} split")
        data = files[split].read_bytes()
        if verify:
            _check_text(split, data, str(files[split]), location.sha256)
        texts[split] = data.decode("utf-8")
    return texts


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------


def split_policy(present: Iterable[str]) -> tuple[str, str, str]:
    """Which split to train on and which to measure on, given the splits present, and why.

    With the training split present: train on ``train``, measure attention on ``valid`` (the
    authors' ``decoder_wiki.py`` reports validation entropy; Fig 10 / App. G). Without it (our
    machines, DESIGN.md section 6): train on ``valid`` and measure on ``test``, so the measured
    text is never trained on. Returns ``(training_split, measure_split, note)``.
    """
    present = set(present)
    unknown = present - set(SPLITS)
    if unknown:
        raise ValueError(f"present must contain only {SPLITS}, got {sorted(unknown)}")
    if "train" in present:
        measure = "valid" if "valid" in present else "train"
        note = (f"Trained on the WikiText-2 training split (as the paper); attention measured on "
                f"the {measure} split.")
        return "train", measure, note
    if "valid" in present and "test" in present:
        return "valid", "test", (
            "The WikiText-2 training split is not available here, so the model is trained on the "
            "validation split (about 214k tokens, a tenth of the training split's 2.1M) "
            "and attention is measured on the test split, which it never sees."
        )
    if present:
        only = sorted(present)[0]
        return only, only, (
            f"Only the {only} split is available: the model is trained and measured on it."
        )
    raise ValueError("present must name at least one split")


@dataclass
class Corpus:
    """Encoded WikiText-2 splits, their vocabulary and the train/measure policy.

    ``ids[split]`` is a 1-D int64 tensor: each non-empty line tokenized and concatenated, as in
    the PyTorch ``nn.Transformer`` tutorial the authors followed (PAPER.md B.8). ``vocab`` is
    built from ``training_split``; ``note`` explains the choice of splits for the page.
    """

    ids: dict[str, torch.Tensor]
    vocab: Vocab
    training_split: str
    measure_split: str
    note: str
    location: Location

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.ids)

    @property
    def train_ids(self) -> torch.Tensor:
        return self.ids[self.training_split]

    @property
    def measure_ids(self) -> torch.Tensor:
        return self.ids[self.measure_split]

    def unk_share(self, split: str | None = None) -> float:
        """Fraction of ``<unk>`` ids in ``split`` (default: the training split)."""
        ids = self.ids[split or self.training_split]
        return float((ids == 0).float().mean())


_CORPUS_CACHE: dict[tuple, Corpus] = {}


def load_corpus(
    path: str | Path | None = None,
    *,
    max_size: int | None = None,
    download: bool = True,
    verify: bool = True,
    progress: bool = True,
    source: Source = OFFICIAL,
) -> Corpus:
    """Locate (:func:`locate`, which downloads ``source`` when nothing local is found, with a
    progress bar unless ``progress=False``), verify, tokenize and encode WikiText-2.

    ``max_size`` caps the vocabulary (``<unk>`` included; most frequent words of the training
    split kept). Results are memoized per location and cap, so a chapter that trains several
    models tokenizes once.
    """
    if max_size is not None:
        max_size = check_int("max_size", max_size, low=2)
    verify = check_bool("verify", verify)
    location = locate(path, download=download, source=source, progress=progress)
    key = (location.kind, str(location.path), location.splits, max_size, verify)
    if key in _CORPUS_CACHE:
        return _CORPUS_CACHE[key]
    texts = read_splits(location, verify=verify)
    tokens = {s: [tokenize(line) for line in text.splitlines()] for s, text in texts.items()}
    train_split, measure_split, note = split_policy(tokens)
    vocab = build_vocab(tokens[train_split], max_size)
    ids = {}
    for split, lines in tokens.items():
        flat = [t for line in lines for t in line]  # empty lines contribute nothing
        ids[split] = torch.tensor(vocab(flat), dtype=torch.long)
    corpus = Corpus(ids, vocab, train_split, measure_split, note, location)
    _CORPUS_CACHE[key] = corpus
    return corpus


# --------------------------------------------------------------------------------------------
# Batching (the PyTorch word-language-model tutorial)
# --------------------------------------------------------------------------------------------


def batchify(ids: torch.Tensor, columns: int) -> torch.Tensor:
    """Cut a 1-D id stream into ``columns`` contiguous streams: ``[len // columns, columns]``.

    Column ``j`` holds tokens ``j*n .. (j+1)*n - 1``; the remainder is dropped (tutorial).
    """
    ids = check_tensor("ids", ids, ndim=1)
    columns = check_int("columns", columns, low=1)
    if ids.dtype != torch.long:
        raise TypeError(f"ids must be an int64 tensor, got {ids.dtype}")
    rows = ids.numel() // columns
    if rows < 2:
        raise ValueError(f"ids must hold at least 2 * columns = {2 * columns} tokens, "
                         f"got {ids.numel()}")
    return ids[: rows * columns].view(columns, rows).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int = 35) -> tuple[torch.Tensor, torch.Tensor]:
    """Window ``i .. i+bptt`` of a batchified ``source``: ``data [L, B]`` and ``targets [L*B]``.

    ``targets`` are the next tokens (``source[i+1 : i+1+L]`` flattened), ``L = min(bptt,
    len(source) - 1 - i)`` as in the tutorial.
    """
    source = check_tensor("source", source, ndim=2)
    bptt = check_int("bptt", bptt, low=1)
    i = check_int("i", i, low=0, high=source.shape[0] - 2)
    seq_len = min(bptt, source.shape[0] - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)
