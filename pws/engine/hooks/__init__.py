"""The project's mmengine hooks, one module each, used by every app (registered under their class names)."""

from pws.engine.hooks.checkpoint_rng import RandomStateHook
from pws.engine.hooks.divergence import DivergenceHook
from pws.engine.hooks.fused import FusedStandardizationHook
from pws.engine.hooks.preemption import PreemptionHook
from pws.engine.hooks.run_record import RunRecordHook
from pws.engine.hooks.throughput import ThroughputHook
from pws.engine.hooks.wandb_log import WandbHook

__all__ = [
    "DivergenceHook",
    "FusedStandardizationHook",
    "PreemptionHook",
    "RandomStateHook",
    "RunRecordHook",
    "ThroughputHook",
    "WandbHook",
]
