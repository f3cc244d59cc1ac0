"""OpenSpliceAI checkpoints (PyTorch state dicts) as :class:`~.model.SpliceNet` members.

OpenSpliceAI (Chao et al. 2025, ``pip install openspliceai``) reimplements SpliceAI in PyTorch:
the same residual graph with LeakyReLU(0.1) activations and ``nn.BatchNorm1d`` (eps 1e-5). Its
released models (``model_{80,400,2000,10000}nt_rs*.pt``, several seeds per flanking size, used as
an ensemble) are state dicts of ``openspliceai.train_base.openspliceai.SpliceAI`` with the keys
``initial_conv``, ``initial_skip.conv``, ``residual_units.{i}`` (a ``Skip`` after every fourth
residual unit, so skips sit at indices 4, 9, 14, 19) and ``final_conv``. The flanking size picks
how many of the four groups (k, d) = (11, 1), (11, 4), (21, 10), (41, 25) the network has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from metasplice.base_models.spliceai.model import GROUPS, UNITS_PER_GROUP, Ensemble, SpliceNet, fold_batchnorm

FLANKING_GROUPS = {80: 1, 400: 2, 2000: 3, 10000: 4}
LEAKY_SLOPE = 0.1
BN_EPS = 1e-5


def _state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"OpenSpliceAI checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickled module or a damaged file
        raise ValueError(
            f"{path}: not a PyTorch state dict that can be loaded safely ({exc}); OpenSpliceAI "
            "checkpoints are saved with torch.save(model.state_dict(), path)"
        ) from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def from_state_dict(state: Mapping[str, torch.Tensor], flanking_size: int = 10000, where: str = "") -> SpliceNet:
    """Build a :class:`SpliceNet` (LeakyReLU 0.1, folded BN) from an OpenSpliceAI state dict."""
    if flanking_size not in FLANKING_GROUPS:
        raise ValueError(f"flanking size must be one of {sorted(FLANKING_GROUPS)}, got {flanking_size}")
    groups = GROUPS[: FLANKING_GROUPS[flanking_size]]
    net = SpliceNet(groups=groups, negative_slope=LEAKY_SLOPE)
    n_units = len(net.units)
    expected_skip_keys = [
        f"residual_units.{(u + 1) * (UNITS_PER_GROUP + 1) - 1}.conv.weight" for u in range(len(groups))
    ]
    missing = [k for k in ["initial_conv.weight", "final_conv.weight", *expected_skip_keys] if k not in state]
    extra_unit = f"residual_units.{n_units + len(groups)}.conv1.weight"
    if missing or extra_unit in state:
        raise ValueError(
            f"{where or 'state dict'}: not an OpenSpliceAI {flanking_size}nt checkpoint "
            f"(missing {missing[:3]}{' ...' if len(missing) > 3 else ''}"
            f"{'; has more residual units' if extra_unit in state else ''}); check --flanking-size"
        )

    def conv(module: torch.nn.Conv1d, key: str) -> None:
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

    conv(net.stem, "initial_conv")
    conv(net.skips[0], "initial_skip.conv")
    conv(net.head, "final_conv")
    index = 0
    for u, unit in enumerate(net.units):
        key = f"residual_units.{index}"
        bn(unit.bn1, f"{key}.batchnorm1")
        bn(unit.bn2, f"{key}.batchnorm2")
        conv(unit.conv1, f"{key}.conv1")
        conv(unit.conv2, f"{key}.conv2")
        index += 1
        if (u + 1) % UNITS_PER_GROUP == 0:
            conv(net.skips[(u + 1) // UNITS_PER_GROUP], f"residual_units.{index}.conv")
            index += 1
    return net.eval()


def load_openspliceai_ensemble(paths: Sequence[str | Path], flanking_size: int = 10000) -> Ensemble:
    """Ensemble (mean of softmax outputs) of OpenSpliceAI checkpoints given as file paths."""
    if not paths:
        raise ValueError(
            "OpenSpliceAI needs checkpoint paths (base_models.<name>.weights): the released "
            "model_10000nt_rs*.pt files; the openspliceai package ships no weights"
        )
    with torch.no_grad():
        members = [from_state_dict(_state_dict(p), flanking_size, where=str(p)) for p in paths]
    return Ensemble(members, name="openspliceai").eval()
