"""``python -m pws.detect``: one detection run of the paper (Tables 1-3) as an app of the engine.

    python -m pws.detect                                   # SSD320-VGG16 + PWS, smoke scale, generated VOC
    python -m pws.detect scale=full data=voc0712 norm=bn data.batch_size=8
    python -m pws.detect scale=full data=coco model=mask_rcnn_r50_fpn schedule=mask_rcnn_1x norm=pws \
        norm.gamma=1e-4
    torchrun --nproc_per_node 4 -m pws.detect scale=full data=voc0712    # several GPUs (DDP)

The app validates its settings (:func:`pws.detect.config.detection_settings`; on CUDA, mmcv's ops built with
CUDA: :mod:`pws.detect.cuda_ops`), generates or checks the data
(annotation files validated, a malformed one named) and writes the mmengine config: the model's file in
``configs/mmdet/`` (mmdetection's own config plus the project's changes) with the run's data, schedule and
optimizer (:func:`pws.detect.config.build_config`). Everything else (resume, preemption, divergence,
records, wandb, DDP) is :mod:`pws.engine`'s.

metrics.json: VOC07-test ``mAP`` (%, 11-point) or COCO ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75`` (and
``segm_mAP``, ``segm_mAP_50`` for Mask R-CNN) in %, NaN when diverged; a metric missing from mmdet's
evaluation stays missing (NaN), never 0; ``train_fps``; the per-epoch history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pws.data.detection import check, synthetic_coco, synthetic_voc
from pws.detect.config import Settings, build_config, data_root_path, detection_settings
from pws.detect.cuda_ops import cuda_ops_problem
from pws.engine.cli import hydra_app
from pws.engine.device import resolve_device, trained_on
from pws.engine.errors import ConfigError
from pws.engine.process import batch_problem
from pws.engine.schema import Validator, common_values, plain
from pws.paper import metrics


@dataclass(frozen=True)
class DetectPlan:
    """A detection run's validated settings and the values every app has."""

    settings: Settings
    data: dict[str, Any]  # the data group as composed (root, name, generator sizes)
    scale: str  # scale.name: smoke or full
    seed: int
    force: bool
    wandb_mode: str
    ema_decay: float | None
    ema_warmup: bool
    device: str = "cpu"  # train.device resolved (auto: cuda where torch sees a GPU, else cpu)
    fused_pws: bool = False  # train.fused_pws (the engine fuses the built detector)
    compile: str | None = None  # train.compile: torch.compile's mode (None: eager)
    sync_bn: bool = False  # train.sync_bn: BN over the total batch of several processes

    @property
    def total_batch(self) -> int:
        return self.settings.batch_size

    @property
    def lr(self) -> float:
        return self.settings.sgd.lr

    @property
    def log_interval(self) -> int:
        return self.settings.log_interval

    @property
    def fps_warmup_iters(self) -> int:
        return self.settings.fps_warmup_iters


def needs_pretrained_backbone(settings: Settings, scale: str) -> bool:
    """At full scale Mask R-CNN needs a backbone checkpoint ("For Mask R-CNN we use pretrained model");
    the smoke scale trains it from scratch (its note says so)."""
    return (
        scale == "full"
        and settings.model == "mask_rcnn_r50_fpn"
        and not settings.model_options.get("backbone_checkpoint")
    )


def metric_keys(settings: Settings) -> dict[str, str]:
    """metrics.json key -> mmdet metric name, for this run's data and model."""
    if settings.data_format == "voc":
        return dict(metrics.VOC)
    keys = dict(metrics.COCO_BOX)
    if settings.model == "mask_rcnn_r50_fpn":
        keys.update(metrics.COCO_MASK)
    return keys


