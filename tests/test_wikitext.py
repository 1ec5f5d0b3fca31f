"""WikiText-2 loader: tokenizer, vocabulary, batching, verification, local download (PAPER.md B.8)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import socket
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


# Read once, at collection: the `isolated` fixture below removes the variable from each test.
REAL_DATA = real_data_dir()
needs_data = pytest.mark.skipif(
    REAL_DATA is None,
    reason=f"WikiText-2 not found: set {wt.ENV_VAR} or provide ../shared/data/wikitext-2",
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reads the user's cache or the env var unless it says so."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(wt.ENV_VAR, raising=False)
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
    """A zip laid out as wikitext-2-v1.zip, with fake splits of the right line counts."""
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


@pytest.mark.parametrize("extra", [b" an extra line .\n", b" text appended without a newline"])
def test_split_with_extra_lines_detected(tmp_path, extra):
    """One line more than the split has (a full line, or text after its last newline) fails the
    line-count check; read_splits with verify=False still reads it as it is."""
    (tmp_path / "train.txt").write_bytes(fake_split("train") + extra)
    with pytest.raises(wt.WikiTextCorrupt, match=f"{wt.SPLIT_LINES['train'] + 1} lines"):
        wt.load_corpus(tmp_path)
    texts = wt.read_splits(wt.locate(tmp_path), verify=False)
    assert texts["train"].endswith(extra.decode())


@needs_data
def test_real_split_with_an_extra_line_detected(tmp_path):
    """A copy of the real validation split with one line appended fails its pinned sha256, and
    so does the real test split with its last line cut off (the copies live in tmp_path)."""
    valid = (REAL_DATA / "valid.txt").read_bytes()
    (tmp_path / "valid.txt").write_bytes(valid + b" = Extra = \n")
    (tmp_path / "test.txt").write_bytes(
        (REAL_DATA / "test.txt").read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n")
    location = wt.locate(tmp_path)
    for split in ("valid", "test"):
        with pytest.raises(wt.WikiTextCorrupt, match=rf"\({split} split\).*sha256"):
            wt.read_splits(wt.Location("folder", tmp_path, (split,), "test copy"))
    with pytest.raises(wt.WikiTextCorrupt, match="sha256"):
        wt.load_corpus(tmp_path)
    assert location.splits == ("valid", "test")


def test_corpus_from_folder(tmp_path):
    (tmp_path / "train.txt").write_bytes(fake_split("train"))
    corpus = wt.load_corpus(tmp_path, max_size=5)
    assert corpus.training_split == "train" and corpus.measure_split == "train"
    assert len(corpus.vocab) == 5 and corpus.vocab.itos[0] == "<unk>"
    # empty lines contribute nothing; every other line has 8 tokens
    assert corpus.train_ids.numel() == 8 * sum(1 for i in range(wt.SPLIT_LINES["train"]) if i % 3)
    assert wt.load_corpus(tmp_path, max_size=5) is corpus  # memoized


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files of the test's folder; under /cut/NAME it announces the whole file but sends
    only its first half and closes the connection (an interrupted transfer)."""

    def do_GET(self):
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = (Path(self.directory) / self.path[len("/cut/"):]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 (port 0) serving tmp_path/www, stopped after the test."""
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


def served(root: Path, base: str, data: bytes, path: str = "wikitext-2-v1.zip") -> wt.Source:
    """Serve ``data`` and return the Source that pins it (size and sha256 of ``data``)."""
    (root / "wikitext-2-v1.zip").write_bytes(data)
    return wt.Source(f"{base}/{path}", hashlib.sha256(data).hexdigest(), len(data))


def cache_entries() -> list[str]:
    return sorted(p.name for p in wt.cache_dir().iterdir()) if wt.cache_dir().exists() else []


def test_download_verify_extract_from_local_server(http_server, capsys):
    root, base = http_server
    source = served(root, base, fake_archive())
    loc = wt.locate(source=source)
    assert loc.source == "download" and loc.splits == ("train", "valid", "test")
    assert loc.path.parent == wt.cache_dir()
    assert sorted(p.name for p in loc.path.iterdir()) == [
        "SHA256SUMS", "wiki.test.tokens", "wiki.train.tokens", "wiki.valid.tokens"]
    assert cache_entries() == [loc.path.name]  # no archive, no temporary folder left
    assert "downloaded" in capsys.readouterr().out
    # Second call: from the cache, with the server's file gone.
    (root / "wikitext-2-v1.zip").unlink()
    again = wt.locate(source=source)
    assert again.source == "cache" and again.path == loc.path
    texts = wt.read_splits(again)
    assert texts["valid"].encode() == fake_split("valid")


def test_load_corpus_downloads_through_the_real_server(http_server):
    root, base = http_server
    corpus = wt.load_corpus(max_size=5, source=served(root, base, fake_archive()), progress=False)
    assert corpus.training_split == "train" and corpus.measure_split == "valid"
    assert len(corpus.vocab) == 5 and corpus.location.source == "download"


def test_truncated_archive_is_rejected_and_leaves_nothing(http_server):
    root, base = http_server
    archive = fake_archive()
    source = served(root, base, archive)
    (root / "wikitext-2-v1.zip").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(wt.WikiTextCorrupt, match="bytes, expected"):
        wt.locate(source=source, progress=False)
    assert cache_entries() == []


def test_interrupted_transfer_is_a_failed_download_and_leaves_nothing(http_server):
    root, base = http_server
    source = served(root, base, fake_archive(), path="cut/wikitext-2-v1.zip")
    with pytest.raises(wt.WikiTextNotFound, match="downloading .*cut/wikitext-2-v1.zip failed"):
        wt.locate(source=source, progress=False)
    assert cache_entries() == []


def test_wrong_checksum_is_rejected_and_leaves_nothing(http_server):
    root, base = http_server
    source = served(root, base, fake_archive())
    wrong = wt.Source(source.url, "0" * 64, source.size)
    with pytest.raises(wt.WikiTextCorrupt, match="sha256"):
        wt.locate(source=wrong, progress=False)
    assert cache_entries() == []


def test_archive_that_is_not_wikitext_is_rejected(http_server):
    root, base = http_server
    source = served(root, base, b"not a zip at all")
    with pytest.raises(wt.WikiTextCorrupt, match="not a WikiText-2 archive"):
        wt.locate(source=source, progress=False)
    short = io.BytesIO()
    with zipfile.ZipFile(short, "w") as z:
        z.writestr(wt.ARCHIVE_MEMBERS["train"], fake_split("train", lines=10))
        z.writestr(wt.ARCHIVE_MEMBERS["valid"], fake_split("valid"))
        z.writestr(wt.ARCHIVE_MEMBERS["test"], fake_split("test"))
    with pytest.raises(wt.WikiTextCorrupt, match="lines"):
        wt.locate(source=served(root, base, short.getvalue()), progress=False)
    assert cache_entries() == []


def test_half_written_cache_is_never_trusted(http_server):
    """What an interrupted run could leave (a temporary folder with part of the archive, an
    extracted folder without its checksum list) is never read: the data is downloaded, verified
    and extracted again, and replaces it."""
    root, base = http_server
    source = served(root, base, fake_archive())
    final = wt._extracted_dir(source)
    final.mkdir(parents=True)
    (final / "wiki.train.tokens").write_bytes(fake_split("train")[:1000])  # no SHA256SUMS
    partial = final.parent / ".partial-killed"
    partial.mkdir()
    (partial / "archive.zip").write_bytes(fake_archive()[:100])
    with pytest.raises(wt.WikiTextNotFound, match="download=False"):
        wt.locate(source=source, download=False)
    loc = wt.locate(source=source, progress=False)
    assert loc.source == "download" and loc.path == final
    assert wt.read_splits(loc)["train"].encode() == fake_split("train")


def test_cached_split_altered_later_is_detected(http_server):
    root, base = http_server
    source = served(root, base, fake_archive())
    loc = wt.locate(source=source, progress=False)
    train = loc.path / "wiki.train.tokens"
    train.write_bytes(train.read_bytes()[:-10])
    with pytest.raises(wt.WikiTextCorrupt, match="sha256"):
        wt.read_splits(wt.locate(source=source))


def test_archive_put_in_the_cache_by_hand(tmp_path):
    archive = fake_archive()
    offline = wt.Source(f"http://127.0.0.1:{closed_port()}/wikitext-2-v1.zip",
                        hashlib.sha256(archive).hexdigest(), len(archive))
    wt.cache_dir().mkdir(parents=True)
    by_hand = wt.cache_dir() / "wikitext-2-v1.zip"
    by_hand.write_bytes(archive[:-1])
    with pytest.raises(wt.WikiTextCorrupt, match=str(by_hand)):
        wt.locate(source=offline, progress=False)
    by_hand.write_bytes(archive)
    loc = wt.locate(source=offline, progress=False)
    assert loc.source == "cache" and loc.splits == ("train", "valid", "test")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_without_data_is_one_clear_error():
    url = f"http://127.0.0.1:{closed_port()}/wikitext-2-v1.zip"
    with pytest.raises(wt.WikiTextNotFound) as info:
        wt.locate(source=wt.Source(url, "0" * 64), progress=False)
    message = str(info.value)
    assert wt.ENV_VAR in message and url in message and str(wt.cache_dir()) in message
    # The official source is named the same way when nothing is found and downloads are off.
    with pytest.raises(wt.WikiTextNotFound, match=re.escape(wt.ARCHIVE_URL)):
        wt.locate(download=False)


def test_cache_dir_is_the_platform_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    assert wt.cache_dir() == tmp_path / "elsewhere" / "scansnap"


@pytest.mark.parametrize("kwargs, match", [
    ({"url": "ftp://x/y.zip", "sha256": "0" * 64}, "url"),
    ({"url": "http://x/y.zip", "sha256": "abc"}, "sha256"),
    ({"url": "http://x/y.zip", "sha256": "0" * 64, "size": 0}, "size"),
    ({"url": "http://x/y.zip", "sha256": "0" * 64, "members": {"train": "a"}}, "members"),
])
def test_source_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wt.Source(**kwargs)


def test_locate_bad_inputs():
    with pytest.raises(TypeError, match="path"):
        wt.locate(3)
    with pytest.raises(TypeError, match="download"):
        wt.locate(download="yes")
    with pytest.raises(TypeError, match="source"):
        wt.locate(source="http://x/y.zip")


# ---------------------------------------------------------------- the real data


@needs_data
def test_real_validation_and_test_splits():
    corpus = wt.load_corpus(REAL_DATA)
    if "train" not in corpus.splits:
        assert corpus.training_split == "valid" and corpus.measure_split == "test"
        # PAPER.md B.8a: 214,417 tokens and 12,000 types (with <unk>) on valid.txt
        assert corpus.ids["valid"].numel() == 214_417
        assert len(corpus.vocab) == 12_000
        assert abs(corpus.unk_share() - 0.055) < 0.002
    capped = wt.load_corpus(REAL_DATA, max_size=2000)
    assert len(capped.vocab) == 2000
    assert capped.vocab.itos[:4] == ("<unk>", "the", ",", ".")
