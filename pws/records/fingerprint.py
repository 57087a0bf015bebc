"""A run's identity: the fingerprint of the config it computes with.

Two runs are the same experiment when the configs their app resolved (the values the run used: the
record's ``config``, :mod:`pws.records.metrics_file`) are equal once the keys that only say where or how a
run is executed are left out (:data:`RUN_KEYS`: the table and cell it was launched for, ``force``, where the
runs and the data live, the data loader's workers, the device, logging, wandb). The seed stays in: seed 0 of
one cell is seed 0 of another only when everything else matches too. Whatever the keys' spelling on the
command line (``optim.lr=1e-2`` or the scale's default of 0.01), equal values give equal fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Dotted keys of an app's config that do not change what a run computes (both apps' configs/*.yaml).
RUN_KEYS = (
    "table", "row", "cell", "force", "runs_root", "data_root",
    "data.root", "data.download", "data.num_workers", "data.allow_partial",
    "train.device", "train.log_every", "wandb",
)


def experiment_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a resolved config as plain containers) without :data:`RUN_KEYS`."""
    out = json.loads(json.dumps(dict(config), default=str))
    for key in RUN_KEYS:
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def fingerprint(config: Mapping[str, Any]) -> str:
    """16 hex digits naming what ``config`` computes: equal for configs equal but for :data:`RUN_KEYS`."""
    text = json.dumps(experiment_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_fingerprint(record: Mapping[str, Any] | None) -> str | None:
    """The fingerprint of a run from its record's ``config``; None for a record without one."""
    config = (record or {}).get("config")
    return fingerprint(config) if isinstance(config, dict) and config else None
