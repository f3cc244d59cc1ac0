"""Experiment registry: config.yaml's ``training:`` and ``experiments:`` sections -> model + training configs.

An experiment is a flat mapping. Its keys are

- ``model``: architecture name (``gated_cnn``, ``long_cnn``, ``hf_encoder``);
- any field of that architecture's config dataclass (``task``, ``context``, ``hidden``, ``layers``,
  ``model_path``, ``finetune_layers``, ...);
- any :class:`metasplice.training.train.TrainConfig` field (``epochs``, ``batch_size``, ``lr``, ``max_samples``, ...);
- ``base`` (base model whose validated targets a delta model learns), ``gpu`` (GPUs the job declares
  as a Snakemake resource), ``threads``, ``description``;
- ``demo``: a mapping of the same keys applied on top when the pipeline runs the demo dataset.

``training:`` gives defaults for the TrainConfig fields and for ``base``, ``gpu`` and ``threads``, and
may hold its own ``demo`` overrides. Precedence: dataclass defaults < ``training`` < ``training.demo``
(demo runs only) < experiment < experiment ``demo`` (demo runs only).
Every unknown key, unknown model, context that is not extracted, or foundation model without
``model_path`` is an error naming the experiment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metasplice.models import model_config as build_model_config
from metasplice.models.registry import ARCHITECTURES, config_fields
from metasplice.training.train import TrainConfig

EXPERIMENT_KEYS = ("model", "base", "gpu", "threads", "description", "demo")
TRAINING_EXTRA_KEYS = ("base", "gpu", "threads")
TRAINING_DEFAULTS = {"base": "spliceai", "gpu": 0, "threads": 2}
TINY_HF_MODEL = "resources/hf_models/tiny_char_bert"  # built by the pipeline (rule build_tiny_hf_model)
# experiment kinds built from other experiments' outputs instead of trained by metasplice.training.train
META_MODELS = ("stacked", "ensemble")


def experiment_kind(spec: Mapping[str, Any] | None) -> str:
    """``"trained"`` for a model trained by metasplice.training.train, else the meta-model kind (``stacked``,
    ``ensemble``)."""
    model = (spec or {}).get("model")
    return model if model in META_MODELS else "trained"


def trained_experiments(experiments: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Names of the experiments trained by metasplice.training.train (meta-models left out), in config order."""
    return [name for name, spec in experiments.items() if experiment_kind(spec) == "trained"]


@dataclass(frozen=True)
class Experiment:
    """A resolved experiment: what to build, how to train it, what it needs."""

    name: str
    architecture: str
    model_config: Any
    train_config: TrainConfig
    base: str
    gpu: int
    threads: int
    description: str = ""

    @property
    def context(self) -> int:
        return self.model_config.context

    @property
    def task(self) -> str:
        return self.model_config.task

    def to_dict(self) -> dict:
        """Plain-type form (Snakemake params, logs); :func:`experiment_from_dict` reverses it."""
        return {
            "name": self.name,
            "model": self.architecture,
            "model_config": dataclasses.asdict(self.model_config),
            "train_config": dataclasses.asdict(self.train_config),
            "base": self.base,
            "gpu": self.gpu,
            "threads": self.threads,
            "description": self.description,
        }


def experiment_from_dict(values: Mapping[str, Any]) -> Experiment:
    """Rebuild an :class:`Experiment` from :meth:`Experiment.to_dict` output."""
    return Experiment(
        name=values["name"],
        architecture=values["model"],
        model_config=build_model_config(values["model"], dict(values["model_config"])),
        train_config=TrainConfig(**values["train_config"]),
        base=values["base"],
        gpu=int(values["gpu"]),
        threads=int(values["threads"]),
        description=values.get("description", ""),
    )


