"""SpliceAI-10k in PyTorch, built from the official Keras weight files.

The graph (Jaganathan et al. 2019, as stored in ``spliceai1..5.h5``): a 1x1 stem, 16 pre-activation
residual units in four groups (k=11 d=1, k=11 d=4, k=21 d=10, k=41 d=25), a 1x1 skip convolution
after the stem and after every group summed into a skip accumulator, a crop of 5000 positions on each
side and a 1x1 head with one softmax over the channels [neither, acceptor, donor].
Weights are read with h5py; TensorFlow is never imported.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = ("neither", "acceptor", "donor")
FLANK = 5000  # context on each side of every output position
GROUPS: tuple[tuple[int, int], ...] = ((11, 1), (11, 4), (21, 10), (41, 25))  # (kernel, dilation)
UNITS_PER_GROUP = 4
BN_EPS = 1e-3
WIDTH = 32


def official_weight_paths() -> list[Path]:
    """Paths of ``spliceai1..5.h5`` shipped by the installed ``spliceai`` package (not imported)."""
    spec = importlib.util.find_spec("spliceai")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'spliceai' package is not installed; `pip install spliceai==1.3.1` ships the "
            "SpliceAI weights (CC BY-NC 4.0), or give the .h5 paths in config (base_models.spliceai.weights)"
        )
    models = Path(spec.submodule_search_locations[0]) / "models"
    paths = [models / f"spliceai{i}.h5" for i in range(1, 6)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"SpliceAI weight files missing from the spliceai package: {missing}")
    return paths


class Affine(nn.Module):
    """Inference-mode batch normalisation folded into a per-channel scale and shift."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None] + self.shift[:, None]


class ResidualUnit(nn.Module):
    """Pre-activation residual unit: h + conv(relu(bn(conv(relu(bn(h))))))."""

    def __init__(self, kernel: int, dilation: int, width: int = WIDTH) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.bn1, self.bn2 = Affine(width), Affine(width)
        self.conv1 = nn.Conv1d(width, width, kernel, dilation=dilation, padding=pad)
        self.conv2 = nn.Conv1d(width, width, kernel, dilation=dilation, padding=pad)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.conv1(F.relu(self.bn1(h)))
        return h + self.conv2(F.relu(self.bn2(r)))


class SpliceAI(nn.Module):
    """One SpliceAI-10k network. Input (B, 4, L) one-hot ACGT; output (B, 3, L - 10000) probabilities."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.stem = nn.Conv1d(4, width, 1)
        self.units = nn.ModuleList(
            ResidualUnit(k, d, width) for k, d in GROUPS for _ in range(UNITS_PER_GROUP)
        )
        self.skips = nn.ModuleList(nn.Conv1d(width, width, 1) for _ in range(len(GROUPS) + 1))
        self.head = nn.Conv1d(width, 3, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skip = self.skips[0](h)
        for i, unit in enumerate(self.units):
            h = unit(h)
            if (i + 1) % UNITS_PER_GROUP == 0:
                skip = skip + self.skips[(i + 1) // UNITS_PER_GROUP](h)
        return self.head(skip[:, :, FLANK : skip.shape[-1] - FLANK])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


class Ensemble(nn.Module):
    """Mean of the member networks' softmax outputs (the official five-model average)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def _trace_keras_graph(config: dict) -> dict[str, list[str]]:
    """Return layer names by role (stem, units' BN/conv pairs, skips in order, head) from the graph."""
    layers = config["config"]["layers"]
    order = {layer["name"]: i for i, layer in enumerate(layers)}
    inbound = {
        layer["name"]: [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        for layer in layers
    }
    convs = [l for l in layers if l["class_name"] == "Conv1D"]
    wide = [l["name"] for l in convs if l["config"]["kernel_size"][0] > 1]
    bns = [l["name"] for l in layers if l["class_name"] == "BatchNormalization"]
    head = [l["name"] for l in convs if l["config"]["filters"] == 3]
    stem = [l["name"] for l in convs if inbound[l["name"]] == [layers[0]["name"]]]
    pointwise = [
        l["name"]
        for l in convs
        if l["config"]["kernel_size"][0] == 1 and l["name"] not in head + stem
    ]
    skips = sorted(pointwise, key=lambda n: order[inbound[n][0]])
    n_units = len(GROUPS) * UNITS_PER_GROUP
    if len(stem) != 1 or len(head) != 1 or len(skips) != len(GROUPS) + 1 or len(wide) != 2 * n_units:
        raise ValueError("the Keras file does not hold the SpliceAI-10k graph")
    return {"stem": stem, "head": head, "skips": skips, "convs": wide, "bns": bns}


def _copy_conv(conv: nn.Conv1d, group: h5py.Group) -> None:
    kernel = np.asarray(group["kernel:0"])  # (k, C_in, C_out)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0)))
    conv.bias.data = torch.from_numpy(np.asarray(group["bias:0"]))


def _copy_bn(affine: Affine, group: h5py.Group) -> None:
    gamma, beta = np.asarray(group["gamma:0"]), np.asarray(group["beta:0"])
    mean, var = np.asarray(group["moving_mean:0"]), np.asarray(group["moving_variance:0"])
    scale = gamma / np.sqrt(var + np.float32(BN_EPS))
    affine.scale.data = torch.from_numpy(scale.astype(np.float32))
    affine.shift.data = torch.from_numpy((beta - mean * scale).astype(np.float32))


def load_keras_h5(path: str | Path) -> SpliceAI:
    """Build one :class:`SpliceAI` from an official ``spliceaiN.h5`` file."""
    with h5py.File(path, "r") as f:
        roles = _trace_keras_graph(json.loads(f.attrs["model_config"]))
        weights = f["model_weights"]

        def group(name: str) -> h5py.Group:
            return weights[name][name]

        model = SpliceAI()
        _copy_conv(model.stem, group(roles["stem"][0]))
        _copy_conv(model.head, group(roles["head"][0]))
        for conv, name in zip(model.skips, roles["skips"]):
            _copy_conv(conv, group(name))
        for i, unit in enumerate(model.units):
            _copy_bn(unit.bn1, group(roles["bns"][2 * i]))
            _copy_bn(unit.bn2, group(roles["bns"][2 * i + 1]))
            _copy_conv(unit.conv1, group(roles["convs"][2 * i]))
            _copy_conv(unit.conv2, group(roles["convs"][2 * i + 1]))
    return model.eval()


@dataclass(frozen=True)
class SpliceAIWeights:
    """Where the five networks come from: explicit paths, or the installed spliceai package."""

    paths: tuple[str, ...] = ()

    def resolve(self) -> list[Path]:
        return [Path(p) for p in self.paths] if self.paths else official_weight_paths()


def load_spliceai_ensemble(paths: Sequence[str | Path] | None = None) -> Ensemble:
    """The five-model SpliceAI ensemble in eval mode (weights from ``paths`` or the spliceai package)."""
    resolved = SpliceAIWeights(tuple(str(p) for p in paths or ())).resolve()
    return Ensemble([load_keras_h5(p) for p in resolved]).eval()
