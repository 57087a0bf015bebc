"""Classification runs of Tables 4 and 5: ``python -m pws.classify`` (a Hydra app; ``configs/classify.yaml``).

Modules, one job each:

=================  ======================================================================================
``app``            the Hydra entry point (run directory, overrides, exit codes)
``run``            one run start to end: validate, skip/resume, build, train, record
``config``         config validation into a ``Plan`` (one clear error for every bad value), resolvers
``trainer``        the training loop: SGD steps, step LR, evaluation, divergence, exact resumption
``data``           data sets and the deterministic, resumable, rank-aware training order
``checkpoint``     atomic checkpoints, random-number states
``preemption``     SIGTERM/SIGUSR1 (and submitit's SIGUSR2): save and stop
``distributed``    torchrun -> DistributedDataParallel (gloo on CPU, nccl on GPU)
``evaluate``       top-1 error on the test set, over all ranks
``ema``            the authors' EMA evaluation option
``record``         metrics.json of a run
``tracking``       the one place that talks to wandb
``progress``       tqdm bars on a terminal, log lines elsewhere
=================  ======================================================================================

``run(cfg, run_dir)`` is the programmatic entry (a config composed with Hydra's compose API).
"""

from pws.classify.config import ConfigError, Plan, RunFailed, make_plan
from pws.classify.run import run

__all__ = ["ConfigError", "Plan", "RunFailed", "make_plan", "run"]
