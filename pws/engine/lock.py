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
from typing import Any

from pws.engine.errors import RunFailed

LOCK_FILE = ".lock"


def lock_state(run_dir: str | Path) -> tuple[str, dict[str, Any] | None]:
    """Who holds ``run_dir`` by its lock file: ``("alive", holder)`` (the pid is alive on this host),
    ``("elsewhere", holder)`` (another host: not checked), ``("gone", holder)`` (no such process here any
    more, or a lock that cannot be read: nobody holds it), ``("none", None)`` (no lock file)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        holder = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return "none", None
    except (OSError, ValueError):  # a kill between creating and writing it; UnicodeDecodeError too
        return "gone", None
    if not isinstance(holder, dict):
        return "gone", None
    pid, host = holder.get("pid"), holder.get("host")
    if host is not None and host != socket.gethostname():
        return "elsewhere", holder
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return "gone", holder
    return ("alive" if pid_alive(pid) else "gone"), holder


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    return True


class RunDirLock:
    """Context manager holding ``<run_dir>/.lock``; raises :class:`RunFailed` when another process has it."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                state, holder = lock_state(self.path.parent)
                if state in ("alive", "elsewhere"):
                    assert holder is not None
                    raise RunFailed(
                        f"run directory {self.path.parent} is in use by process {holder.get('pid')} on "
                        f"{holder.get('host')} (lock file {self.path}); wait for it, or delete the lock "
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
