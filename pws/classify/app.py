"""``python -m pws.classify``: the classification runs of Tables 4 and 5 as an app of the engine.

The app validates its config (:mod:`pws.classify.config`), builds or checks the data set and writes the
mmengine config: the network (``Classifier``), the two splits (``ClassificationSplit``) with
mmengine's ``DefaultSampler``, the metric (``ClassificationError``), SGD with alpha kept out of weight
decay, the step schedule, and, with ``probe.enabled=true``, the variance probe of :mod:`pws.diagnostics`
(``VarianceProbeHook``, rows in the run directory's ``variance_probe.csv``); with ``data.on_device=true``
the CIFAR training set and its augmentation on the run's device (:mod:`pws.classify.on_device`).
Everything else (resume, preemption, divergence, records, wandb, DDP) is :mod:`pws.engine`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

import pws.classify.datasets
import pws.classify.metric
import pws.classify.model
import pws.classify.on_device  # noqa: F401  (registers the types with mmengine)
from pws.classify.config import ClassifyPlan, make_plan
from pws.classify.datasets import splits
from pws.engine.cli import hydra_app
from pws.optim import mmengine_paramwise_cfg

METRICS = ("top1_error", "top5_error", "test_loss")
PROBE_MODULE = "pws.diagnostics.mmengine_hook"  # registers VarianceProbeHook (the config's custom_imports)
PROBE_FILE = "variance_probe.csv"  # the variance probe's rows (probe.enabled=true), in the run directory


@dataclass(frozen=True)
class ClassifyApp:
    """The classification app (see the module)."""

    name: str = "classify"

    def plan(self, cfg: DictConfig, world_size: int) -> ClassifyPlan:
        return make_plan(cfg, world_size)

    def base_record(self, plan: ClassifyPlan, cfg: DictConfig) -> dict[str, Any]:
        return {
            "plan": plan.summary(),
            "epochs": plan.schedule.epochs,
            "world_size": plan.world_size,
            "device": plan.device,
        }

    def _data_options(self, plan: ClassifyPlan) -> dict[str, Any]:
        options = {
            "name": plan.data,
            "root": plan.data_root,
            "train_augment": plan.augment,
            "download": plan.download,
            **plan.data_kwargs,
        }
        if plan.max_steps_per_epoch is not None:  # a cap for benchmarks and tiny runs: a fixed subset
            cap = plan.max_steps_per_epoch * plan.batch_size
            options["train_size"] = min(options.get("train_size") or cap, cap)
        return options

    def prepare(self, plan: ClassifyPlan, base_dir: Path) -> dict[str, Any]:
        train, _, num_classes = splits(**self._data_options(plan))
        if len(train) < plan.batch_size:  # type: ignore[arg-type]
            raise ValueError(
                f"the training set ({len(train)} images) is smaller than one batch "  # type: ignore[arg-type]
                f"({plan.batch_size}): lower data.batch_size"
            )
        return {"num_classes": num_classes}

    def mmengine_config(
        self, plan: ClassifyPlan, prepared: dict[str, Any], world_size: int
    ) -> dict[str, Any]:
        data = self._data_options(plan)
        loader = dict(
            batch_size=plan.per_rank_batch,
            num_workers=plan.num_workers,
            persistent_workers=False,
            collate_fn=dict(type="default_collate"),
            pin_memory=plan.device.startswith("cuda"),
        )
        optim_wrapper: dict[str, Any] = dict(
            type="OptimWrapper", optimizer=plan.sgd.optimizer(), paramwise_cfg=mmengine_paramwise_cfg()
        )
        if plan.amp:
            optim_wrapper.update(type="AmpOptimWrapper", dtype=plan.amp_dtype)
        config: dict[str, Any] = dict(
            model=dict(
                type="Classifier",
                arch=plan.model,
                num_classes=prepared["num_classes"],
                norm={"method": plan.method.method, **plan.method.options},
                channels_last=plan.channels_last,
                **plan.model_kwargs,
            ),
            train_dataloader=dict(
                **loader,
                drop_last=plan.drop_last,
                dataset=dict(type="ClassificationSplit", split="train", **data),
                sampler=dict(type="DefaultSampler", shuffle=True, seed=plan.seed),
            ),
            val_dataloader=dict(
                **loader,
                drop_last=False,
                dataset=dict(type="ClassificationSplit", split="test", **data),
                sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
            ),
            val_evaluator=dict(type="ClassificationError"),
            train_cfg=dict(by_epoch=True, max_epochs=plan.schedule.epochs, val_interval=plan.eval_every),
            val_cfg=dict(),
            optim_wrapper=optim_wrapper,
            param_scheduler=[plan.schedule.scheduler()],
            default_hooks=dict(
                logger=dict(type="LoggerHook", interval=plan.log_every),
                checkpoint=dict(interval=plan.checkpoint_every, max_keep_ckpts=1),
            ),
            log_processor=dict(by_epoch=True, window_size=plan.log_every),
        )
        if plan.on_device:  # the training set on the device: the loader yields indices, the model augments
            config["model"]["data_preprocessor"] = dict(type="OnDeviceCIFARPreprocessor", data=data)
            config["train_dataloader"].update(
                num_workers=0, pin_memory=False, dataset=dict(type="ClassificationIndices", **data)
            )
        if plan.probe is not None:  # probe.enabled: the variance probe on the network, CSV in the run dir
            config["custom_hooks"] = [*config.get("custom_hooks", []), probe_hook(plan.probe)]
            config["custom_imports"] = dict(imports=[PROBE_MODULE], allow_failed_imports=False)
        return config

    def metric_names(self, plan: ClassifyPlan) -> list[str]:
        return list(METRICS)

    def summarize(self, plan: ClassifyPlan, evaluated: dict[str, float]) -> dict[str, float]:
        return {k: float(evaluated.get(k, math.nan)) for k in METRICS}


def probe_hook(options: dict[str, Any]) -> dict[str, Any]:
    """The ``custom_hooks`` entry of the variance probe (:data:`PROBE_MODULE`) on the
    classifier's network (``Classifier.net``; layers numbered as in the bare network), LR read from the
    optimizer, rows in ``<run dir>/variance_probe.csv``."""
    return dict(type="VarianceProbeHook", module="net", filename=PROBE_FILE, lr=None, **options)


CLASSIFY = ClassifyApp()
main = hydra_app(CLASSIFY, shown=("top1_error", "top5_error", "train_fps"))
