"""A broken detection stack fails the test run (it does not turn the detection tests into skips), and
``PWS_TESTS_WITHOUT_DETECTION=1``, the opt-out its message names, skips them instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from detection_stack import OPT_OUT

REPO = Path(__file__).resolve().parents[1]


def pytest_with_broken_mmdet(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pytest tests/detect/test_fmeasure.py`` where ``import mmdet`` raises ImportError."""
    broken = tmp_path / "broken" / "mmdet"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "__init__.py").write_text('raise ImportError("mmdet broken on purpose")\n')
    path = os.pathsep.join([str(broken.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/detect/test_fmeasure.py"],
        cwd=REPO, env={**env, "PYTHONPATH": path}, capture_output=True, text=True, check=False, timeout=300,
    )


def test_a_broken_stack_fails_and_the_opt_out_skips(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != OPT_OUT}
    failed = pytest_with_broken_mmdet(tmp_path, env)
    assert failed.returncode != 0, failed.stdout
    assert "mmdet broken on purpose" in failed.stdout and f"{OPT_OUT}=1" in failed.stdout
    skipped = pytest_with_broken_mmdet(tmp_path, {**env, OPT_OUT: "1"})
    assert skipped.returncode in (0, 5), skipped.stdout  # 5: the file's one module skipped, nothing else ran
    assert "skipped" in skipped.stdout and "passed" not in skipped.stdout and "error" not in skipped.stdout

