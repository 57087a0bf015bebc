"""``hydra/launcher=pws_slurm_detached``: the project's SLURM launcher (submitit) that returns once its jobs
are submitted, recording their ids in the sweep directory (:mod:`pws.records.slurm_jobs`), instead of waiting
for them; ``reproduce_table.py --detach`` uses it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from pws.records.slurm_jobs import record_jobs


@contextlib.contextmanager
def results_at_submission(submitted: list[Any]) -> Iterator[None]:
    """submitit's ``Job.results`` answering at once, while in the block: each job is appended to
    ``submitted`` and stands for a completed Hydra job without a value (the launcher's only wait)."""
    from submitit.core.core import Job

    def detached(job: Any) -> list[JobReturn]:
        submitted.append(job)
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=None)]

    waiting = Job.results
    Job.results = detached  # type: ignore[method-assign]
    try:
        yield
    finally:
        Job.results = waiting  # type: ignore[method-assign]


class DetachedSlurmLauncher(SlurmLauncher):
    """The SLURM launcher that submits and returns (see the module)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        submitted: list[Any] = []
        with results_at_submission(submitted):
            returns = super().launch(job_overrides, initial_job_idx)
        assert self.config is not None
        pairs = zip(submitted, job_overrides, strict=True)
        jobs = [(str(job.job_id), list(overrides)) for job, overrides in pairs]
        record_jobs(Path(str(self.config.hydra.sweep.dir)), jobs)
        for job_id, overrides in jobs:
            print(f"submitted SLURM job {job_id}: {' '.join(overrides)}", flush=True)
        return returns
