"""Pieces shared by every meta-model: tasks, token one-hot, gated residual blocks, read-outs, heads.

Every model takes two uint8 token tensors ``ref`` and ``alt`` of shape (B, L) (A,C,G,T,N = 0..4,
variant's first REF base at index L // 2) and returns raw outputs (B, n_outputs):

- task ``delta``: one raw value per validated SpliceAI target (``DS_AG``, ``DS_AL``, ``DS_DG``,
  ``DS_DL`` by default); the prediction is ``sigmoid(raw)`` because delta scores lie in [0, 1];
- task ``binary``: one logit for Splice-altering vs Normal; the probability is ``sigmoid(logit)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

DS_TARGETS: tuple[str, ...] = ("DS_AG", "DS_AL", "DS_DG", "DS_DL")
TASKS: tuple[str, ...] = ("delta", "binary")
N_TOKEN = 4  # token value of N; it one-hot encodes to all zeros


def check_task(task: str, targets: tuple[str, ...]) -> None:
    """Validate a (task, targets) pair; raise ValueError naming the allowed values."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    if task == "delta":
        if not targets:
            raise ValueError(f"task 'delta' needs at least one target out of {', '.join(DS_TARGETS)}")
        unknown = [t for t in targets if t not in DS_TARGETS]
        if unknown:
            raise ValueError(f"unknown delta targets {unknown}; known targets: {', '.join(DS_TARGETS)}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"duplicate delta targets in {list(targets)}")


def output_names(task: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the model outputs: the target names for ``delta``, ``('splice_altering',)`` for ``binary``."""
    return tuple(targets) if task == "delta" else ("splice_altering",)


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
