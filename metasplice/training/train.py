"""Training loop for the meta-models.

Data: ``sequences/ctx{L}.npz`` (ref/alt uint8 tokens, row order of variants.parquet), ``variants.parquet``
(``label`` 1 Splice-altering / 0 Normal / -1 other, ``split``; ``strand`` for localisation) and, for
every task but ``binary``, ``targets/{base}/scores.parquet`` (``target_DS_*``: label 1 -> SpliceAI DS,
label 0 -> 0, else NaN; ``DS_*``/``DP_*`` for the effect classes and offsets of
:mod:`metasplice.models.tasks`).

Targets and training rows per task (``y`` of :class:`TrainingData`; NaN = no target):

- ``binary``: label == 1; ``delta`` and ``quantile``: the validated delta targets;
- ``effect_type``: the effect class index (Normal rows: ``normal``; Splice-altering rows without a
  class are left out);
- ``localisation``: the offset class index; trained on the Splice-altering rows that have one only,
  all of them (no Normal rows, so no balancing; ``max_samples`` caps them with a seeded draw);
- ``multitask``: [binary, effect class, offset class, delta targets...]; every label 0/1 row trains
  the binary head, each other head's loss uses the rows where its target is defined.

- training rows: split ``train``, label 0/1 with the task's targets, balanced by drawing
  the same number of Splice-altering and Normal rows (the smaller class whole, capped at
  ``max_samples // 2`` each), once, with the run's seed (every task but ``localisation``);
- validation rows: split ``val`` (grouped by gene or chromosome upstream), label 0/1, all of them
  (or a seeded draw of ``max_val_samples``); early stopping and best-epoch selection use it;
- AdamW, per-group learning rates (a foundation encoder trains at its own rate) under one linear
  warm-up + cosine schedule (``LambdaLR``, which keeps each group's own base rate), gradient
  clipping, autocast (bf16, or fp16 with a GradScaler) on CUDA only;
- the best epoch's weights are kept as a ``copy.deepcopy`` of the state dict and restored at the end;
- after every epoch a resumable state (model, optimiser, scheduler, scaler, RNG states, best state,
  history) is written atomically; a killed run started again with the same configuration resumes
  after the last finished epoch and ends with the same weights as an uninterrupted run;
- batches are drawn from a per-epoch permutation seeded by (seed, epoch); one-hot encoding happens in
  the model, on the device, from uint8 tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from metasplice.models import build_model, save_model
from metasplice.models import tasks as effects
from metasplice.models.common import monotone_quantiles, output_layout, task_config_dict, transform_outputs
from metasplice.models.registry import atomic_torch_save

log = logging.getLogger(__name__)

MONITORS = {"val_loss": "min", "val_auroc": "max"}
AMP_MODES = ("auto", "bf16", "fp16", "off")
DELTA_LOSSES = ("mse", "bce")
STATE_FORMAT = "metasplice-train-state/1"
# fields that change how a run executes but not what it computes; left out of the resume fingerprint
RUNTIME_FIELDS = ("device", "amp", "log_every", "eval_batch_size", "compile")


@dataclass
class TrainConfig:
    """Training hyper-parameters (saved inside model.pt)."""

    epochs: int = 50  # maximum number of epochs
    batch_size: int = 64
    lr: float = 1e-3  # base learning rate (the head's; an HF encoder gets lr * encoder_lr_scale)
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05  # share of all steps spent in linear warm-up
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of each group's base rate
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    max_samples: int | None = None  # cap on balanced training rows (None: all balanced rows)
    max_val_samples: int | None = None  # cap on validation rows (None: all)
    early_stopping: bool = False
    patience: int = 7  # epochs without improvement before stopping (with early_stopping)
    min_delta: float = 0.0  # smallest change of the monitored value that counts as improvement
    monitor: str = "val_loss"  # val_loss | val_auroc
    restore_best: bool = True  # end with the best validation epoch's weights
    seed: int = 42
    delta_loss: str = "mse"  # mse | bce on sigmoid outputs vs validated delta scores
    device: str = "auto"  # auto (cuda when available) | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 if supported, else fp16) | bf16 | fp16 | off; CUDA only
    eval_batch_size: int | None = None  # None: 2 * batch_size
    log_every: int = 100  # batches between progress lines
    compile: bool = False  # torch.compile the model for the training steps (CUDA only)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("warmup_fraction must be in [0, 1) and min_lr_ratio in [0, 1]")
        if self.max_samples is not None and self.max_samples < 2:
            raise ValueError(f"max_samples must be >= 2 (one per class) or null, got {self.max_samples}")
        if self.max_val_samples is not None and self.max_val_samples < 1:
            raise ValueError(f"max_val_samples must be >= 1 or null, got {self.max_val_samples}")
        if self.monitor not in MONITORS:
            raise ValueError(f"unknown monitor {self.monitor!r}; known: {', '.join(MONITORS)}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"unknown amp mode {self.amp!r}; known: {', '.join(AMP_MODES)}")
        if self.delta_loss not in DELTA_LOSSES:
            raise ValueError(f"unknown delta_loss {self.delta_loss!r}; known: {', '.join(DELTA_LOSSES)}")


@dataclass
class TrainingData:
    """Row-aligned arrays for one experiment: tokens, targets (N, n_targets; see the module docstring),
    label, split; ``usable`` marks the rows with the task's targets (None: label 0/1 and finite ``y``),
    ``balanced`` draws as many Splice-altering as Normal training rows."""

    ref: np.ndarray
    alt: np.ndarray
    y: np.ndarray
    label: np.ndarray
    split: np.ndarray
    usable: np.ndarray | None = None
    balanced: bool = True
    strand_oriented: bool = True  # orientation of the windows (recorded in the checkpoint for prediction)


def load_training_data(
    sequences: str | os.PathLike,
    variants: str | os.PathLike,
    scores: str | os.PathLike | None,
    task: str,
    targets: tuple[str, ...] = (),
    context: int | None = None,
    options: Any = None,
) -> TrainingData:
    """Read the window, variant and (every task but binary) scores files; check they are row-aligned.

    ``options``: the model config, for the task options of the effect tasks (``complex_fraction``,
    ``min_effect_score``, ``distance``; defaults of :mod:`metasplice.models.tasks` when None). The windows'
    orientation comes from the windows file (``strand_oriented``, True when it does not say).
    """
    with np.load(sequences) as npz:
        missing = {"ref", "alt"} - set(npz.files)
        if missing:
            raise ValueError(f"{sequences}: missing arrays {sorted(missing)} (expected ref and alt)")
        ref, alt = npz["ref"], npz["alt"]
        strand_oriented = bool(npz["strand_oriented"]) if "strand_oriented" in npz.files else True
    if ref.dtype != np.uint8 or alt.dtype != np.uint8 or ref.shape != alt.shape or ref.ndim != 2:
        raise ValueError(
            f"{sequences}: ref/alt must be uint8 [N, L] of equal shape, got {ref.dtype}{ref.shape}, "
            f"{alt.dtype}{alt.shape}"
        )
    if context is not None and ref.shape[1] != context:
        raise ValueError(f"{sequences}: windows are {ref.shape[1]} nt but the model's context is {context}")
    table = pd.read_parquet(variants, columns=["label", "split"])
    if len(table) != len(ref):
        raise ValueError(f"{sequences} has {len(ref)} rows but {variants} has {len(table)}; re-extract the sequences")
    label = table["label"].to_numpy(dtype=np.int8)
    split = table["split"].astype(str).to_numpy()
    if task == "binary":
        y = (label == 1).astype(np.float32)[:, None]
        return TrainingData(strand_oriented=strand_oriented, ref=ref, alt=alt, y=y, label=label, split=split)
    if scores is None:
        raise ValueError(f"task {task!r} needs the base model's scores file (targets/{{base}}/scores.parquet)")
    frame = pd.read_parquet(scores)
    if len(frame) != len(table):
        raise ValueError(f"{scores} has {len(frame)} rows but {variants} has {len(table)}; rerun the base model")
    delta = None
    if task in ("delta", "quantile", "multitask"):
        columns = [f"target_{t}" for t in targets]
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"{scores}: missing target columns {absent}")
        delta = frame[columns].to_numpy(dtype=np.float32)
    if task in ("delta", "quantile"):
        return TrainingData(strand_oriented=strand_oriented, ref=ref, alt=alt, y=delta, label=label, split=split)
    strand = None
    if task in ("localisation", "multitask") and strand_oriented:
        if "strand" not in _parquet_columns(variants):
            raise ValueError(
                f"{variants} has no 'strand' column, needed to orient the offsets of the "
                f"strand-oriented windows of {sequences}"
            )
        strand = pd.read_parquet(variants, columns=["strand"])["strand"].astype(str).to_numpy()
    try:
        classes = offsets = None
        if task in ("effect_type", "multitask"):
            classes = effects.config_effect_labels(frame, label, options)
        if task in ("localisation", "multitask"):
            offsets = effects.config_localisation_targets(frame, label, strand, strand_oriented, options)
    except ValueError as error:
        raise ValueError(f"{scores}: {error}") from error
    labelled = np.isin(label, (0, 1))
    if task == "effect_type":
        y = _with_nan(classes)[:, None]
        return TrainingData(
            strand_oriented=strand_oriented,
            ref=ref,
            alt=alt,
            y=y,
            label=label,
            split=split,
            usable=labelled & (classes >= 0),
        )
    if task == "localisation":
        y = _with_nan(offsets)[:, None]
        return TrainingData(
            strand_oriented=strand_oriented,
            ref=ref,
            alt=alt,
            y=y,
            label=label,
            split=split,
            usable=labelled & (offsets >= 0),
            balanced=False,
        )
    if task != "multitask":
        raise ValueError(f"unknown task {task!r}")
    binary = np.where(labelled, (label == 1).astype(np.float32), np.nan).astype(np.float32)
    y = np.column_stack([binary, _with_nan(classes), _with_nan(offsets), delta]).astype(np.float32)
    return TrainingData(
        strand_oriented=strand_oriented, ref=ref, alt=alt, y=y, label=label, split=split, usable=labelled
    )


def _parquet_columns(path: str | os.PathLike) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _with_nan(index: np.ndarray) -> np.ndarray:
    """Class indices as float32 with NaN for -1 (no target)."""
    return np.where(index >= 0, index, np.nan).astype(np.float32)


def select_rows(data: TrainingData, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training rows balanced between Splice-altering and Normal, validation rows), sorted, seeded.

    Unbalanced data (``data.balanced`` false) trains on every usable training row instead (a seeded
    draw of ``max_samples`` of them when capped).
    """
    if data.usable is not None:
        usable = np.asarray(data.usable, dtype=bool)
    else:
        usable = np.isin(data.label, (0, 1)) & np.isfinite(data.y).all(axis=1)
    rng = np.random.default_rng(config.seed)
    if not data.balanced:
        train = np.flatnonzero(usable & (data.split == "train"))
        if len(train) == 0:
            raise ValueError("training split has no rows with the task's targets")
        if config.max_samples is not None and len(train) > config.max_samples:
            train = np.sort(rng.choice(train, config.max_samples, replace=False))
        return train, _validation_rows(data, usable, config, rng)
    positives = np.flatnonzero(usable & (data.split == "train") & (data.label == 1))
    negatives = np.flatnonzero(usable & (data.split == "train") & (data.label == 0))
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(
            f"training split has {len(positives)} Splice-altering and {len(negatives)} Normal usable rows; "
            "both classes are needed"
        )
    per_class = min(len(positives), len(negatives))
    if config.max_samples is not None:
        per_class = min(per_class, config.max_samples // 2)
    train = np.sort(
        np.concatenate(
            [rng.choice(positives, per_class, replace=False), rng.choice(negatives, per_class, replace=False)]
        )
    )
    return train, _validation_rows(data, usable, config, rng)


def _validation_rows(
    data: TrainingData, usable: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> np.ndarray:
    val = np.flatnonzero(usable & (data.split == "val"))
    if len(val) == 0:
        raise ValueError("no validation rows (split 'val' with label 0/1 and finite targets); check the split settings")
    if config.max_val_samples is not None and len(val) > config.max_val_samples:
        val = np.sort(rng.choice(val, config.max_val_samples, replace=False))
    return val


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    return device


def amp_dtype(device: torch.device, mode: str) -> torch.dtype | None:
    """Autocast dtype for ``mode`` on ``device``; None (full precision) on CPU or with ``off``."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def configure_backends(device: torch.device) -> None:
    """On CUDA let cuDNN pick the fastest convolution algorithms and allow TF32 matrix products
    (process-wide settings; CPU runs, which must reproduce exactly, are left untouched)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the model's named parameter groups (each with its own base learning rate)."""
    groups = [g for g in model.param_groups(config.lr) if g["params"]]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_lr_ratio``, as a factor on each group's own base rate."""
    warmup = int(config.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def loss_function(
    task: str,
    delta_loss: str = "mse",
    model_config: Any = None,
    class_weights: np.ndarray | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean loss of raw outputs vs targets.

    binary: BCE on the logit; delta: MSE/BCE on sigmoid outputs; effect_type and localisation:
    cross-entropy over the classes (effect classes weighted by ``class_weights``); quantile: pinball
    loss of the monotone quantiles (mean over rows, targets and levels); multitask: the
    ``loss_weights``-weighted sum of the heads' losses, each over the rows of the batch where its
    target is defined (a head without such rows adds 0). The tasks beyond delta and binary need
    ``model_config`` (their output layout and options).
    """
    if task in ("delta", "binary"):
        if task == "binary" or delta_loss == "bce":
            return lambda out, y: F.binary_cross_entropy_with_logits(out.float(), y)
        return lambda out, y: F.mse_loss(torch.sigmoid(out.float()), y)
    if model_config is None:
        raise ValueError(f"the loss of task {task!r} needs the model config")
    weight = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    if task == "effect_type":
        return lambda out, y: _cross_entropy(out, y[:, 0], weight)
    if task == "localisation":
        return lambda out, y: _cross_entropy(out, y[:, 0], None)
    if task == "quantile":
        levels = tuple(float(q) for q in model_config.quantiles)
        return lambda out, y: _pinball(out, y, levels)
    if task != "multitask":
        raise ValueError(f"unknown task {task!r}")
    layout = output_layout(model_config)
    bounds, start = {}, 0
    for head, names in layout.items():
        bounds[head] = slice(start, start + len(names))
        start += len(names)
    weights = effects.check_loss_weights(model_config.loss_weights)
    columns = {"binary": slice(0, 1), "effect_type": slice(1, 2), "localisation": slice(2, 3), "delta": slice(3, None)}

    def head_loss(head: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        o, t = out[:, bounds[head]], y[:, columns[head]]
        if head == "binary":
            return _masked_bce(o, t)
        if head == "delta":
            return _delta_loss(o, t, delta_loss)
        return _cross_entropy(o, t[:, 0], weight if head == "effect_type" else None)

    def multitask(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(w * head_loss(head, out, y) for head, w in weights.items() if w > 0)

    return multitask


# The masked losses below average over the rows whose target is defined (finite) without indexing by
# the mask, so they never wait on the device; a batch without such rows gives 0 (and zero gradients).


def _row_mask(y: torch.Tensor) -> torch.Tensor:
    """(B,) float: 1 where every target of the row is finite."""
    return torch.isfinite(y).all(dim=1).float() if y.dim() == 2 else torch.isfinite(y).float()


def _masked_bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mask = _row_mask(y)[:, None]
    loss = F.binary_cross_entropy_with_logits(logits.float(), torch.nan_to_num(y), reduction="none")
    return (loss * mask).sum() / (mask.sum() * y.shape[1]).clamp_min(1.0)


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """(Weighted) cross-entropy over the rows whose class (float index, NaN = none) is defined, as
    ``F.cross_entropy`` on those rows: sum of w[y] x nll / sum of w[y]."""
    mask = _row_mask(target)
    index = torch.nan_to_num(target).long()
    w = weight.to(logits.device) if weight is not None else None
    nll = F.cross_entropy(logits.float(), index, weight=w, reduction="none")  # already x w[y]
    row_weight = (w[index] if w is not None else torch.ones_like(mask)) * mask
    return (nll * mask).sum() / row_weight.sum().clamp_min(1e-12)


def _delta_loss(out: torch.Tensor, y: torch.Tensor, delta_loss: str) -> torch.Tensor:
    """MSE/BCE of sigmoid outputs over the rows whose delta targets are all finite."""
    if delta_loss == "bce":
        return _masked_bce(out, y)
    mask = _row_mask(y)[:, None]
    loss = (torch.sigmoid(out.float()) - torch.nan_to_num(y)) ** 2
    return (loss * mask).sum() / (mask.sum() * y.shape[1]).clamp_min(1.0)


def _pinball(out: torch.Tensor, y: torch.Tensor, quantiles: tuple[float, ...]) -> torch.Tensor:
    """Pinball (quantile) loss of the monotone quantile predictions vs the delta targets (B, T), averaged
    over rows with finite targets, targets and quantile levels."""
    mask = _row_mask(y)[:, None, None]
    pred = monotone_quantiles(out, len(quantiles)).reshape(y.shape[0], y.shape[1], len(quantiles))
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    diff = torch.nan_to_num(y)[:, :, None] - pred
    loss = torch.maximum(q * diff, (q - 1) * diff)
    return (loss * mask).sum() / (mask.sum() * y.shape[1] * len(quantiles)).clamp_min(1.0)


def classifier_score(predictions: np.ndarray, task: str = "delta", output_names: tuple[str, ...] = ()) -> np.ndarray:
    """One Splice-altering score per row: the largest predicted delta score, or the binary probability
    (other tasks: :func:`metasplice.models.tasks.classifier_scores`; NaN for localisation)."""
    if task in ("delta", "binary"):
        return predictions.max(axis=1)
    return effects.classifier_scores(predictions, task, output_names)


def auroc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for label 1 vs 0; NaN when a class is missing."""
    return float(roc_auc_score(label, score)) if len(np.unique(label)) == 2 else float("nan")


@torch.no_grad()
def predict(
    model: nn.Module,
    ref: np.ndarray | torch.Tensor,
    alt: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str = "off",
) -> np.ndarray:
    """Predictions (N, n_outputs): sigmoid of the raw outputs (delta scores, or P(Splice-altering)); class
    probabilities and monotone quantiles for the other tasks (:func:`metasplice.models.common.transform_outputs`)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = amp_dtype(device, amp)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(ref), batch_size):
        r = torch.as_tensor(ref[start : start + batch_size]).to(device)
        a = torch.as_tensor(alt[start : start + batch_size]).to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out.append(transform_outputs(getattr(model, "config", None), model(r, a)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.output_names)), np.float32)


def _evaluate(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    label: np.ndarray,
    criterion: Callable,
    batch_size: int,
    dtype: torch.dtype | None,
) -> tuple[float, float]:
    """(mean loss, AUROC of the classifier score; NaN for a task without one) on one split."""
    model.eval()
    total, scores = 0.0, []
    config = getattr(model, "config", None)
    task = getattr(config, "task", "delta")
    device = tensors["ref"].device
    with torch.no_grad():
        for start in range(0, len(label), batch_size):
            sl = slice(start, start + batch_size)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                raw = model(tensors["ref"][sl], tensors["alt"][sl])
            total += criterion(raw, tensors["y"][sl]).item() * len(raw)
            scores.append(transform_outputs(config, raw).cpu())
    model.train()
    if task == "localisation":
        return total / len(label), float("nan")
    score = classifier_score(torch.cat(scores).numpy(), task, tuple(model.output_names))
    return total / len(label), auroc(label, score)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    criterion: Callable,
    ref: torch.Tensor,
    alt: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype | None,
    grad_clip: float,
) -> torch.Tensor:
    """One optimisation step (autocast forward, scaled backward, clipping, optimiser and schedule); the
    detached loss."""
    with torch.autocast(ref.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        raw = model(ref, alt)
    loss = criterion(raw, y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.detach()


def _fingerprint(
    architecture: str,
    model_config: Any,
    config: TrainConfig,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    data: TrainingData,
) -> str:
    """Hash of everything that determines the result - settings, rows, and the rows' windows, targets and
    labels (re-extracted windows or re-scored targets change it); a saved state is resumed only when it matches."""
    train_fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in RUNTIME_FIELDS}
    payload = json.dumps([architecture, task_config_dict(model_config), train_fields], sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode())
    for idx in (train_idx, val_idx):
        digest.update(idx.astype(np.int64).tobytes())
        for array in (data.ref, data.alt, data.y, data.label):
            digest.update(np.ascontiguousarray(array[idx]).tobytes())
    return digest.hexdigest()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def write_history(rows: list[dict], path: str | os.PathLike) -> None:
    """history.tsv (one row per epoch), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_state(path: Path, fingerprint: str) -> dict | None:
    """The saved training state at ``path`` (tensors on CPU; load_state_dict moves them) if it matches."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != STATE_FORMAT or state.get("fingerprint") != fingerprint:
        log.warning("%s belongs to another configuration or data; starting from scratch", path)
        return None
    return state


def train_model(
    model: nn.Module,
    data: TrainingData,
    config: TrainConfig,
    model_out: str | os.PathLike,
    history_out: str | os.PathLike,
    state_path: str | os.PathLike | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> dict:
    """Train ``model`` on ``data``; write model.pt and history.tsv; return the run summary.

    ``state_path``: resumable state written after every epoch (removed after success).
    ``on_epoch_end``: called with each history row after the state is saved (progress hooks, tests).
    """
    device = resolve_device(config.device)
    configure_backends(device)
    dtype = amp_dtype(device, config.amp)
    if config.amp in ("bf16", "fp16") and device.type != "cuda":
        log.info("amp=%s ignored on %s (autocast is used on CUDA only)", config.amp, device)
    task = model.config.task
    if task == "localisation" and config.monitor == "val_auroc":
        raise ValueError("task 'localisation' has no classifier score to monitor; use monitor: val_loss")
    train_idx, val_idx = select_rows(data, config)
    class_weights = None
    if task in ("effect_type", "multitask"):
        classes = data.y[train_idx, 0 if task == "effect_type" else 1]
        class_weights = effects.effect_class_weights(classes[np.isfinite(classes)], model.config.class_weighting)
        log.info(
            "effect class weights (%s): %s",
            model.config.class_weighting,
            ", ".join(f"{c} {w:.3g}" for c, w in zip(effects.EFFECT_CLASSES, class_weights)),
        )
    criterion = loss_function(task, config.delta_loss, model.config, class_weights)
    n_train = len(train_idx)
    if data.balanced:
        log.info(
            "device %s, autocast %s; %d training rows (%d per class), %d validation rows",
            device,
            dtype,
            n_train,
            n_train // 2,
            len(val_idx),
        )
    else:
        log.info("device %s, autocast %s; %d training rows, %d validation rows", device, dtype, n_train, len(val_idx))

    def tensors(idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "ref": torch.from_numpy(data.ref[idx]).to(device),
            "alt": torch.from_numpy(data.alt[idx]).to(device),
            "y": torch.from_numpy(data.y[idx]).to(device),
        }

    train_t, val_t = tensors(train_idx), tensors(val_idx)
    model.to(device).train()
    step_model = torch.compile(model) if config.compile and device.type == "cuda" else model
    optimizer = make_optimizer(model, config)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    scheduler = make_scheduler(optimizer, steps_per_epoch * config.epochs, config)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    eval_batch = config.eval_batch_size or 2 * config.batch_size
    group_names = [g["name"] for g in optimizer.param_groups]
    better = (
        (lambda new, old: new < old - config.min_delta)
        if MONITORS[config.monitor] == "min"
        else (lambda new, old: new > old + config.min_delta)
    )

    fingerprint = _fingerprint(model.architecture, model.config, config, train_idx, val_idx, data)
    state_file = Path(state_path) if state_path is not None else None
    state = _load_state(state_file, fingerprint) if state_file is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        history, best = state["history"], state["best"]
        log.info("resuming from %s after epoch %d", state_file, len(history))
    else:
        history = []
        best = {"epoch": 0, "value": None, "state": None, "bad_epochs": 0, "stopped": False}

    for epoch in range(len(history) + 1, config.epochs + 1):
        if best["stopped"]:
            break
        start = time.perf_counter()
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
        order = order.to(device)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            loss = train_step(
                step_model,
                optimizer,
                scheduler,
                scaler,
                criterion,
                train_t["ref"][idx],
                train_t["alt"][idx],
                train_t["y"][idx],
                dtype,
                config.grad_clip,
            )
            loss_sum += loss * len(idx)
            if (step + 1) % config.log_every == 0:
                log.info("epoch %d step %d/%d loss %.5f", epoch, step + 1, steps_per_epoch, loss.item())
        train_loss = loss_sum.item() / n_train
        val_loss, val_auroc = _evaluate(model, val_t, data.label[val_idx], criterion, eval_batch, dtype)
        value = val_loss if config.monitor == "val_loss" else val_auroc
        # a NaN value (diverged loss, single-class validation AUROC) is "best" only while nothing else is,
        # and the first finite value after it replaces it
        if math.isnan(value):
            improved = best["value"] is None
        else:
            improved = best["value"] is None or math.isnan(best["value"]) or better(value, best["value"])
        if improved:
            best.update(epoch=epoch, value=value, state=copy.deepcopy(model.state_dict()), bad_epochs=0)
        else:
            best["bad_epochs"] += 1
            best["stopped"] = config.early_stopping and best["bad_epochs"] >= config.patience
        seconds = time.perf_counter() - start
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_auroc": val_auroc,
            **{f"lr_{name}": lr for name, lr in zip(group_names, scheduler.get_last_lr())},
            "seconds": round(seconds, 3),
            "best": improved,
        }
        history.append(row)
        log.info(
            "epoch %d/%d train_loss %.5f val_loss %.5f val_auroc %.4f lr %s %.1f s (%.0f samples/s)%s",
            epoch,
            config.epochs,
            train_loss,
            val_loss,
            val_auroc,
            " ".join(f"{n}={lr:.3g}" for n, lr in zip(group_names, scheduler.get_last_lr())),
            seconds,
            n_train / seconds,
            " *best*" if improved else "",
        )
        if best["stopped"]:
            log.info("early stopping: no %s improvement for %d epochs", config.monitor, config.patience)
        write_history(history, history_out)
        if state_file is not None:
            atomic_torch_save(
                {
                    "format": STATE_FORMAT,
                    "fingerprint": fingerprint,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": _rng_state(),
                    "history": history,
                    "best": best,
                },
                state_file,
            )
        if on_epoch_end is not None:
            on_epoch_end(row)

    if config.restore_best and best["state"] is not None:
        model.load_state_dict(best["state"])
    # the saved weights' epoch and value: the best epoch's when restored, else the last epoch's
    last_value = history[-1]["val_loss" if config.monitor == "val_loss" else "val_auroc"] if history else None
    summary = {
        "best_epoch": best["epoch"] if config.restore_best else len(history),
        "epochs_run": len(history),
        "early_stopped": best["stopped"],
        "monitor": config.monitor,
        "best_value": best["value"] if config.restore_best else last_value,
        "restored_best": bool(config.restore_best),
        "n_train": n_train,
        "n_val": len(val_idx),
        "strand_oriented": data.strand_oriented,
        "device": str(device),
        "torch": str(torch.__version__),
    }
    if class_weights is not None:
        summary["class_weights"] = dict(zip(effects.EFFECT_CLASSES, map(float, class_weights)))
    write_history(history, history_out)
    save_model(model_out, model, dataclasses.asdict(config), summary)
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    log.info(
        "saved %s (epoch %d of %d, %s %.5g)",
        model_out,
        summary["best_epoch"],
        len(history),
        config.monitor,
        best["value"] if best["value"] is not None else float("nan"),
    )
    return summary


def run_experiment(
    architecture: str,
    model_config: Any,
    config: TrainConfig,
    sequences: str | os.PathLike,
    variants: str | os.PathLike,
    scores: str | os.PathLike | None,
    model_out: str | os.PathLike,
    history_out: str | os.PathLike,
    state_path: str | os.PathLike | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
) -> dict:
    """Seed, build the model, load the data and train it (see :func:`train_model`)."""
    seed_everything(config.seed)
    model = build_model(architecture, model_config)
    data = load_training_data(
        sequences, variants, scores, model_config.task, model_config.targets, model_config.context, model_config
    )
    return train_model(model, data, config, model_out, history_out, state_path, on_epoch_end)
