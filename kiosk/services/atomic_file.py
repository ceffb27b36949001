"""Export files appear complete or not at all.

A reviewer or inspector given a file must never receive half of one: a
full disk, a bad path or a failure halfway through leaves no file under the
real name (and no partial file beside it), and an older export of the same
name stays as it was.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def written_atomically(out: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """Write to ``<out>.partial``; on success it is flushed to disk and renamed to ``out``, else removed."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        with open(partial, mode, **open_args) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
