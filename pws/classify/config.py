"""The composed Hydra config of a classification run checked, before any work, and turned into a
:class:`ClassifyPlan`.

:func:`make_plan` validates every value a user can set (``optim.lr > 0``, ``norm.gamma >= 0``, ...) and
collects *all* problems into one :class:`ConfigError` (one line per problem, naming the key and what is
allowed), so a bad sweep cell fails at once with a readable message instead of a stack trace mid-run.
Unknown config *groups* or keys are Hydra's own errors (they name the choices that exist).

The scale's ``classify`` section (``configs/scale/{smoke,full}.yaml``) enters through interpolations in the
group files (model widths, crop sizes, workers) and through ``scale.classify.epochs``: when set, the
schedule is shortened to that many epochs by the engine's one rule
(:func:`pws.engine.schedule.step_schedule`).
Invalid values raise :class:`pws.engine.errors.ConfigError` (exit 2), in the format of every app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from pws.data.classification import dataset_options
from pws.engine.device import resolve_device
from pws.engine.process import batch_problem, split_batch
from pws.engine.resolvers import register_resolvers
from pws.engine.schedule import StepSchedule, step_schedule
from pws.engine.schema import MISSING, SGD, Validator, common_values, plain, sgd_values
from pws.models.classifiers import classifier_options
from pws.nn.factory import NormMethod

CONFIG_NAME = "classify"

MODEL_KEYS = ("name",)  # every other key of the model group is a kwarg of build_classifier
# data keys the app reads itself (allow_partial: the engine's preflight); the rest go to build_datasets
DATA_LOADER_KEYS = (
    "name", "root", "batch_size", "augment", "download", "num_workers", "on_device", "allow_partial",
)
ON_DEVICE_DATA = ("cifar10", "synthetic_cifar")  # data.on_device: pws.classify.on_device
SCHEDULES = ("step",)
AMP_DTYPES = ("float16", "bfloat16")


register_resolvers()


@dataclass
class ClassifyPlan:
    """Everything a run does, validated, with the scale applied (what ``metrics.json`` calls ``plan``)."""

    seed: int
    scale: str
    model: str
    model_kwargs: dict[str, Any]
    method: NormMethod
    data: str
    data_root: str
    data_kwargs: dict[str, Any]
    augment: bool
    download: bool
    num_workers: int
    batch_size: int  # global, split across ranks
    world_size: int
    sgd: SGD
    schedule: StepSchedule
    device: str
    amp: bool
    amp_dtype: str
    channels_last: bool
    drop_last: bool
    max_steps_per_epoch: int | None
    log_every: int
    eval_every: int
    checkpoint_every: int
    ema_decay: float | None
    ema_warmup: bool
    wandb_mode: str
    force: bool
    table: str | None
    row: str | None
    cell: str | None
    # The variance probe (configs/classify.yaml's ``probe`` section) as the hook's arguments, None when off.
    probe: dict[str, Any] | None = None
    fused_pws: bool = False  # train.fused_pws (the engine fuses the built network)
    compile: str | None = None  # train.compile: torch.compile's mode (None: eager)
    sync_bn: bool = False  # train.sync_bn: BN over the total batch of several processes
    on_device: bool = False  # data.on_device: CIFAR's training set and its augmentation on the run's device

    @property
    def log_interval(self) -> int:
        return self.log_every

    fps_warmup_iters: int = 2  # steps of each session left out of the throughput (loader start-up)

    @property
    def per_rank_batch(self) -> int:
        return split_batch(self.batch_size, self.world_size)

    @property
    def total_batch(self) -> int:
        return self.batch_size

    @property
    def lr(self) -> float:
        return self.sgd.lr

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view for metrics.json and the log."""
        return {
            "epochs": self.schedule.epochs,
            "milestones": list(self.schedule.milestones),
            "lr": self.sgd.lr,
            "lr_factor": self.schedule.factor,
            "momentum": self.sgd.momentum,
            "weight_decay": self.sgd.weight_decay,
            "batch_size": self.batch_size,
            "per_rank_batch": self.per_rank_batch,
            "world_size": self.world_size,
            "model_kwargs": dict(self.model_kwargs),
            "norm": self.method.to_config(),
            "data_kwargs": dict(self.data_kwargs),
            "device": self.device,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "ema_decay": self.ema_decay,
            "max_steps_per_epoch": self.max_steps_per_epoch,
            "fused_pws": self.fused_pws,
            "compile": self.compile,
            "on_device": self.on_device,
        }


