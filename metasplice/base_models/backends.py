"""Choosing and loading a base model, and building the backend that runs it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metasplice.base_models.spliceai.model import Ensemble, load_spliceai_ensemble

KINDS = ("spliceai", "openspliceai", "pangolin")
PER_MEMBER_KINDS = ("pangolin",)  # scored from each network's outputs (per-tissue means of replicates)
ENGINES = ("incremental", "windowed")


@dataclass(frozen=True)
class BaseModelSpec:
    """Which network and weights: ``kind`` spliceai (Keras .h5, default: the installed spliceai
    package's five files), openspliceai (PyTorch state dicts, paths required) or pangolin (the 12
    official state dicts: their folder, or the 12 paths in the official order)."""

    kind: str = "spliceai"
    weights: tuple[str, ...] = ()
    flanking_size: int = 10000  # OpenSpliceAI checkpoints: 80, 400, 2000 or 10000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"base model kind must be one of {KINDS}, got {self.kind!r}")


def load_base_model(spec: BaseModelSpec) -> Ensemble:
    """The ensemble described by ``spec`` in eval mode on the CPU."""
    if spec.kind == "spliceai":
        return load_spliceai_ensemble(spec.weights or None)
    if spec.kind == "pangolin":
        from metasplice.base_models.pangolin.model import load_pangolin

        if not spec.weights:
            raise ValueError("Pangolin needs its weights: the folder holding the 12 final.*.*.3.v2 state dicts")
        return load_pangolin(spec.weights[0] if len(spec.weights) == 1 else spec.weights)
    from metasplice.base_models.openspliceai import load_openspliceai_ensemble

    return load_openspliceai_ensemble(spec.weights, flanking_size=spec.flanking_size)


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> cuda if available else cpu; otherwise the named device (checked)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


@dataclass(frozen=True)
class EngineSpec:
    """How to run it: engine (incremental = fast, windowed = the plain oracle), device, batch size
    (alt alleles per batch) and precision (fp32; bf16/fp16 autocast on CUDA only)."""

    engine: str = "incremental"
    device: str = "auto"
    batch_size: int | None = None  # alt alleles per batch; None: 32 on CPU, 256 on CUDA
    precision: str = "fp32"
    threads: int | None = None
    reference: str | None = None  # incremental engine's reference pass: pyramid (CPU default) or segment (CUDA)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")


def make_backend(model: Ensemble, spec: EngineSpec):
    """The prediction backend for ``model`` (see :mod:`.engine` and :mod:`.windowed`)."""
    if spec.threads:
        torch.set_num_threads(int(spec.threads))
    device = resolve_device(spec.device)
    if spec.engine == "windowed":
        from metasplice.base_models.windowed import WindowedBackend

        return WindowedBackend(model, device=device, batch_size=spec.batch_size or 8)
    from metasplice.base_models.engine import IncrementalBackend

    return IncrementalBackend(
        model,
        device=device,
        batch_size=spec.batch_size,
        precision=spec.precision,
        reference=spec.reference,
        per_member=model.name in PER_MEMBER_KINDS,
    )
