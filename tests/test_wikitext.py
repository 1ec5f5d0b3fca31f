"""WikiText-2 loader: tokenizer, vocabulary, batching, verification, local download (PAPER.md B.8)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from scansnap import wikitext as wt

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"


def real_data_dir() -> Path | None:
    env = os.environ.get(wt.ENV_VAR)
    for candidate in (env, SHARED):
        if candidate and wt._folder_files(Path(candidate)):
            return Path(candidate)
    return None


needs_data = pytest.mark.skipif(
    real_data_dir() is None,
    reason=f"WikiText-2 not found: set {wt.ENV_VAR} or provide ../shared/data/wikitext-2",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reads the user's cache, the env var or the shared folder unless it says so."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(wt.ENV_VAR, raising=False)
    monkeypatch.setattr(wt, "_SHARED_DIR", tmp_path / "no-shared")
    wt._CORPUS_CACHE.clear()
    yield
    wt._CORPUS_CACHE.clear()


# ---------------------------------------------------------------- tokenizer and vocabulary


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Hello World", ["hello", "world"]),
        ("It's here.", ["it", "'", "s", "here", "."]),
        ('He said "no"', ["he", "said", "no"]),  # double quotes are dropped
        ("a<br />b", ["a", "b"]),
        ("x, (y) z! w? p; q: r", ["x", ",", "(", "y", ")", "z", "!", "w", "?", "p", "q", "r"]),
        ("  tabs\tand\nnewlines  ", ["tabs", "and", "newlines"]),
        ("3 @.@ 5 @,@ 000 @-@ <unk>", ["3", "@", ".", "@", "5", "@", ",", "@", "000", "@-@", "<unk>"]),
        ("", []),
    ],
)
def test_tokenize_matches_basic_english(text, tokens):
    assert wt.tokenize(text) == tokens


def test_tokenize_rejects_non_str():
    with pytest.raises(TypeError, match="line"):
        wt.tokenize(b"bytes")


def test_vocab_order_unk_and_cap():
    lines = [["b", "a", "c", "a"], ["<unk>", "b", "d"], ["a"]]
    vocab = wt.build_vocab(lines)
    # a:3, b:2, then c and d tie at 1 → alphabetical; literal <unk> is not a word
    assert vocab.itos == ("<unk>", "a", "b", "c", "d")
    assert vocab(["a", "zzz", "<unk>", "d"]) == [1, 0, 0, 4]
    assert vocab.default_index == 0 and len(vocab) == 5
    capped = wt.build_vocab(lines, max_size=3)
    assert capped.itos == ("<unk>", "a", "b")
    assert capped(["c"]) == [0]
    assert capped.lookup_tokens([2, 1]) == ["b", "a"]
    with pytest.raises(ValueError, match="max_size"):
        wt.build_vocab(lines, max_size=1)
    with pytest.raises(TypeError, match="max_size"):
        wt.build_vocab(lines, max_size=2.5)


# ---------------------------------------------------------------- batching


def test_batchify_and_get_batch_shift():
    ids = torch.arange(103)
    source = wt.batchify(ids, 4)
    assert source.shape == (25, 4)
    assert source[:, 1].tolist() == list(range(25, 50))  # columns are contiguous streams
    data, targets = wt.get_batch(source, 0, bptt=10)
    assert data.shape == (10, 4) and targets.shape == (40,)
    assert torch.equal(targets.view(10, 4), data + 1)  # next token
    data, targets = wt.get_batch(source, 20, bptt=10)  # tail window is shorter
    assert data.shape == (4, 4) and torch.equal(targets.view(4, 4), source[21:25])


def test_batching_bad_inputs():
    with pytest.raises(ValueError, match="columns"):
        wt.batchify(torch.arange(10), 0)
    with pytest.raises(TypeError, match="columns"):
        wt.batchify(torch.arange(10), 2.0)
    with pytest.raises(TypeError, match="ids"):
        wt.batchify([1, 2, 3], 1)
    with pytest.raises(ValueError, match="ids"):
        wt.batchify(torch.arange(3), 2)
    source = wt.batchify(torch.arange(40), 4)
    with pytest.raises(ValueError, match="i must"):
        wt.get_batch(source, 9)
    with pytest.raises(ValueError, match="bptt"):
        wt.get_batch(source, 0, bptt=0)


# ---------------------------------------------------------------- policy


def test_split_policy():
    assert wt.split_policy(["train", "valid", "test"])[:2] == ("train", "valid")
    train, measure, note = wt.split_policy(["valid", "test"])
    assert (train, measure) == ("valid", "test")
    assert "validation" in note and "test" in note
    assert wt.split_policy(["test"])[:2] == ("test", "test")
    with pytest.raises(ValueError, match="present"):
        wt.split_policy([])
    with pytest.raises(ValueError, match="present"):
        wt.split_policy(["dev"])


# ---------------------------------------------------------------- locating and verifying


def fake_split(split: str, lines: int | None = None) -> bytes:
    n = wt.SPLIT_LINES[split] if lines is None else lines
    return "".join(f" the {split} line {i} , with <unk> .\n" if i % 3 else " \n"
                   for i in range(n)).encode()


def fake_archive(splits=("train", "valid", "test")) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for s in splits:
            z.writestr(wt.ARCHIVE_MEMBERS[s], fake_split(s))
    return buffer.getvalue()


def test_no_data_gives_clear_error():
    with pytest.raises(wt.WikiTextNotFound, match=wt.ENV_VAR) as info:
        wt.locate(download=False)
    assert "wikitext-2-v1.zip" in str(info.value)
    with pytest.raises(wt.WikiTextNotFound, match="does not exist"):
        wt.locate("/nonexistent/wikitext")


def test_empty_folder_error(tmp_path):
    with pytest.raises(wt.WikiTextNotFound, match="holds none"):
        wt.locate(tmp_path)


def test_folder_with_official_names_and_env(tmp_path, monkeypatch):
    (tmp_path / "wiki.train.tokens").write_bytes(fake_split("train"))
    (tmp_path / "test.txt").write_bytes(fake_split("test"))
    monkeypatch.setenv(wt.ENV_VAR, str(tmp_path))
    loc = wt.locate(download=False)
    assert loc.kind == "folder" and loc.splits == ("train", "test")
    assert wt.ENV_VAR in loc.source
    # the fake test split is not the real one: its checksum fails, and says so
    with pytest.raises(wt.WikiTextCorrupt, match="sha256"):
        wt.read_splits(loc)
    texts = wt.read_splits(loc, verify=False)
    assert set(texts) == {"train", "test"}


def test_truncated_split_detected(tmp_path):
    (tmp_path / "train.txt").write_bytes(fake_split("train", lines=100))
    with pytest.raises(wt.WikiTextCorrupt, match="lines"):
        wt.load_corpus(tmp_path)


def test_corpus_from_folder(tmp_path):
    (tmp_path / "train.txt").write_bytes(fake_split("train"))
    corpus = wt.load_corpus(tmp_path, max_size=5)
    assert corpus.training_split == "train" and corpus.measure_split == "train"
    assert len(corpus.vocab) == 5 and corpus.vocab.itos[0] == "<unk>"
    # empty lines contribute nothing; every other line has 8 tokens
    assert corpus.train_ids.numel() == 8 * sum(1 for i in range(wt.SPLIT_LINES["train"]) if i % 3)
    assert wt.load_corpus(tmp_path, max_size=5) is corpus  # memoized


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """A bounded HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_download_from_local_server(http_server, monkeypatch):
    root, base = http_server
    archive = fake_archive(("train", "valid", "test"))
    (root / "wikitext-2-v1.zip").write_bytes(archive)
    digest = hashlib.sha256(archive).hexdigest()
    # the fake valid/test are not the real text: check only the archive hash and line counts here
    monkeypatch.setattr(wt, "SPLIT_SHA256", {})
    loc = wt.locate(url=f"{base}/wikitext-2-v1.zip", sha256=digest)
    assert loc.kind == "archive" and loc.source == "download"
    assert loc.path == wt.cache_dir() / "wikitext-2-v1.zip" and loc.path.is_file()
    assert loc.splits == ("train", "valid", "test")
    # second call: served from the cache, no server needed
    (root / "wikitext-2-v1.zip").unlink()
    again = wt.locate(url=f"{base}/wikitext-2-v1.zip", sha256=digest)
    assert again.source == "cache"
    texts = wt.read_splits(again)
    assert texts["valid"].count("\n") == wt.SPLIT_LINES["valid"]


