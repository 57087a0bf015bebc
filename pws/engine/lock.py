"""A run directory belongs to one process at a time: ``<run_dir>/.lock`` holds its pid and host.

The lock is taken with ``O_CREAT | O_EXCL`` (atomic on a local or NFS file system). A second process on the
same run directory refuses at once, naming the holder; a lock left by a process that no longer exists on
this host is taken over. Under torchrun only rank 0 takes it (the other ranks are its own processes).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import TracebackType

from pws.engine.errors import RunFailed

LOCK_FILE = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class RunDirLock:
    """Context manager holding ``<run_dir>/.lock``; raises :class:`RunFailed` when another process has it."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def holder(self) -> dict[str, object] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, holder: dict[str, object] | None) -> bool:
        if holder is None:  # unreadable: a kill between create and write; nobody can own it
            return True
        pid = holder.get("pid")
        return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if not self._stale(holder):
                    raise RunFailed(
                        f"run directory {self.path.parent} is in use by process {holder.get('pid')} on "  # type: ignore[union-attr]
                        f"{holder.get('host')} (lock file {self.path}); wait for it, or delete the lock "  # type: ignore[union-attr]
                        "file if that process is gone"
                    ) from None
                self.path.unlink(missing_ok=True)  # left by a dead process: take it over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunFailed(f"could not take the lock {self.path} (another process keeps taking it)")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
