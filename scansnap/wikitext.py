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
2. the project's shared data folder (``../shared/data/wikitext-2`` next to a source checkout);
3. the official archive ``wikitext-2-v1.zip`` in the user cache (``$XDG_CACHE_HOME/scansnap`` or
   ``~/.cache/scansnap``), downloaded there once when ``download=True``;
4. otherwise a :class:`WikiTextNotFound` error that says how to provide the data.

Every file is checked before it is used: the archive against its published sha256
(:data:`ARCHIVE_SHA256`), each split against its line count, and the validation and test splits
against their sha256. A mismatch (a truncated or different file) raises :class:`WikiTextCorrupt`;
nothing is ever trained on unverified data unless ``verify=False`` is asked for explicitly.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._validate import check_bool, check_choice, check_int, check_tensor

__all__ = [
    "ARCHIVE_URL", "ARCHIVE_SHA256", "ARCHIVE_BYTES", "SPLITS", "SPLIT_SHA256", "SPLIT_LINES",
    "ENV_VAR", "WikiTextNotFound", "WikiTextCorrupt", "Corpus", "Vocab", "Location",
    "tokenize", "build_vocab", "locate", "download_archive", "read_splits", "load_corpus",
    "split_policy", "batchify", "get_batch", "cache_dir",
]

SPLITS = ("train", "valid", "test")
ENV_VAR = "SCANSNAP_WIKITEXT_DIR"

# The official archive. Its original host (s3.amazonaws.com/research.metamind.io/wikitext/) is
# gone; the dataset author re-hosts the identical file. The sha256 and size are the ones the
# Hugging Face `datasets` library publishes for this archive (datasets/wikitext/dataset_infos.json);
# torchtext pins the same file by MD5 542ccefacc6c27f945fb54453812b3cd. The sha256 below is the
# verification source: a download that does not hash to it is deleted, never read.
ARCHIVE_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"
ARCHIVE_SHA256 = "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"
ARCHIVE_BYTES = 4_475_746
ARCHIVE_MEMBERS = {s: f"wikitext-2/wiki.{s}.tokens" for s in SPLITS}

# Per-split checks of the text itself (also applied to files found in a local folder).
# sha256 of valid/test from ../shared/data/wikitext-2/README.md (identical bytes to the archive's
# wiki.{valid,test}.tokens; pytorch/examples renamed them). Line counts as torchtext's NUM_LINES.
SPLIT_SHA256 = {
    "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
    "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
}
SPLIT_LINES = {"train": 36718, "valid": 3760, "test": 4358}

_FILE_NAMES = {s: (f"{s}.txt", f"wiki.{s}.tokens") for s in SPLITS}
_SHARED_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"

