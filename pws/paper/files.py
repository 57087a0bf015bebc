"""Reading the project's YAML files so that every error names the file (and the line) it is about.

``yaml.safe_load(path.read_text())`` reports a syntax error ``in "<unicode string>", line 3`` and a file
of binary bytes as a bare ``UnicodeDecodeError``; :func:`read_yaml` raises :class:`BadFile` instead, whose
message starts with ``<path>:<line>:``, as compilers and editors write it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


class BadFile(ValueError):
    """A file of the project that is there but cannot be used (syntax error, binary bytes, wrong shape).

    ``path`` is the file, ``line`` (1-based) where the problem is when known, ``problem`` what is wrong.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {problem}")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed content of the YAML file ``path``; :class:`BadFile` naming it (and the line) when it is
    not UTF-8 text or not valid YAML. A missing file raises ``FileNotFoundError`` (which names it too)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BadFile(path, f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}: a binary "
                            "file?)", line=line) from e
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(x) for x in (e.context, e.problem) if x) or type(e).__name__
        if mark is None:
            raise BadFile(path, f"YAML syntax error: {problem}") from e
        raise BadFile(path, f"YAML syntax error: {problem} (column {mark.column + 1})",
                      line=mark.line + 1) from e
    except yaml.YAMLError as e:
        raise BadFile(path, f"YAML error: {e}") from e
