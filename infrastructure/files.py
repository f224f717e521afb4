"""Durable file writes: a temp file in the same directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes | Any) -> None:
    """Replace `path` with `data` all at once; readers see the old or the new file, never half.
    The file is created readable by its owner only (mkstemp's 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); directories cannot be opened this way everywhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def make_private(data_dir: Path) -> None:
    """DATA_DIR holds password and key hashes and every chat: readable by its owner only,
    whatever the umask. The directory and its subdirectories become 0700 (which alone keeps
    other users out of everything below), its own files (the SQLite files and their journals,
    secrets) 0600; symlinks (a replay's `blobs`) are left as they are."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _chmod(data_dir, PRIVATE_DIR)
    for entry in data_dir.iterdir():
        if entry.is_symlink():
            continue
        _chmod(entry, PRIVATE_DIR if entry.is_dir() else PRIVATE_FILE)


def _chmod(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except FileNotFoundError:  # a journal removed meanwhile
        pass