HOW_TO_PROVIDE = (
    "Provide WikiText-2 (tokenized, v1) in one of these ways:\n"
    f"  * set the environment variable {ENV_VAR} to a folder holding train.txt/valid.txt/test.txt "
    "(pytorch/examples names) or wiki.train.tokens/wiki.valid.tokens/wiki.test.tokens "
    "(official names), or pass that folder as `path`;\n"
    f"  * or go online once: the loader downloads {ARCHIVE_URL} into {{cache}} and checks its "
    "sha256;\n"
    "  * or download that archive yourself and put it at {cache}/wikitext-2-v1.zip."
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
    """The user cache folder: ``$XDG_CACHE_HOME/scansnap`` or ``~/.cache/scansnap``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scansnap"


@dataclass(frozen=True)
class Location:
    """Where the splits were found: a ``folder`` of text files or a verified ``archive``."""

    kind: str  # "folder" or "archive"
    path: Path
    splits: tuple[str, ...]  # splits present, in SPLITS order
    source: str  # how it was found: "argument", "environment", "shared", "cache", "download"


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
                               + HOW_TO_PROVIDE.format(cache=cache_dir()))
    files = _folder_files(folder)
    if not files:
        names = ", ".join(n for s in SPLITS for n in _FILE_NAMES[s])
        raise WikiTextNotFound(f"WikiText-2 folder {folder} (from {source}) holds none of {names}.\n"
                               + HOW_TO_PROVIDE.format(cache=cache_dir()))
    return Location("folder", folder, tuple(s for s in SPLITS if s in files), source)


def verify_archive(path: Path, sha256: str = ARCHIVE_SHA256) -> None:
    """Raise :class:`WikiTextCorrupt` unless ``path`` hashes to ``sha256``."""
    got = _sha256(path)
    if got != sha256:
        raise WikiTextCorrupt(
            f"{path} has sha256 {got}, expected {sha256} (truncated or different file). "
            "Delete it and download again."
        )


def download_archive(
    url: str = ARCHIVE_URL,
    *,
    sha256: str = ARCHIVE_SHA256,
    dest: str | Path | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the WikiText-2 archive to ``dest`` (default: the user cache) and verify it.

    The file is written under a temporary name and renamed only after its sha256 matches, so an
    interrupted or altered download never sits where the loader looks. Returns the archive path.
    """
    if not isinstance(url, str) or not url:
        raise TypeError("url must be a non-empty str")
    dest = Path(dest) if dest is not None else cache_dir() / "wikitext-2-v1.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        verify_archive(tmp, sha256)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def locate(
    path: str | Path | None = None,
    *,
    download: bool = True,
    url: str = ARCHIVE_URL,
    sha256: str = ARCHIVE_SHA256,
) -> Location:
    """Find WikiText-2: argument folder, ``$SCANSNAP_WIKITEXT_DIR``, shared folder, cache, download.

    Raises :class:`WikiTextNotFound` with instructions when nothing is found (and the download,
    when allowed, fails), and :class:`WikiTextCorrupt` when a cached or downloaded archive does
    not match ``sha256``.
    """
    download = check_bool("download", download)
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        return _folder_location(Path(path).expanduser(), "argument")
    env = os.environ.get(ENV_VAR)
    if env:
        return _folder_location(Path(env).expanduser(), f"environment variable {ENV_VAR}")
    if _SHARED_DIR.is_dir() and _folder_files(_SHARED_DIR):
        return _folder_location(_SHARED_DIR, "shared")
    archive = cache_dir() / "wikitext-2-v1.zip"
    source = "cache"
    if not archive.is_file():
        if not download:
            raise WikiTextNotFound("WikiText-2 not found and download=False.\n"
                                   + HOW_TO_PROVIDE.format(cache=cache_dir()))
        try:
            download_archive(url, sha256=sha256, dest=archive)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            raise WikiTextNotFound(
                f"WikiText-2 not found locally and downloading {url} failed ({error}).\n"
                + HOW_TO_PROVIDE.format(cache=cache_dir())
            ) from error
        source = "download"
    verify_archive(archive, sha256)
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
    splits = tuple(s for s in SPLITS if ARCHIVE_MEMBERS[s] in names)
    if not splits:
        raise WikiTextCorrupt(f"{archive} holds none of {sorted(ARCHIVE_MEMBERS.values())}")
    return Location("archive", archive, splits, source)


def _check_text(split: str, data: bytes, origin: str) -> None:
    want = SPLIT_SHA256.get(split)
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise WikiTextCorrupt(
            f"{origin} ({split} split) does not match its known sha256 {want}: truncated or "
            "different data. Replace it with the tokenized wikitext-2-v1 file (or pass "
            "verify=False to use it anyway)."
        )
    lines = data.count(b"\n")
    if lines != SPLIT_LINES[split]:
        raise WikiTextCorrupt(
            f"{origin} ({split} split) has {lines} lines, expected {SPLIT_LINES[split]}: "
            "truncated or different data (pass verify=False to use it anyway)."
        )


def read_splits(location: Location, *, verify: bool = True) -> dict[str, str]:
    """The text of each split present at ``location``, checked unless ``verify=False``."""
    verify = check_bool("verify", verify)
    texts = {}
    if location.kind == "archive":
        with zipfile.ZipFile(location.path) as z:
            raw = {s: z.read(ARCHIVE_MEMBERS[s]) for s in location.splits}
        origins = {s: f"{location.path}:{ARCHIVE_MEMBERS[s]}" for s in location.splits}
    else:
        files = _folder_files(location.path)
        raw = {s: files[s].read_bytes() for s in location.splits}
        origins = {s: str(files[s]) for s in location.splits}
    for split, data in raw.items():
        if verify:
            _check_text(split, data, origins[split])
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
) -> Corpus:
    """Locate (:func:`locate`), verify, tokenize and encode WikiText-2.

    ``max_size`` caps the vocabulary (``<unk>`` included; most frequent words of the training
    split kept). Results are memoized per location and cap, so a chapter that trains several
    models tokenizes once.
    """
    if max_size is not None:
        max_size = check_int("max_size", max_size, low=2)
    verify = check_bool("verify", verify)
    location = locate(path, download=download)
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