def resolve_experiment(
    name: str,
    experiments: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any] | None = None,
    contexts: Sequence[int] | None = None,
    demo: bool = False,
) -> Experiment:
    """Validate and build experiment ``name``; ``contexts`` are the extracted window lengths."""
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; configured experiments: {', '.join(sorted(experiments))}")
    kind = experiment_kind(experiments[name])
    if kind != "trained":
        raise ValueError(
            f"experiment {name!r} is a {kind} meta-model, built from other experiments, not trained "
            "by metasplice.training.train"
        )
    train_fields = tuple(f.name for f in dataclasses.fields(TrainConfig))
    training = dict(training or {})
    training_demo = training.pop("demo", None) or {}
    if not isinstance(training_demo, Mapping):
        raise ValueError(f"config 'training': 'demo' must be a mapping of overrides, got {training_demo!r}")
    if demo:
        training.update(training_demo)
    unknown = sorted(set(training) - set(train_fields) - set(TRAINING_EXTRA_KEYS))
    if unknown:
        raise ValueError(
            f"config 'training': unknown keys {unknown}; valid keys: "
            f"{', '.join(sorted(train_fields + TRAINING_EXTRA_KEYS))}"
        )
    spec = dict(experiments[name] or {})
    overrides = spec.pop("demo", None) or {}
    if not isinstance(overrides, Mapping):
        raise ValueError(f"experiment {name!r}: 'demo' must be a mapping of overrides, got {overrides!r}")
    if demo:
        spec.update(overrides)
    where = f"experiment {name!r}"
    architecture = spec.pop("model", None)
    if architecture is None:
        raise ValueError(f"{where}: no 'model'; known models: {', '.join(sorted(ARCHITECTURES))}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{where}: unknown model {architecture!r}; known models: {', '.join(sorted(ARCHITECTURES))}")
    model_fields = config_fields(architecture)
    unknown = sorted(set(spec) - set(model_fields) - set(train_fields) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {unknown}; valid keys for model {architecture!r}: "
            f"{', '.join(sorted(set(model_fields) | set(train_fields) | set(EXPERIMENT_KEYS)))}"
        )
    if "model_path" in model_fields and not spec.get("model_path"):
        raise ValueError(
            f"{where}: model {architecture!r} needs model_path (a Hugging Face hub id such as "
            "LongSafari/hyenadna-small-32k-seqlen-hf, or a local snapshot directory)"
        )
    extras = {**TRAINING_DEFAULTS, **{k: training[k] for k in TRAINING_EXTRA_KEYS if k in training}}
    extras.update({k: spec[k] for k in TRAINING_EXTRA_KEYS if k in spec})
    train_values = {k: v for k, v in training.items() if k in train_fields}
    train_values.update({k: v for k, v in spec.items() if k in train_fields})
    try:
        model_cfg = build_model_config(architecture, {k: v for k, v in spec.items() if k in model_fields})
        train_cfg = TrainConfig(**train_values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error
    if contexts is not None and model_cfg.context not in [int(c) for c in contexts]:
        raise ValueError(
            f"{where}: context {model_cfg.context} is not extracted; extracted contexts "
            f"(sequences.contexts): {sorted(int(c) for c in contexts)}; add it there or use one of them"
        )
    return Experiment(
        name=name,
        architecture=architecture,
        model_config=model_cfg,
        train_config=train_cfg,
        base=str(extras["base"]),
        gpu=int(extras["gpu"]),
        threads=int(extras["threads"]),
        description=str(spec.get("description", "")),
    )


def experiment_for(name: str, config: Mapping[str, Any]) -> Experiment:
    """Experiment ``name`` from a whole pipeline config (``experiments``, ``training``,
    ``sequences.contexts``; demo overrides when ``dataset`` is ``demo``; sweeps expanded)."""
    from metasplice.experiments.sweeps import expand_sweeps

    demo = config.get("dataset") == "demo"
    experiments = expand_sweeps(config.get("experiments") or {}, demo=demo)[0]
    return resolve_experiment(
        name,
        experiments,
        config.get("training") or {},
        contexts=(config.get("sequences") or {}).get("contexts"),
        demo=config.get("dataset") == "demo",
    )


def resolve_all(
    experiments: Mapping[str, Mapping[str, Any]],
    training: Mapping[str, Any] | None = None,
    contexts: Sequence[int] | None = None,
    demo: bool = False,
) -> dict[str, Experiment]:
    """Every configured trained experiment, resolved (the first invalid one raises); sweeps are
    expanded into their children, meta-models left out (see :func:`trained_experiments`)."""
    from metasplice.experiments.sweeps import expand_sweeps

    experiments = expand_sweeps(experiments, demo=demo)[0]
    return {
        name: resolve_experiment(name, experiments, training, contexts, demo)
        for name in trained_experiments(experiments)
    }