def test_download_checksum_mismatch_leaves_nothing(http_server):
    root, base = http_server
    (root / "wikitext-2-v1.zip").write_bytes(fake_archive())
    with pytest.raises(wt.WikiTextCorrupt, match="sha256"):
        wt.locate(url=f"{base}/wikitext-2-v1.zip", sha256="0" * 64)
    assert not any(wt.cache_dir().iterdir())  # no archive, no partial file


def test_cached_archive_truncated_detected(http_server):
    root, base = http_server
    archive = fake_archive()
    digest = hashlib.sha256(archive).hexdigest()
    cached = wt.cache_dir() / "wikitext-2-v1.zip"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive[: len(archive) // 2])
    with pytest.raises(wt.WikiTextCorrupt, match="truncated"):
        wt.locate(url=f"{base}/wikitext-2-v1.zip", sha256=digest)


def test_download_failure_is_clear(http_server):
    _, base = http_server
    with pytest.raises(wt.WikiTextNotFound, match="downloading .* failed"):
        wt.locate(url=f"{base}/missing.zip")


def test_locate_bad_inputs():
    with pytest.raises(TypeError, match="path"):
        wt.locate(3)
    with pytest.raises(TypeError, match="download"):
        wt.locate(download="yes")


# ---------------------------------------------------------------- the real data


@needs_data
def test_real_validation_and_test_splits():
    corpus = wt.load_corpus(real_data_dir())
    if "train" not in corpus.splits:
        assert corpus.training_split == "valid" and corpus.measure_split == "test"
        # PAPER.md B.8a: 214,417 tokens and 12,000 types (with <unk>) on valid.txt
        assert corpus.ids["valid"].numel() == 214_417
        assert len(corpus.vocab) == 12_000
        assert abs(corpus.unk_share() - 0.055) < 0.002
    capped = wt.load_corpus(real_data_dir(), max_size=2000)
    assert len(capped.vocab) == 2000
    assert capped.vocab.itos[:4] == ("<unk>", "the", ",", ".")
