"""Long-context (2001 nt) meta-model: the gated CNN of :mod:`metasplice.models.gated_cnn` (same tasks and
heads) made deeper and exponentially dilated so that every position of a 2001-nt window sees the whole window.

Defaults: hidden 256, 10 blocks, kernel 3, dilations 1, 2, 4, ..., 512. Receptive field
3 + 2 * (1 + 2 + ... + 512) = 2049 nt >= 2001, against 289 nt for the short default
(kernel 9, dilations 1..16 over 6 blocks). Small kernels keep the cost per block low at 2001
positions; the read-out (variant centre + attention pooling) is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metasplice.models.gated_cnn import GatedCNN, GatedCNNConfig


@dataclass
class LongCNNConfig(GatedCNNConfig):
    """:class:`GatedCNNConfig` with long-context defaults."""

    context: int = 2001
    hidden: int = 256
    layers: int = 10
    kernel_size: int = 3
    dilation_cycle: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class LongContextCNN(GatedCNN):
    """:class:`GatedCNN` built from a :class:`LongCNNConfig`."""

    architecture: ClassVar[str] = "long_cnn"

    def __init__(self, config: LongCNNConfig) -> None:
        super().__init__(config)
