"""Writing a generated data set once: a marker file with the parameters, atomic placement, no overwriting.

A generated layout is written to a temporary sibling folder and renamed into place, its marker
(``.pws_synthetic.json``, with the generator's name and parameters) written last. Calling the generator
again with the same parameters finds the marker and returns at once; with other parameters it replaces the
set. A folder without the marker is never touched (it may be real data).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = ".pws_synthetic.json"
FORMAT_VERSION = 3


def read_marker(layout_root: Path) -> dict[str, Any] | None:
    """The generator parameters stored in a generated layout, or None for a folder not generated here."""
    try:
        return json.loads((Path(layout_root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_synthetic(layout_root: str | os.PathLike[str]) -> bool:
    """True when ``layout_root`` (a VOCdevkit or COCO root) was written by one of the project's generators."""
    return read_marker(Path(layout_root)) is not None


def build_once(target: Path, params: dict[str, Any], write: Callable[[Path], None]) -> Path:
    """Makes ``target`` hold the set that ``write(folder)`` writes for ``params``; returns ``target``."""
    params = {**params, "format_version": FORMAT_VERSION}
    if read_marker(target) == params:
        return target
    if target.exists() and read_marker(target) is None:
        raise FileExistsError(
            f"{target} exists and was not written by the project's generator ({MARKER} is absent): it may be "
            "real data, so it is left alone. Give the generator another root."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write(tmp)
        (tmp / MARKER).write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")
        if read_marker(target) == params:  # another process (a DDP rank) finished the same set meanwhile
            return target
        if target.exists():  # a generated set with other parameters: replace it
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if read_marker(target) == params:  # another process finished the same set meanwhile
                return target
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
