"""Evidence files a person attaches when completing a task, stored by content hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from services.errors import Invalid

MAX_EVIDENCE_BYTES = 25 * 1024 * 1024


def store_evidence(source: IO[bytes], folder: Path) -> str:
    """Copy an upload to ``folder/<sha256>`` (content-addressed, written atomically) and return
    the hex digest. Raises Invalid for an empty file or one over 25 MiB (nothing is kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > MAX_EVIDENCE_BYTES:
                    limit = MAX_EVIDENCE_BYTES >> 20
                    raise Invalid("too_large", f"evidence files are limited to {limit} MiB")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise Invalid("empty_evidence", "the evidence file is empty")
        os.replace(temp, folder / digest.hexdigest())
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return digest.hexdigest()