def prepare_data(cfg_data: Any, settings: Settings, base_dir: Path) -> Path:
    """The data root handed to mmdet: generated for synthetic sets, checked for real ones; annotations
    validated (a malformed file is named in a ValueError, not a stack trace from inside mmdet)."""
    root = data_root_path(cfg_data["root"], str(base_dir))
    if str(cfg_data["name"]).startswith("synthetic"):
        num_train, seed = int(cfg_data["num_train"]), int(cfg_data.get("seed", 0))
        classes = settings.num_classes  # objects of the first num_classes classes
        # a rehearsal's stand-in (++data.quirks / ++data.real_sizes): the real files' quirks and image sizes
        full = {key: True for key in ("quirks", "real_sizes") if cfg_data.get(key)}
        suffix = "".join(f"-{key}" for key in full)
        if settings.data_format == "voc":
            num_test = int(cfg_data["num_test"])
            folder = root / f"{cfg_data['name']}-n{num_train}-t{num_test}-c{classes}-s{seed}{suffix}"
            root = synthetic_voc.generate(
                folder, num_train=num_train, num_test=num_test, seed=seed, object_classes=classes, **full
            )
        else:
            num_val = int(cfg_data["num_val"])
            folder = root / f"{cfg_data['name']}-n{num_train}-v{num_val}-c{classes}-s{seed}{suffix}"
            root = synthetic_coco.generate(
                folder, num_train=num_train, num_val=num_val, seed=seed, object_classes=classes, **full
            )
    if settings.data_format == "voc":
        root = check.require_voc(root)
        check.validate_voc(root)
    else:
        root = check.require_coco(root)
        for split in ("train2017", "val2017"):
            check.validate_coco(root / "annotations" / f"instances_{split}.json")
    return Path(root)


def checked_plan(cfg: DictConfig, world_size: int) -> DetectPlan:
    """Every value of ``cfg`` checked, once (the only validation of a detection config): a
    :class:`ConfigError` naming every invalid value. :meth:`DetectApp.plan` adds what a run needs before it
    starts (Mask R-CNN's backbone checkpoint at full scale); the cost planner reads this alone, before
    that checkpoint is exported."""
    values = plain(cfg)
    v = Validator(values)
    common = common_values(v)
    settings = detection_settings(v, common["seed"])
    device = resolve_device(v)
    if device is not None and (problem := cuda_ops_problem(trained_on(device))) is not None:
        v.fail(problem)
    if settings is not None and (problem := batch_problem(settings.batch_size, world_size)) is not None:
        v.fail(problem)
    v.raise_if_failed()
    assert settings is not None
    return DetectPlan(
        settings,
        data=values["data"],
        scale=str(values["scale"]["name"]),
        seed=common["seed"],
        force=common["force"],
        wandb_mode=common["wandb_mode"],
        ema_decay=common["ema_decay"],
        ema_warmup=common["ema_warmup"],
        device=str(device),
        fused_pws=common["fused_pws"],
        compile=common["compile"],
        sync_bn=common["sync_bn"],
    )


@dataclass(frozen=True)
class DetectApp:
    """The detection app (see the module)."""

    name: str = "detect"

    def plan(self, cfg: DictConfig, world_size: int) -> DetectPlan:
        plan = checked_plan(cfg, world_size)
        if needs_pretrained_backbone(plan.settings, plan.scale):
            raise ConfigError(
                "the paper's Mask R-CNN starts from an ImageNet ResNet-50 of the same method (Table 5): give "
                "model.backbone_checkpoint=<file>, made from a Table 5 run with "
                "`python scripts/export_backbone.py <run dir> <file>`"
            )
        return plan

    def base_record(self, plan: DetectPlan, cfg: DictConfig) -> dict[str, Any]:
        s = plan.settings
        return {
            "settings": s.as_record(),
            "schedule": cfg.schedule.get("name"),
            "gamma": s.method.options.get("gamma"),
            "lr": s.sgd.lr,
            "batch_size": s.batch_size,
            "device": plan.device,
        }

    def prepare(self, plan: DetectPlan, base_dir: Path) -> dict[str, Any]:
        return {"data_root": prepare_data(plan.data, plan.settings, base_dir)}

    def mmengine_config(self, plan: DetectPlan, prepared: dict[str, Any], world_size: int) -> dict[str, Any]:
        return build_config(plan.settings, data_root=prepared["data_root"], world_size=world_size)

    def metric_names(self, plan: DetectPlan) -> list[str]:
        return list(metric_keys(plan.settings))

    def summarize(self, plan: DetectPlan, evaluated: dict[str, float]) -> dict[str, float]:
        """Our metrics in % from mmdet's fractions; one mmdet did not report stays NaN (never 0)."""
        return metrics.in_percent(evaluated, metric_keys(plan.settings))


DETECT = DetectApp()
main = hydra_app(DETECT, shown=("mAP", "bbox_mAP", "bbox_mAP_50", "segm_mAP", "segm_mAP_50", "train_fps"))
