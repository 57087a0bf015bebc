"""A multirun's SLURM jobs submitted without waiting for them, and what SLURM says of them later.

``hydra/launcher=pws_slurm_detached`` (``hydra_plugins/pws_detached_launcher``: Hydra takes launchers from
its ``hydra_plugins`` namespace only) is the project's SLURM launcher (``configs/hydra/launcher/slurm.yaml``:
submitit, one array job per multirun) that returns once its jobs are submitted, instead of waiting for them:
it records each job's id and overrides in ``<sweep dir>/`` :data:`JOBS_FILE` (:func:`record_jobs`). The
driver that submitted them (``reproduce_table.py --detach``) can end; the jobs run, requeue and resume as
under the waiting launcher, and their runs write ``metrics.json``.
:func:`queued` reads the file back and asks ``squeue`` (:func:`queue_states`) which of them are still
queued or running.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pws.records.metrics_file import atomic_write_bytes

JOBS_FILE = "slurm_jobs.json"  # in the sweep directory: {seed: {"job_id": ..., "overrides": [...]}, ...}


def job_key(overrides: Sequence[str]) -> str:
    """A job's key in :data:`JOBS_FILE`: its ``seed`` override's value (its overrides joined, without
    one)."""
    seeds = [o.split("=", 1)[1] for o in overrides if o.startswith("seed=")]
    return seeds[0] if seeds else " ".join(overrides)


def record_jobs(sweep_dir: Path, submitted: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Add the jobs ``submitted`` (each one's id and overrides) to ``sweep_dir``'s :data:`JOBS_FILE`; an
    earlier launch's jobs of other seeds stay."""
    jobs = read_jobs(sweep_dir)
    for job_id, overrides in submitted:
        jobs[job_key(overrides)] = {"job_id": job_id, "overrides": list(overrides)}
    atomic_write_bytes(sweep_dir / JOBS_FILE, (json.dumps(jobs, indent=1) + "\n").encode())


def read_jobs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """:data:`JOBS_FILE` of ``sweep_dir`` (empty without one, or one that cannot be read)."""
    try:
        jobs = json.loads((sweep_dir / JOBS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return jobs if isinstance(jobs, dict) else {}


def queued(sweep_dir: Path) -> dict[str, str]:
    """The jobs detached launches of ``sweep_dir`` submitted that are still queued or running: each one's
    key (:func:`job_key`: its seed) -> ``"<state>: SLURM job <id>"`` (``pending``, ``running``, ...)."""
    ids = {key: str(job.get("job_id")) for key, job in read_jobs(sweep_dir).items()}
    states = queue_states(list(ids.values()))
    return {key: f"{states[i].lower()}: SLURM job {i}" for key, i in ids.items() if i in states}


def queue_states(job_ids: Sequence[str]) -> dict[str, str]:
    """``squeue``'s state of each of ``job_ids`` still in the queue (``PENDING``, ``RUNNING``, ...; an array
    job's tasks one by one); a job that has left it (ended, or never known) is absent."""
    if not job_ids:
        return {}
    proc = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    states = dict(line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2)
    return {job_id: states[job_id] for job_id in job_ids if job_id in states}
