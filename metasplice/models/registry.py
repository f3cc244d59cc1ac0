"""Architecture table, model construction and the model checkpoint file (``model.pt``).

A checkpoint is a plain dict readable with ``torch.load(..., weights_only=True)``:

    format        "metasplice-model/1"
    architecture  name in ARCHITECTURES
    model_config  the model's dataclass fields (rebuilds the model)
    train_config  the training config fields (or None)
    output_names  names of the model outputs (targets, or "splice_altering")
    state_dict    weights (the restored best epoch for trained models)
    info          training summary (best epoch, metrics, sample counts, versions)

``load_model(path)`` rebuilds the model from the file alone; a Hugging Face encoder also needs the
snapshot (or hub id) recorded in its ``model_path`` for its code, config and tokenizer (its weights
come from the checkpoint).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metasplice.models.common import config_from_dict

FORMAT = "metasplice-model/1"
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "gated_cnn": ("metasplice.models.gated_cnn", "GatedCNNConfig", "GatedCNN"),
    "long_cnn": ("metasplice.models.long_cnn", "LongCNNConfig", "LongContextCNN"),
    "hf_encoder": ("metasplice.models.hf_encoder", "HFEncoderConfig", "HFEncoderModel"),
}


def architecture(name: str) -> tuple[type, type]:
    """(config class, model class) of architecture ``name``; ValueError listing the known ones."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(ARCHITECTURES))}")
    module, config_cls, model_cls = ARCHITECTURES[name]
    mod = importlib.import_module(module)
    return getattr(mod, config_cls), getattr(mod, model_cls)


def config_fields(name: str) -> tuple[str, ...]:
    """Field names of the config dataclass of architecture ``name``."""
    return tuple(f.name for f in dataclasses.fields(architecture(name)[0]))


def model_config(name: str, values: Mapping[str, Any]) -> Any:
    """The config dataclass of architecture ``name`` built from ``values`` (validated)."""
    return config_from_dict(architecture(name)[0], values)


def build_model(name: str, config: Any, pretrained: bool = True) -> nn.Module:
    """Instantiate architecture ``name``; ``pretrained=False`` skips loading foundation-model weights."""
    config_cls, model_cls = architecture(name)
    if not isinstance(config, config_cls):
        raise TypeError(f"model {name!r} needs a {config_cls.__name__}, got {type(config).__name__}")
    if getattr(model_cls, "has_pretrained_weights", False):
        return model_cls(config, pretrained=pretrained)
    return model_cls(config)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the target directory, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    train_config: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` (architecture, config, weights) plus training config and summary to ``path``."""
    checkpoint = {
        "format": FORMAT,
        "architecture": model.architecture,
        "model_config": dataclasses.asdict(model.config),
        "train_config": dict(train_config) if train_config is not None else None,
        "output_names": list(model.output_names),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "info": dict(info or {}),
    }
    atomic_torch_save(checkpoint, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict of ``path`` (tensors on CPU); ValueError when it is not a model checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a truncated or corrupt file: torch raises RuntimeError, EOFError, UnpicklingError...
        raise ValueError(
            f"model checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "it is damaged or incomplete: copy it again or retrain"
        ) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a metasplice model checkpoint (expected format {FORMAT})")
    return checkpoint


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", model_path: str | None = None) -> nn.Module:
    """Rebuild the model saved at ``path`` in eval mode on ``device``.

    ``model_path`` replaces the recorded Hugging Face snapshot location (when it has moved).
    """
    checkpoint = load_checkpoint(path)
    try:
        values = dict(checkpoint["model_config"])
        name = checkpoint["architecture"]
        state = checkpoint["state_dict"]
    except KeyError as exc:
        raise ValueError(f"model checkpoint {path} has no {exc.args[0]!r} entry; it is damaged: retrain") from None
    if model_path is not None:
        values["model_path"] = model_path
    model = build_model(name, model_config(name, values), pretrained=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"model checkpoint {path}: its weights do not fit its {name} architecture ({str(exc).splitlines()[0]}); "
            "it is damaged: retrain"
        ) from exc
    return model.to(device).eval()
