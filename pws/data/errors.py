"""The one error every data loader raises when a data set is not where it was looked for."""

from __future__ import annotations

import os
from pathlib import Path


class DataMissingError(FileNotFoundError):
    """A data set (or one of its files) is missing.

    ``DataMissingError(what, path, how_to_get)`` formats one message naming what is missing, the exact
    path that was looked at, and how to obtain the data and where to place it. It is a
    ``FileNotFoundError`` so callers that already catch that keep working; ``errno`` is ``ENOENT`` and
    ``filename`` is the path.

    >>> str(DataMissingError("CIFAR-10", "/data/cifar-10-batches-py", "run scripts/prepare_data.py cifar"))
    'CIFAR-10 not found at /data/cifar-10-batches-py. How to get it: run scripts/prepare_data.py cifar'
    """

    def __init__(self, what: str, path: str | os.PathLike[str], how_to_get: str) -> None:
        self.what = what
        self.path = Path(path)
        self.how_to_get = how_to_get
        super().__init__(2, self._format(), str(path))  # errno.ENOENT

    def _format(self) -> str:
        return f"{self.what} not found at {self.path}. How to get it: {self.how_to_get}"

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self):  # picklable (multiprocessing data loaders re-raise in the parent)
        return (type(self), (self.what, str(self.path), self.how_to_get))


class MalformedFile(ValueError):
    """A file of a data set that its loader cannot read as it should: ``MalformedFile(path, problem)``.

    >>> str(MalformedFile("/data/cifar-10-batches-py/test_batch", "labels outside 0..9"))
    '/data/cifar-10-batches-py/test_batch: labels outside 0..9'
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (type(self), (str(self.path), self.problem))