def make_plan(cfg: DictConfig | Mapping[str, Any], world_size: int) -> ClassifyPlan:
    """Validate ``cfg`` (the composed ``classify`` config) and return the run's :class:`ClassifyPlan`.

    Raises :class:`ConfigError` listing every invalid value. ``world_size``: the run's processes
    (:func:`pws.engine.process.current`), over which ``data.batch_size`` is split.
    """
    v = Validator(plain(cfg))
    common = common_values(v)

    model_cfg = v.section("model")
    model = v.string("model.name")
    model_kwargs = {k: val for k, val in model_cfg.items() if k not in MODEL_KEYS}
    if model is not None:
        v.known_kwargs("model", model, model_kwargs, _model_options)

    norm_cfg = v.section("norm")
    method = None
    try:
        method = NormMethod.from_config(norm_cfg)
    except (ValueError, TypeError) as e:  # gamma < 0, unknown option, ... (the factory names what is allowed)
        v.fail(f"norm: {e}")

    data_cfg = v.section("data")
    data = v.string("data.name")
    data_root = v.string("data.root")
    batch_size = v.integer("data.batch_size", minimum=1)
    augment = v.boolean("data.augment")
    download = v.boolean("data.download")
    num_workers = v.integer("data.num_workers", minimum=0)
    on_device = False if v.get("data.on_device") in (MISSING, None) else v.boolean("data.on_device")
    if on_device and data not in ON_DEVICE_DATA:
        v.fail(f"data.on_device=true is for {', '.join(ON_DEVICE_DATA)} (pad-4 crop + flip on the device), "
               f"not {data!r}")
    data_kwargs = {k: val for k, val in data_cfg.items() if k not in DATA_LOADER_KEYS}
    if data is not None:
        v.known_kwargs("data", data, data_kwargs, _data_options)
    for key in ("train_size", "test_size"):
        if data_kwargs.get(key) is not None:
            v.integer(f"data.{key}", minimum=1)
    if batch_size is not None and (problem := batch_problem(batch_size, world_size)) is not None:
        v.fail(problem)

    sgd = sgd_values(v)
    sched = v.string("schedule.name")
    if sched is not None and sched not in SCHEDULES:
        v.fail(f"schedule.name must be one of {', '.join(SCHEDULES)}, got {sched!r}")
    schedule = step_schedule(v, "scale.classify.epochs")

    scale = v.string("scale.name")
    device = resolve_device(v)
    amp = v.boolean("train.amp")
    amp_dtype = v.string("train.amp_dtype")
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        v.fail(f"train.amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {amp_dtype!r}")
    channels_last = v.boolean("train.channels_last")
    drop_last = v.boolean("train.drop_last")
    max_steps = v.integer("train.max_steps_per_epoch", minimum=1, optional=True)
    log_every = v.integer("train.log_every", minimum=1)
    eval_every = v.integer("train.eval_every", minimum=1)
    checkpoint_every = v.integer("train.checkpoint_every", minimum=1)
    fps_warmup = v.integer("train.fps_warmup_iters", minimum=0, default=2)

    probe = probe_options(v)

    v.raise_if_failed()

    if device == "cpu":  # train.amp / train.channels_last apply on GPU only: off on CPU
        amp = channels_last = False
    assert method is not None and sgd is not None and schedule is not None
    return ClassifyPlan(
        seed=common["seed"], scale=scale, model=model, model_kwargs=model_kwargs, method=method, data=data,
        data_root=data_root, data_kwargs=data_kwargs, augment=augment, download=download,
        num_workers=num_workers, batch_size=batch_size, world_size=world_size, sgd=sgd, schedule=schedule,
        device=device, amp=amp, amp_dtype=amp_dtype, channels_last=channels_last,
        drop_last=drop_last, max_steps_per_epoch=max_steps, log_every=log_every, eval_every=eval_every,
        checkpoint_every=checkpoint_every, ema_decay=common["ema_decay"],
        ema_warmup=common["ema_warmup"], wandb_mode=common["wandb_mode"], force=common["force"],
        table=common["table"], row=common["row"], cell=common["cell"],
        probe=probe, fused_pws=common["fused_pws"], compile=common["compile"],
        sync_bn=common["sync_bn"], on_device=bool(on_device), fps_warmup_iters=fps_warmup,
    )  # fmt: skip


def probe_options(v: Validator) -> dict[str, Any] | None:
    """The ``probe`` section checked: the variance probe's hook arguments when ``probe.enabled``, else None.

    ``probe.layers``: null (every conv) or a non-empty list of 1-based conv indices or module names of the
    network; ``probe.interval``: an integer >= 1; ``probe.activations``: true or false.
    """
    enabled = v.boolean("probe.enabled")
    interval = v.integer("probe.interval", minimum=1)
    activations = v.boolean("probe.activations")
    layers = v.get("probe.layers")
    if layers is MISSING:
        v.fail("probe.layers is missing from the config")
        layers = None
    elif layers is not None and (not isinstance(layers, list) or not layers or not all(map(_layer, layers))):
        v.fail(f"probe.layers must be null (every conv) or a non-empty list of conv indices >= 1 or module "
               f"names, got {layers!r}")  # fmt: skip
        layers = None
    if not enabled:
        return None
    return {"layers": layers, "interval": interval, "activations": activations}


def _layer(x: Any) -> bool:
    """A conv layer of ``probe.layers``: a 1-based index or a module name."""
    return (isinstance(x, int) and not isinstance(x, bool) and x >= 1) or (isinstance(x, str) and bool(x))


def _model_options(name: str) -> dict[str, Any]:
    return classifier_options(name)


def _data_options(name: str) -> dict[str, Any]:
    return dataset_options(name)
