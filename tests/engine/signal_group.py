"""``python tests/engine/signal_group.py APP RUN_DIR DATA_ROOT WHEN N [OVERRIDE ...]``: one tiny run of APP
(tests/engine/conftest.py's) in a process group of its own, which sends SIGUSR2 to the whole group
(``os.killpg``, as SLURM signals every process of a job: the data workers too) after training iteration N
(WHEN=train) or in the first evaluation after it (WHEN=eval, at its first iteration); it then exits as the
app's command line does (0 and "stopped by ..." on stderr after a preemption)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: engine.conftest, app_helpers

from engine.conftest import CASES, Case
from pws.engine.errors import Preempted


@HOOKS.register_module(name="GroupSignal", force=True)
class GroupSignal(Hook):
    """SIGUSR2 to this process's group after training iteration ``at`` or in the evaluation after it."""

    priority = "VERY_HIGH"

    def __init__(self, at: int, during_evaluation: bool) -> None:
        self.at, self.during_evaluation, self.sent = at, during_evaluation, False

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # fmt: skip
        if runner.iter + 1 == self.at and not self.during_evaluation:
            self.send()

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                       outputs: Any = None) -> None:  # fmt: skip
        if runner.iter >= self.at and self.during_evaluation and not self.sent:
            self.send()

    def send(self) -> None:
        self.sent = True
        os.killpg(os.getpgrp(), signal.SIGUSR2)


def main(app: str, run_dir: str, data_root: str, when: str, at: str, *extra: str) -> int:
    os.setpgrp()
    case = Case(**{**CASES[app].__dict__, "data_root": Path(data_root)})
    hook = {"type": "GroupSignal", "at": int(at), "during_evaluation": when == "eval"}
    try:
        case.execute(Path(run_dir), *extra, hooks=[hook])
    except Preempted as e:
        print(f"pws.{app}: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
