"""Pieces shared by every meta-model: tasks, token one-hot, gated residual blocks, read-outs, heads.

Every model takes two uint8 token tensors ``ref`` and ``alt`` of shape (B, L) (A,C,G,T,N = 0..4,
variant's first REF base at index L // 2) and returns raw outputs (B, n_outputs):

- task ``delta``: one raw value per validated SpliceAI target (``DS_AG``, ``DS_AL``, ``DS_DG``,
  ``DS_DL`` by default); the prediction is ``sigmoid(raw)`` because delta scores lie in [0, 1];
- task ``binary``: one logit for Splice-altering vs Normal; the probability is ``sigmoid(logit)``;
- task ``effect_type``: one logit per effect class (:data:`metasplice.models.tasks.EFFECT_CLASSES`); the
  prediction is their softmax;
- task ``localisation``: one logit per offset -distance .. distance from the variant (window
  orientation); the prediction is their softmax;
- task ``quantile``: per delta target, one raw value per quantile level: the first is a logit, the
  others add softplus increments to it, so that ``sigmoid`` of the running sum gives quantiles that
  never cross;
- task ``multitask``: the raw outputs of the binary, effect-type, delta and localisation heads,
  concatenated in that order (:func:`metasplice.models.tasks.output_layout`).

:func:`transform_outputs` turns raw outputs into predictions for every task.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from metasplice.base_models.spliceai.scoring import DS_COLUMNS as DS_TARGETS
from metasplice.models import tasks as effects

TASKS: tuple[str, ...] = ("delta", "binary", "effect_type", "localisation", "quantile", "multitask")
TARGET_TASKS: tuple[str, ...] = ("delta", "quantile", "multitask")  # tasks that regress delta targets
# tasks trained (and evaluated) from the base model's scores.parquet: targets, effect classes, offsets
SCORE_TASKS: tuple[str, ...] = ("delta", "effect_type", "localisation", "quantile", "multitask")
N_TOKEN = 4  # token value of N; it one-hot encodes to all zeros

# task option fields of the model configs -> the tasks that use them (a field is ignored by the others)
TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "complex_fraction": ("effect_type", "multitask"),
    "min_effect_score": ("effect_type", "localisation", "multitask"),
    "class_weighting": ("effect_type", "multitask"),
    "distance": ("localisation", "multitask"),
    "quantiles": ("quantile",),
    "loss_weights": ("multitask",),
}


def check_task(task: str, targets: tuple[str, ...], supported: tuple[str, ...] = TASKS, model: str = "") -> None:
    """Validate a (task, targets) pair; raise ValueError naming the allowed values.

    ``supported``: the tasks the model implements (a known task outside it is an error naming ``model``).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    if task not in supported:
        raise ValueError(f"task {task!r} is not supported by model {model!r}; supported tasks: {', '.join(supported)}")
    if task in TARGET_TASKS:
        if not targets:
            raise ValueError(f"task {task!r} needs at least one target out of {', '.join(DS_TARGETS)}")
        unknown = [t for t in targets if t not in DS_TARGETS]
        if unknown:
            raise ValueError(f"unknown delta targets {unknown}; known targets: {', '.join(DS_TARGETS)}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"duplicate delta targets in {list(targets)}")


def check_task_options(config: Any) -> None:
    """Validate the task option fields a model config has (see :data:`TASK_OPTIONS`)."""
    if hasattr(config, "complex_fraction") or hasattr(config, "min_effect_score"):
        effects.check_effect_options(
            getattr(config, "complex_fraction", effects.DEFAULT_COMPLEX_FRACTION),
            getattr(config, "min_effect_score", effects.DEFAULT_MIN_EFFECT_SCORE),
        )
    if hasattr(config, "class_weighting") and config.class_weighting not in effects.CLASS_WEIGHTINGS:
        raise ValueError(
            f"unknown class_weighting {config.class_weighting!r}; known: {', '.join(effects.CLASS_WEIGHTINGS)}"
        )
    if hasattr(config, "distance"):
        uses = config.task in TASK_OPTIONS["distance"]
        effects.check_distance(config.distance, int(config.context) if uses else None)
    if hasattr(config, "quantiles"):
        effects.check_quantiles(config.quantiles)
    if hasattr(config, "loss_weights"):
        effects.check_loss_weights(config.loss_weights)


def task_config_dict(config: Any) -> dict[str, Any]:
    """The model config's fields minus the task options its task does not use (what determines the model)."""
    values = dataclasses.asdict(config)
    return {k: v for k, v in values.items() if k not in TASK_OPTIONS or config.task in TASK_OPTIONS[k]}


def output_layout(config: Any) -> dict[str, tuple[str, ...]]:
    """Output names of a model config grouped by head, in output order."""
    return effects.output_layout(
        config.task,
        tuple(getattr(config, "targets", DS_TARGETS)),
        int(getattr(config, "distance", effects.DEFAULT_DISTANCE)),
        tuple(getattr(config, "quantiles", effects.DEFAULT_QUANTILES)),
    )


def output_names(task: str, targets: tuple[str, ...], config: Any = None) -> tuple[str, ...]:
    """Names of the model outputs: the target names for ``delta``, ``('splice_altering',)`` for ``binary``;
    for the other tasks (``config``: the model config) see :func:`metasplice.models.tasks.output_layout`."""
    if task == "delta":
        return tuple(targets)
    if task == "binary":
        return ("splice_altering",)
    if config is None:
        raise ValueError(f"the output names of task {task!r} depend on the model config; pass it")
    return tuple(name for names in output_layout(config).values() for name in names)


def monotone_quantiles(raw: torch.Tensor, n_quantiles: int) -> torch.Tensor:
    """Raw (B, T * Q) target-major values -> (B, T * Q) quantile predictions in (0, 1), non-decreasing
    over the Q levels of each target: sigmoid(r_0 + softplus(r_1) + ... + softplus(r_k))."""
    r = raw.float().reshape(raw.shape[0], -1, n_quantiles)
    steps = torch.cat([r[..., :1], F.softplus(r[..., 1:])], dim=-1)
    return torch.sigmoid(steps.cumsum(dim=-1)).reshape(raw.shape[0], -1)


def transform_outputs(config: Any, raw: torch.Tensor) -> torch.Tensor:
    """Raw model outputs (B, n_outputs) -> predictions (float32): sigmoid for delta and binary heads,
    softmax for effect-type and localisation heads, monotone quantiles for quantile heads.

    ``config``: the model config (None: a delta/binary model, sigmoid throughout).
    """
    raw = raw.float()
    task = getattr(config, "task", "delta")
    if task in ("delta", "binary"):
        return torch.sigmoid(raw)
    parts, start = [], 0
    for head, names in output_layout(config).items():
        block = raw[:, start : start + len(names)]
        start += len(names)
        if head in ("effect_type", "localisation"):
            parts.append(torch.softmax(block, dim=1))
        elif head == "quantile":
            parts.append(monotone_quantiles(block, len(config.quantiles)))
        else:
            parts.append(torch.sigmoid(block))
    return torch.cat(parts, dim=1)


def config_from_dict(cls: type, values: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from a plain dict; lists become tuples; unknown keys are an error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if isinstance(value, list) and _is_tuple_type(hints[key]):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _is_tuple_type(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple_type(a) for a in typing.get_args(hint))
    return False


def one_hot(tokens: torch.Tensor) -> torch.Tensor:
    """uint8/long tokens (B, L) -> float one-hot (B, 4, L) on the tokens' device; N (4) -> zeros."""
    return F.one_hot(tokens.long(), N_TOKEN + 1)[..., :N_TOKEN].transpose(1, 2).float()


def check_tokens(ref: torch.Tensor, alt: torch.Tensor, context: int) -> None:
    """Raise ValueError unless ref and alt are both (B, context)."""
    if ref.shape != alt.shape or ref.dim() != 2 or ref.shape[1] != context:
        raise ValueError(
            f"expected ref and alt token tensors of shape (batch, {context}); got {tuple(ref.shape)} and "
            f"{tuple(alt.shape)} (the model was built for context {context})"
        )


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over channels at every position of a (B, C, L) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.float().pow(2).mean(dim=1, keepdim=True) + self.eps).to(x.dtype)
        return x * scale * self.weight[:, None].to(x.dtype)


class GatedResidualBlock(nn.Module):
    """x + dropout(proj(a * sigmoid(b))), with (a, b) = dilated_conv(norm(x)) split in two."""

    def __init__(self, hidden: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(hidden)
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=dilation, padding=padding)
        self.proj = nn.Conv1d(hidden, hidden, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(self.norm(x)).chunk(2, dim=1)
        return x + self.dropout(self.proj(a * torch.sigmoid(b)))


class GatedDilatedEncoder(nn.Module):
    """One-hot (B, 4, L) -> features (B, hidden, L): a stem convolution and gated dilated residual blocks."""

    def __init__(self, hidden: int, dilations: tuple[int, ...], kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.stem = nn.Conv1d(N_TOKEN, hidden, kernel_size, padding=(kernel_size - 1) // 2)
        self.blocks = nn.Sequential(*(GatedResidualBlock(hidden, kernel_size, d, dropout) for d in dilations))
        self.norm = ChannelRMSNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.stem(x)))


class AttentionPool(nn.Module):
    """Learned attention pooling over the length axis of (B, C, L): (B, heads * C).

    ``mask`` (B, L), True where a position may be attended (all positions when None).
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.score = nn.Conv1d(channels, heads, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.score(x).float()  # (B, heads, L)
        if mask is not None:
            logits = logits.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(logits, dim=-1).to(x.dtype)
        return torch.einsum("bhl,bcl->bhc", weights, x).flatten(1)


class OffsetHead(nn.Module):
    """Localisation logits: one per window position ``L//2 - distance .. L//2 + distance``.

    Each position's features (B, C, L) plus a projection of the variant-level features (B, F) go through
    a position-wise MLP (1x1 convolutions) to one logit: (B, 2 * distance + 1), offset ``k - distance``
    at column ``k``.
    """

    def __init__(self, channels: int, in_features: int, distance: int, dropout: float) -> None:
        super().__init__()
        self.distance = distance
        self.context = nn.Linear(in_features, channels)
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, 1), nn.GELU(), nn.Dropout(dropout), nn.Conv1d(channels, 1, 1)
        )

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        c, d = x.shape[-1] // 2, self.distance
        window = x[:, :, c - d : c + d + 1] + self.context(features)[:, :, None]
        return self.net(window)[:, 0, :]


class MLPHead(nn.Module):
    """features -> hidden -> GELU -> dropout -> n_outputs."""

    def __init__(self, in_features: int, hidden: int, n_outputs: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable
