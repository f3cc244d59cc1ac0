"""Gated dilated residual CNN over the ref and alt windows (every task of :mod:`.common`).

    ref, alt (B, L) tokens ──one-hot──> shared GatedDilatedEncoder ──> h_ref, h_alt (B, H, L)
    fuse: 1x1 conv [h_alt, h_alt - h_ref] -> H, one gated block         (B, H, L)
    read-out: the variant's centre positions (L//2 ± centre_flank, flattened)
              + attention pooling over the whole window (attention_heads x H)
    head: MLP -> one output per target (task ``delta``) or one logit (task ``binary``), one logit per
          effect class (``effect_type``), quantiles per target (``quantile``)
    offset head (``localisation``; ``multitask`` adds it to the binary, effect-type and delta outputs
          of the MLP): position-wise MLP on the fused map at L//2 ± distance -> one logit per offset

The encoder is shared by ref and alt (one pass over a 2B batch), so the fused map sees what the
variant changes at every position; the read-out keeps the variant position instead of averaging it
away. Layer i uses dilation ``dilation_cycle[i % len(dilation_cycle)]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from metasplice.base_models.spliceai.scoring import DEFAULT_DISTANCE
from metasplice.models.common import (
    DS_TARGETS,
    AttentionPool,
    GatedDilatedEncoder,
    GatedResidualBlock,
    MLPHead,
    OffsetHead,
    check_task,
    check_task_options,
    check_tokens,
    one_hot,
    output_layout,
    output_names,
)


@dataclass
class GatedCNNConfig:
    """Hyper-parameters of :class:`GatedCNN` (saved inside every checkpoint)."""

    task: str = "delta"  # delta | binary | effect_type | localisation | quantile | multitask
    targets: tuple[str, ...] = DS_TARGETS  # delta targets (validated SpliceAI delta scores)
    context: int = 401  # window length L; the variant sits at L // 2
    hidden: int = 128  # channels
    layers: int = 6  # gated residual blocks in the encoder
    kernel_size: int = 9
    dilation_cycle: tuple[int, ...] = (1, 2, 4, 8, 16)
    dropout: float = 0.1
    centre_flank: int = 2  # positions read out on each side of the variant
    attention_heads: int = 4
    # task options (each used by the tasks named in metasplice.models.common.TASK_OPTIONS)
    complex_fraction: float = 0.5  # effect type "complex" when a 2nd DS >= this x the largest
    min_effect_score: float = 0.0  # Splice-altering rows whose largest DS <= this get no class/offset
    class_weighting: str = "none"  # none | balanced: cross-entropy weights of the effect classes
    distance: int = DEFAULT_DISTANCE  # localisation offsets -distance .. distance (<= context // 2)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # quantile levels (strictly increasing, in (0, 1))
    loss_weights: dict[str, float] | None = None  # multitask weight per head (binary, effect_type,
    #                                                delta, localisation); a missing head weighs 1

    def __post_init__(self) -> None:
        check_task(self.task, self.targets)
        for name in ("context", "hidden", "layers", "kernel_size", "attention_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred convolutions), got {self.kernel_size}")
        if not self.dilation_cycle or min(self.dilation_cycle) < 1:
            raise ValueError(f"dilation_cycle must be non-empty positive integers, got {self.dilation_cycle}")
        if not 0 <= self.centre_flank <= self.context // 2:
            raise ValueError(f"centre_flank must be in [0, context // 2], got {self.centre_flank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_task_options(self)

    @property
    def dilations(self) -> tuple[int, ...]:
        return tuple(self.dilation_cycle[i % len(self.dilation_cycle)] for i in range(self.layers))

    @property
    def receptive_field(self) -> int:
        """Receptive field of the encoder in nucleotides (stem + blocks)."""
        return self.kernel_size + sum((self.kernel_size - 1) * d for d in self.dilations)


class GatedCNN(nn.Module):
    """Siamese gated dilated CNN; forward(ref, alt) -> raw outputs (B, n_outputs)."""

    architecture: ClassVar[str] = "gated_cnn"

    def __init__(self, config: GatedCNNConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.encoder = GatedDilatedEncoder(h, config.dilations, config.kernel_size, config.dropout)
        self.fuse = nn.Sequential(nn.Conv1d(2 * h, h, 1), nn.GELU(), GatedResidualBlock(h, 3, 1, config.dropout))
        self.pool = AttentionPool(h, config.attention_heads)
        n_features = h * (2 * config.centre_flank + 1) + h * config.attention_heads
        layout = output_layout(config)
        n_pooled = sum(len(names) for head, names in layout.items() if head != "localisation")
        self.head = MLPHead(n_features, h, n_pooled, config.dropout) if n_pooled else None
        if "localisation" in layout:  # the last head of the outputs
            self.offset_head = OffsetHead(h, n_features, config.distance, config.dropout)

    @property
    def output_names(self) -> tuple[str, ...]:
        return output_names(self.config.task, self.config.targets, self.config)

    def forward(self, ref: torch.Tensor, alt: torch.Tensor) -> torch.Tensor:
        check_tokens(ref, alt, self.config.context)
        h_ref, h_alt = self.encoder(one_hot(torch.cat([ref, alt]))).chunk(2)
        z = self.fuse(torch.cat([h_alt, h_alt - h_ref], dim=1))
        c, f = self.config.context // 2, self.config.centre_flank
        features = torch.cat([z[:, :, c - f : c + f + 1].flatten(1), self.pool(z)], dim=1)
        if not hasattr(self, "offset_head"):
            return self.head(features)
        offsets = self.offset_head(z, features)
        return offsets if self.head is None else torch.cat([self.head(features), offsets], dim=1)

    def param_groups(self, lr: float) -> list[dict]:
        """One optimiser group holding every parameter."""
        return [{"name": "model", "params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]
