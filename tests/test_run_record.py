"""The run record's provenance: the commit a run came from, and whether tracked files differed from it."""

from __future__ import annotations

import subprocess

from pws.records.metrics_file import git_state


def git(repo, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_state_reports_commit_and_uncommitted_changes(tmp_path):
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}  # not a checkout
    git(tmp_path, "init", "-q")
    (tmp_path / "layer.py").write_text("a = 1\n")
    git(tmp_path, "add", "layer.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "notes.txt").write_text("untracked files do not make a run dirty\n")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": False}
    (tmp_path / "layer.py").write_text("a = 2\n")
    assert git_state(tmp_path) == {"git_commit": head, "git_dirty": True}
