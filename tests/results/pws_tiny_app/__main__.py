"""``python -m pws_tiny_app``: a Hydra app with the apps' contract, in seconds.

Keys table, cell, seed, force; writes ``metrics.json`` per pws/records/metrics_file.py into its Hydra run dir
(status finished / diverged / failed, ``top1_error``, per-epoch history), skips a run dir that is already
done unless ``force=true``, and logs to wandb through ``pws.records.wandb_run.Tracker``. A softmax
classifier on ten Gaussian classes (digit-like 64 values in 0..16) through a two-layer linear net with
plain SGD; ``norm`` only scales the inputs (``none`` leaves them raw, 0..16, so a large LR blows up and
the run diverges). ``PWS_TINY_FAIL=<cell>`` makes that cell fail (for the tests).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from pws.engine.errors import Diverged
from pws.records.metrics_file import DONE_STATUSES, environment_info, read_metrics, write_metrics
from pws.records.wandb_run import Tracker

os.environ.setdefault("PWS_REPO_CONFIGS", str(Path(__file__).resolve().parents[3] / "configs"))


def is_done(run_dir: Path) -> bool:
    """True if the run already ended as finished or diverged (a rerun skips it unless forced)."""
    record = read_metrics(run_dir)
    return record is not None and record.get("status") in DONE_STATUSES


def check_finite(loss: float, where: str) -> None:
    """Raise :class:`Diverged` if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        raise Diverged(f"non-finite loss {loss} at {where}")


def _data() -> tuple[np.ndarray, ...]:
    """Ten Gaussian classes in 64 dimensions with values in 0..16 like the digits' pixels (fixed draw)."""
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 16, (10, 64))
    y = rng.integers(0, 10, 1800)
    x = np.clip(centers[y] + rng.normal(0, 6.0, (1800, 64)), 0, 16)
    return x[:1400], y[:1400], x[1400:], y[1400:]


@hydra.main(version_base="1.3", config_path="conf", config_name="tiny")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if is_done(run_dir) and not cfg.force:
        print(f"skip: {run_dir} is done")
        return
    record = {
        "task": "classify", "status": "running", "scale": cfg.scale.name, "seed": int(cfg.seed),
        "table": cfg.table, "cell": cfg.cell, "method": cfg.norm.method, "data": cfg.data.name,
        "overrides": list(HydraConfig.get().overrides.task), **environment_info(),
    }
    write_metrics(run_dir, record)
    tracker = Tracker(run_dir, OmegaConf.to_container(cfg, resolve=True), table=cfg.table, cell=cfg.cell)
    start = time.time()
    history = []
    try:
        if cfg.cell and os.environ.get("PWS_TINY_FAIL") == cfg.cell:
            raise RuntimeError("requested failure (PWS_TINY_FAIL)")
        xtr, ytr, xte, yte = _data()
        if cfg.norm.method != "none":
            xtr, xte = xtr / 16.0, xte / 16.0
        rng = np.random.default_rng(int(cfg.seed))
        w1 = rng.normal(0, 0.125, (64, 32))
        w2 = rng.normal(0, 0.18, (32, 10))
        bs = int(cfg.data.batch_size)
        for epoch in range(1, int(cfg.epochs) + 1):
            perm = rng.permutation(len(xtr))
            losses = []
            for i in range(0, len(xtr), bs):
                xb, yb = xtr[perm[i:i + bs]], ytr[perm[i:i + bs]]
                with np.errstate(all="ignore"):
                    h = xb @ w1
                    z = h @ w2
                    p = np.exp(z)
                    p /= p.sum(1, keepdims=True)
                    loss = float(-np.log(p[np.arange(len(yb)), yb]).mean())
                    check_finite(loss, f"epoch {epoch}")
                    p[np.arange(len(yb)), yb] -= 1
                    g2 = h.T @ p / len(yb)
                    g1 = xb.T @ (p @ w2.T) / len(yb)
                    w1 -= float(cfg.optim.lr) * g1
                    w2 -= float(cfg.optim.lr) * g2
                losses.append(loss)
            with np.errstate(all="ignore"):
                err = 100.0 * float(((xte @ w1 @ w2).argmax(1) != yte).mean())
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "test_error": err})
            tracker.log(history[-1], step=epoch)
        record.update(status="finished", top1_error=history[-1]["test_error"])
    except Diverged as exc:
        record.update(status="diverged", top1_error=math.nan, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - the record says why
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record.update(history=history, wall_time_s=time.time() - start)
    write_metrics(run_dir, record)
    tracker.finish(record)


if __name__ == "__main__":
    main()
