"""The tests on a real SLURM: a one-node scheduler on this machine (``scripts/slurm_local.sh``: Debian's
slurm-wlm and munge, CPUs only), started for the session by the ``slurm`` fixture and stopped after it
(left running when it already was). No mock of ``sbatch``: the jobs are real SLURM jobs.

Where the scheduler cannot start (not installed, not root), every test here fails with the reason and the
way out: ``make install`` as root installs it; ``PWS_SKIP_SLURM=1`` leaves these tests out deliberately
(they are then reported as skipped with that reason, never silently).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
SKIP_ENV = "PWS_SKIP_SLURM"
STARTED = re.compile(r"JobEnvironment\(job_id=([^,]+),")  # submitit's first log line in a job
STATE = Path(os.environ.get("PWS_SLURM_STATE", "/tmp/pws-slurm"))
LIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")


@dataclass(frozen=True)
class Slurm:
    """The running one-node scheduler, and the commands the tests give it."""

    conf: Path
    partition: str

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a driver that submits CPU jobs here (configs/hydra/launcher/slurm.yaml's
        knobs: one CPU and 2 GB a job, no GPU), with ``extra`` on top."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PWS_SLURM_PARTITION": self.partition,
                "PWS_SLURM_GPUS": "0", "PWS_SLURM_CPUS": "1", "PWS_SLURM_MEM_GB": "2",
                "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", **extra}  # fmt: skip

    def command(self, *args: str) -> str:
        """A SLURM client command's stdout (``scontrol``, ``squeue``, ``scancel``, ...)."""
        proc = subprocess.run(args, env=self.env(), capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields of ``job_id`` (a finished job stays known for MinJobAge, 300 s)."""
        text = self.command("scontrol", "show", "job", "--oneliner", job_id)
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def ended(self, job_id: str, timeout: float = 60) -> dict[str, str]:
        """:meth:`job` once the job has left the states of a live job: submitit hands back a job's result as
        soon as the job wrote it, while slurmctld may still hold the job in COMPLETING."""
        def final() -> dict[str, str] | None:
            fields = self.job(job_id)
            return None if fields["JobState"] in LIVE_STATES else fields

        return until(final, timeout, f"job {job_id} to end")  # type: ignore[return-value]

    def drive(self, command: list[str], folder: Path, timeout: float, **env: str
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run a driver (a multirun or a table through the SLURM launcher) to its end, its jobs' files under
        ``folder``. One that has not ended after ``timeout`` seconds is killed, the queue is emptied and the
        test fails with what would tell why: the queue (state, reason), the jobs' fields and their logs."""
        try:
            return subprocess.run(command, cwd=REPO, env=self.env(**env), capture_output=True, text=True,
                                  timeout=timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as err:
            queue = self.command("squeue", "-h", "-o", "%i %T %r %M %C %N")
            jobs = [self.command("scontrol", "show", "job", line.split()[0]) for line in queue.splitlines()]
            self.command("scancel", "--full", "--user=root")
            logs = [f"--- {p}:\n{p.read_text(errors='replace')[-2000:]}"
                    for p in sorted(folder.rglob(".submitit/*/*_log.*"))]  # fmt: skip
            output = _text(err.stdout)[-2000:] + _text(err.stderr)[-2000:]
            pytest.fail("\n".join([f"the driver had not ended after {timeout:.0f} s: {' '.join(command)}",
                                   f"its output: {output}", "the queue (id state reason time cpus node):",
                                   queue, *jobs, *logs]), pytrace=False)  # fmt: skip


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM ids of the jobs of the multirun in ``sweep_dir`` that have started (``<id>`` or
    ``<array job>_<task>``: what submitit's log of each job, ``.submitit/*/*_log.out``, names)."""
    found = (STARTED.search(p.read_text()) for p in sweep_dir.glob(".submitit/*/*_log.out"))
    return sorted(m.group(1) for m in found if m)


def until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` every 0.2 s until it is truthy (its value) or ``timeout`` seconds pass (fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _script(action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip


@pytest.fixture(scope="session")
def slurm() -> Iterator[Slurm]:
    """A one-node SLURM for the session (see the module): started here unless it already runs."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the tests on a real SLURM are left out deliberately")
    running = _script("status").returncode == 0
    if not running:
        started = _script("start")
        if started.returncode != 0:
            pytest.fail(
                f"no SLURM to test the cluster path on: scripts/slurm_local.sh start failed:\n"
                f"{started.stderr.strip()}\n`make install` as root installs Debian's slurm-wlm and munge; "
                f"{SKIP_ENV}=1 leaves these tests out deliberately",
                pytrace=False,
            )
    yield Slurm(conf=STATE / "slurm.conf", partition=os.environ.get("PWS_SLURM_LOCAL_PARTITION", "pws"))
    if not running:
        _script("stop")
