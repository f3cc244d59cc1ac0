"""SpliceAI-10k (and OpenSpliceAI) networks in PyTorch.

The graph (Jaganathan et al. 2019, as stored in ``spliceai1..5.h5``): a 1x1 stem, 16 pre-activation
residual units in four groups (k=11 d=1, k=11 d=4, k=21 d=10, k=41 d=25), a 1x1 skip convolution
after the stem and after every group summed into a skip accumulator, a crop of 5000 positions on each
side and a 1x1 head with one softmax over the channels [neither, acceptor, donor].
Weights are read with h5py; TensorFlow is never imported.

OpenSpliceAI (Chao et al. 2025) uses the same graph with LeakyReLU(0.1) instead of ReLU and PyTorch
batch normalisation (eps 1e-5); :class:`SpliceNet` covers both through ``negative_slope``, and
batch normalisation is folded into a per-channel scale and shift at load time.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = ("neither", "acceptor", "donor")
FLANK = 5000  # context on each side of every output position (SpliceAI-10k)
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
    """Pre-activation residual unit: h + conv(act(bn(conv(act(bn(h))))))."""

    def __init__(self, kernel: int, dilation: int, width: int = WIDTH, negative_slope: float = 0.0) -> None:
        super().__init__()
        pad = (kernel - 1) // 2 * dilation
        self.kernel, self.dilation, self.negative_slope = kernel, dilation, negative_slope
        self.bn1, self.bn2 = Affine(width), Affine(width)
        self.conv1 = nn.Conv1d(width, width, kernel, dilation=dilation, padding=pad)
        self.conv2 = nn.Conv1d(width, width, kernel, dilation=dilation, padding=pad)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.negative_slope == 0.0 else F.leaky_relu(x, self.negative_slope)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.conv1(self.act(self.bn1(h)))
        return h + self.conv2(self.act(self.bn2(r)))


class SpliceNet(nn.Module):
    """One SpliceAI-style network. Input (B, 4, L) one-hot ACGT (N = zeros); output (B, outputs, L - context)
    softmax probabilities (SpliceAI: [neither, acceptor, donor]; Pangolin: a tissue's [not, splice site]). ``context`` = 2 * sum((k - 1) * d) over the units."""

    def __init__(
        self,
        groups: Sequence[tuple[int, int]] = GROUPS,
        width: int = WIDTH,
        negative_slope: float = 0.0,
        units_per_group: int = UNITS_PER_GROUP,
        outputs: int = len(CHANNELS),
    ) -> None:
        super().__init__()
        self.groups = tuple(tuple(g) for g in groups)
        self.units_per_group = units_per_group
        self.negative_slope = negative_slope
        self.stem = nn.Conv1d(4, width, 1)
        self.units = nn.ModuleList(
            ResidualUnit(k, d, width, negative_slope) for k, d in self.groups for _ in range(units_per_group)
        )
        self.skips = nn.ModuleList(nn.Conv1d(width, width, 1) for _ in range(len(self.groups) + 1))
        self.head = nn.Conv1d(width, outputs, 1)  # SpliceAI: [neither, acceptor, donor]
        self.flank = sum((k - 1) * d for k, d in self.groups) * units_per_group

    @property
    def context(self) -> int:
        """Input positions consumed: the output is ``context`` shorter than the input."""
        return 2 * self.flank

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skip = self.skips[0](h)
        for i, unit in enumerate(self.units):
            h = unit(h)
            if (i + 1) % self.units_per_group == 0:
                skip = skip + self.skips[(i + 1) // self.units_per_group](h)
        return self.head(skip[:, :, self.flank : skip.shape[-1] - self.flank])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


SpliceAI = SpliceNet  # the SpliceAI-10k defaults


class Ensemble(nn.Module):
    """Mean of the member networks' softmax outputs (the official five-model average).

    The members' outputs are summed in order in float32 and divided by their number, as
    ``numpy.mean`` does on the stacked outputs in the SpliceAI CLI.
    """

    def __init__(self, members: Sequence[SpliceNet], name: str = "spliceai") -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.name = name
        contexts = {m.context for m in members}
        if len(contexts) != 1:
            raise ValueError(f"ensemble members have different context lengths: {sorted(contexts)}")
        self.context = contexts.pop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x)
        for m in self.members[1:]:
            total = total + m(x)
        return total / len(self.members)


def _trace_keras_graph(config: dict) -> dict[str, list[str]]:
    """Return layer names by role (stem, units' BN/conv pairs, skips in order, head) from the graph."""
    layers = config["config"]["layers"]
    order = {layer["name"]: i for i, layer in enumerate(layers)}
    inbound = {
        layer["name"]: [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [] for layer in layers
    }
    convs = [l for l in layers if l["class_name"] == "Conv1D"]
    wide = [l["name"] for l in convs if l["config"]["kernel_size"][0] > 1]
    bns = [l["name"] for l in layers if l["class_name"] == "BatchNormalization"]
    head = [l["name"] for l in convs if l["config"]["filters"] == 3]
    stem = [l["name"] for l in convs if inbound[l["name"]] == [layers[0]["name"]]]
    pointwise = [l["name"] for l in convs if l["config"]["kernel_size"][0] == 1 and l["name"] not in head + stem]
    skips = sorted(pointwise, key=lambda n: order[inbound[n][0]])
    n_units = len(GROUPS) * UNITS_PER_GROUP
    if len(stem) != 1 or len(head) != 1 or len(skips) != len(GROUPS) + 1 or len(wide) != 2 * n_units:
        raise ValueError("the Keras file does not hold the SpliceAI-10k graph")
    return {"stem": stem, "head": head, "skips": skips, "convs": wide, "bns": bns}


def _copy_conv(conv: nn.Conv1d, group: h5py.Group) -> None:
    kernel = np.asarray(group["kernel:0"])  # (k, C_in, C_out)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0)))
    conv.bias.data = torch.from_numpy(np.asarray(group["bias:0"]))


def fold_batchnorm(
    affine: Affine, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> None:
    """Set ``affine`` to gamma * (x - mean) / sqrt(var + eps) + beta (computed in float32)."""
    gamma, beta, mean, var = (np.asarray(a, dtype=np.float32) for a in (gamma, beta, mean, var))
    scale = gamma / np.sqrt(var + np.float32(eps))
    affine.scale.data = torch.from_numpy(scale.astype(np.float32))
    affine.shift.data = torch.from_numpy((beta - mean * scale).astype(np.float32))


def _copy_bn(affine: Affine, group: h5py.Group) -> None:
    fold_batchnorm(
        affine,
        np.asarray(group["gamma:0"]),
        np.asarray(group["beta:0"]),
        np.asarray(group["moving_mean:0"]),
        np.asarray(group["moving_variance:0"]),
        BN_EPS,
    )


def load_keras_h5(path: str | Path) -> SpliceNet:
    """Build one SpliceAI-10k :class:`SpliceNet` from an official ``spliceaiN.h5`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SpliceAI weight file not found: {path}")
    with h5py.File(path, "r") as f:
        roles = _trace_keras_graph(json.loads(f.attrs["model_config"]))
        weights = f["model_weights"]

        def group(name: str) -> h5py.Group:
            return weights[name][name]

        model = SpliceNet()
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
    with torch.no_grad():
        return Ensemble([load_keras_h5(p) for p in resolved], name="spliceai").eval()
