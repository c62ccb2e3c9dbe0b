"""File helpers shared by every writer in the package."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def write_atomic(file: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a hidden temporary sibling of ``file``, then rename it over ``file``: readers see the
    old file or the complete new one, never a half-written one (the rename is atomic on POSIX). The temporary file
    is removed if ``write`` raises."""
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, file)
    finally:
        if tmp.exists():
            tmp.unlink()
