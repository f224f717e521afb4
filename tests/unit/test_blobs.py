"""BlobStore: content-addressed, atomic, idempotent, and no digest can leave the root."""

import hashlib
import os
import threading
from pathlib import Path

import pytest

from infrastructure.blobs import BlobNotFound, BlobStore


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_put_returns_sha256_and_writes_under_a_two_char_subdir(store: BlobStore, tmp_path: Path) -> None:
    data = b"hello blob"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = tmp_path / "blobs" / digest[:2] / digest[2:]
    assert store.path(digest) == path
    assert path.read_bytes() == data
    assert store.get(digest) == data
    assert store.exists(digest)


def test_put_is_idempotent_and_leaves_no_temp_files(store: BlobStore) -> None:
    digest = store.put(b"same")
    mtime = store.path(digest).stat().st_mtime_ns
    assert store.put(b"same") == digest
    assert store.path(digest).stat().st_mtime_ns == mtime  # not rewritten
    assert os.listdir(store.path(digest).parent) == [digest[2:]]


def test_empty_and_binary_blobs(store: BlobStore) -> None:
    for data in (b"", bytes(range(256)) * 100):
        assert store.get(store.put(data)) == data


def test_concurrent_puts_of_the_same_bytes(store: BlobStore) -> None:
    data = os.urandom(1 << 16)
    digests: list[str] = []
    threads = [threading.Thread(target=lambda: digests.append(store.put(data))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(digests) == {hashlib.sha256(data).hexdigest()}
    assert store.get(digests[0]) == data
    assert os.listdir(store.path(digests[0]).parent) == [digests[0][2:]]


def test_missing_blob(store: BlobStore) -> None:
    digest = "0" * 64
    assert not store.exists(digest)
    with pytest.raises(BlobNotFound):
        store.get(digest)
    with pytest.raises(KeyError):  # BlobNotFound is a KeyError
        store.get(digest)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "abc",
        "A" * 64,  # uppercase
        "g" * 64,
        "0" * 63,
        "0" * 65,
        "../" + "0" * 61,
        "0" * 62 + "/x",
        "/etc/passwd",
        "0" * 63 + "\n",
        "0" * 63 + "\x00",
    ],
)
def test_invalid_digests_are_rejected(store: BlobStore, digest: str) -> None:
    for call in (store.path, store.get, store.exists):
        with pytest.raises(ValueError):
            call(digest)
