"""The Pangolin network (Zeng & Li, Genome Biology 2022) on the shared SpliceNet trunk, and its 12 official weights.

Pangolin's trunk is the SpliceAI-10k trunk (32 channels, 16 pre-activation residual units with
kernels 11/11/21/41 and dilations 1/4/10/25, a 1x1 skip after every fourth unit, 5,000 nt cropped
on each side); its batch norms use PyTorch's epsilon (1e-5). Each official state dict
``final.{r}.{t}.3.v2`` (replicate r = 1..3, task t = 0, 2, 4, 6) carries eight heads; the command
line reads one channel of each: P(splice site) of tissue j = t / 2 (heart, liver, brain, testis), the
second channel of the two-way softmax head ``conv_last{t + 1}``. A :class:`SpliceNet` with that
head alone therefore gives exactly the probabilities the official tool uses (channel 1 of its
output). Weights: GPL-3.0, github tkzeng/Pangolin at commit 5cf94b8 (see :data:`WEIGHTS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from metasplice.base_models.spliceai.model import GROUPS, UNITS_PER_GROUP, Ensemble, SpliceNet, fold_batchnorm

TISSUES: tuple[str, ...] = ("heart", "liver", "brain", "testis")
REPLICATES: tuple[int, ...] = (1, 2, 3)
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, as the official model is built
SPLICE_CHANNEL = 1  # P(splice site): the second channel of each tissue's softmax head
COMMIT = "5cf94b8db938c658391b4305cd7ce33297d44ff7"  # github tkzeng/Pangolin, v1.0.2
URL = "https://raw.githubusercontent.com/tkzeng/Pangolin/{commit}/pangolin/models/{name}"


def weight_name(replicate: int, tissue: int) -> str:
    """File name of the official state dict of ``replicate`` (1..3) for tissue index 0..3."""
    return f"final.{replicate}.{2 * tissue}.3.v2"


# sha256 of the 12 state dicts the official command line loads (file name -> sum)
WEIGHTS: dict[str, str] = {
    "final.1.0.3.v2": "f0478fab173b75f7f7e9fe96688bad6c50fa4a46d70557f423b110caaf565501",
    "final.1.2.3.v2": "559c05de3e1ce65c2515ca3e92ef85edb0ec2e47686ca58060e25891ce06eb3a",
    "final.1.4.3.v2": "c50b12e0c0af776d5674ca5e346493f8265783494d4df383364de9c1136657f6",
    "final.1.6.3.v2": "2aae563fa18a8a9b6699c6c96e0d32b8ec7543f8f805fb3bc9de77302cc9f66e",
    "final.2.0.3.v2": "c4c6bb4880fa6fb28b14182ae3ea0600edb07056158f55325b5e6e6e48fc9f26",
    "final.2.2.3.v2": "48758ba8b95eee9aa9feea52672ef06ca1b34111299c27f8a710f734d8b9aae5",
    "final.2.4.3.v2": "e03303bed4fd6f135ec0f6c1b192cce954ea42d0646f44d17b4a6fbb2b1f610e",
    "final.2.6.3.v2": "7d3c0b1b2a60067b940dec315567874fbc8bcd322f1b7c76bf969f51f0f53f7f",
    "final.3.0.3.v2": "ec685a6e7105a4486c1f89a005458a13deb3fe7171f13d434f4877e386d10676",
    "final.3.2.3.v2": "7cb576c2b24db4fdd6970c4ca4fb7c20ae1b1d8ae80645ebbe689848b5743129",
    "final.3.4.3.v2": "9476d2e25520d7ff15bece0cd5d3b657e3b1dd3cc5fcab1d9c3b62bea7a0c5b6",
    "final.3.6.3.v2": "756e7721a382cace24e9bfea5b543af5623f2487d9a3efe7385e9c76367005fd",
}


@dataclass(frozen=True)
class PangolinWeights:
    """Where the 12 state dicts are: a folder holding ``final.{r}.{t}.3.v2``."""

    folder: str | Path

    def paths(self) -> list[Path]:
        """The 12 paths in the official order: tissue 0 replicates 1..3, tissue 1 ..., tissue 3."""
        root = Path(self.folder)
        paths = [root / weight_name(r, j) for j in range(len(TISSUES)) for r in REPLICATES]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{root}: Pangolin weights missing: {', '.join(missing)}. The pipeline's fetch_pangolin_weights rule "
                "downloads them (GPL-3.0, github tkzeng/Pangolin); or give the folder that holds them."
            )
        return paths


def _state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file or a pickled module
        raise ValueError(f"{path}: not a Pangolin state dict that can be loaded ({exc}); fetch it again") from exc
    if not isinstance(state, Mapping) or "conv1.weight" not in state:
        raise ValueError(f"{path}: not a Pangolin state dict (no conv1.weight)")
    return state


def from_state_dict(state: Mapping[str, torch.Tensor], tissue: int, where: str = "") -> SpliceNet:
    """One tissue's network: the shared trunk with that tissue's softmax head (two channels)."""
    net = SpliceNet(groups=GROUPS, outputs=2)
    head = f"conv_last{2 * tissue + 1}"

    def conv(module: torch.nn.Conv1d, key: str) -> None:
        if f"{key}.weight" not in state:
            raise ValueError(f"{where or 'state dict'}: {key}.weight missing; not a Pangolin model")
        w, b = state[f"{key}.weight"], state[f"{key}.bias"]
        if tuple(w.shape) != tuple(module.weight.shape):
            raise ValueError(f"{where}: {key}.weight has shape {tuple(w.shape)}, expected {tuple(module.weight.shape)}")
        module.weight.data = w.detach().float().clone()
        module.bias.data = b.detach().float().clone()

    def bn(affine, key: str) -> None:
        fold_batchnorm(
            affine,
            state[f"{key}.weight"].float().numpy(),
            state[f"{key}.bias"].float().numpy(),
            state[f"{key}.running_mean"].float().numpy(),
            state[f"{key}.running_var"].float().numpy(),
            BN_EPS,
        )

    conv(net.stem, "conv1")
    conv(net.skips[0], "skip")
    for u, unit in enumerate(net.units):
        bn(unit.bn1, f"resblocks.{u}.bn1")
        bn(unit.bn2, f"resblocks.{u}.bn2")
        conv(unit.conv1, f"resblocks.{u}.conv1")
        conv(unit.conv2, f"resblocks.{u}.conv2")
    for g in range(len(GROUPS)):
        conv(net.skips[g + 1], f"convs.{g}")
    conv(net.head, head)
    if len(net.units) != UNITS_PER_GROUP * len(GROUPS):
        raise AssertionError("unexpected trunk depth")
    return net.eval()


def load_pangolin(paths: Sequence[str | Path] | str | Path) -> Ensemble:
    """The 12 official networks as one :class:`Ensemble` in the official order (tissue-major).

    ``paths``: the folder holding ``final.{r}.{t}.3.v2``, or the 12 paths in that order. Run it with
    ``per_member`` outputs: members ``3j .. 3j + 2`` are tissue j's replicates.
    """
    if isinstance(paths, (str, Path)):
        paths = PangolinWeights(paths).paths()
    paths = [Path(p) for p in paths]
    if len(paths) != len(TISSUES) * len(REPLICATES):
        raise ValueError(f"Pangolin needs {len(TISSUES) * len(REPLICATES)} state dicts, got {len(paths)}")
    members = [from_state_dict(_state_dict(p), tissue=k // len(REPLICATES), where=str(p)) for k, p in enumerate(paths)]
    return Ensemble(members, name="pangolin")
