"""File output shared by the modules that write: whole files or nothing."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary file beside ``path`` (hidden, ``.<name>.XXXX<suffix>``) for the block to
    write; renamed onto ``path`` when the block succeeds, removed when it fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
