"""A trained meta-model ready to score rows: its base models, its members and the stacker or sequence model."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metasplice.base_models.spliceai.scoring import DEFAULT_DISTANCE

if TYPE_CHECKING:
    import pandas as pd

    from metasplice.base_models.spliceai.scoring import ScoreConfig
    from metasplice.data.annotation import RegionConfig
    from metasplice.data.genome import Genome
    from metasplice.experiments.stacking import StackedModel

log = logging.getLogger("metasplice.predict")


DEFAULT_BASE = "spliceai"


DEFAULT_SETTINGS: dict[str, Any] = {
    "kind": "spliceai",
    "weights": [],
    "flanking_size": 10000,
    "distance": DEFAULT_DISTANCE,
    "mask": 0,
}  # a base model's settings where nothing else is given (config.yaml's base_models defaults)


MEMBER_BATCH = 256


@dataclass
class BaseScorer:
    """One base model as the meta-model needs it: its backend and the settings it was trained with."""

    name: str
    settings: dict
    backend: Any
    config: ScoreConfig
    feature: bool  # its scores are stacking features (False: only the SpliceAI field)

    @property
    def kind(self) -> str:
        return str(self.settings.get("kind", "spliceai"))

    def describe(self) -> str:
        return f"{self.name} ({self.kind}, D={self.config.distance}, M={int(self.config.mask)})"


@dataclass
class Member:
    """A trained sequence model scoring the row's windows."""

    name: str
    model: Any
    context: int
    task: str
    output_names: tuple[str, ...]
    architecture: str


@dataclass
class Predictor:
    """A loaded model directory: base models, sequence models and (stacked) the learner over them."""

    directory: Path
    name: str
    kind: str  # "stacked" | "trained"
    bases: dict[str, BaseScorer]
    reference: str  # base model of the SpliceAI field
    members: dict[str, Member]
    strand_oriented: bool
    regions: RegionConfig
    stacked: StackedModel | None = None
    device: Any = "cpu"
    batch_size: int = MEMBER_BATCH

    def describe(self) -> str:
        """One line naming the model and what its probability is made of (no double quotes)."""
        if self.stacked is not None:
            cfg = self.stacked.config
            parts = [f"{b} scores" for b in cfg.bases]
            if cfg.annotation_features:
                parts.append("annotation")
            parts += [f"member {m}" for m in cfg.members]
            text = f"stacked model {self.name} ({self.stacked.learner} over {', '.join(parts)})"
        else:
            m = next(iter(self.members.values()))
            text = f"trained model {self.name} ({m.architecture}, task {m.task}, context {m.context})"
        return text.replace('"', "'")

    def probabilities(
        self, table: pd.DataFrame, genome: Genome, base_scores: Mapping[str, tuple[pd.DataFrame, np.ndarray]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """P(Splice-altering) per row of ``table`` and each member's score.

        ``table``: chrom, pos, ref, alt, gene, strand, tx_start, tx_end, region, boundary_offset,
        variant_type; ``base_scores``: per base model its scores table (DS_*, DP_*) and deltas.
        """
        from metasplice.sequences import extract_windows
        from metasplice.training.train import classifier_score, predict

        members: dict[str, np.ndarray] = {}
        windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name, m in self.members.items():
            if m.context not in windows:
                windows[m.context] = extract_windows(table, genome, m.context, self.strand_oriented)
            ref, alt = windows[m.context]
            out = predict(m.model, ref, alt, batch_size=self.batch_size, device=self.device)
            members[name] = np.asarray(classifier_score(out, m.task, m.output_names), dtype=np.float64)
        if self.stacked is None:
            return next(iter(members.values())), members
        from metasplice.experiments.stacking import build_features

        cfg = self.stacked.config
        bases = {b: (base_scores[b][0], base_scores[b][1] if cfg.profile_features else None) for b in cfg.bases}
        features = build_features(table, bases, members, cfg.annotation_features, cfg.profile_features)
        return self.stacked.predict_proba(features), members


def model_hint(directory: Path) -> str:
    """What to give ``--model``, and how the pipeline makes it."""
    name = directory.name or str(directory)
    return (
        "give --model a trained model's directory: a stacked one (model.json, stacker.joblib, members/) or a "
        f"sequence model's (model.pt). In the pipeline, train it first, e.g. `snakemake --cores 4 "
        f"results/models/{name}/model.json` for a stacked experiment or `snakemake --cores 4 "
        f"results/models/{name}/model.pt` for a trained one"
    )


def _recorded_regions(directory: Path) -> dict | None:
    """The ``regions`` entry of a stacked model's model.json, when it records one."""
    try:
        meta = json.loads((directory / "model.json").read_text())
    except (OSError, ValueError):
        return None
    value = meta.get("regions")
    return dict(value) if isinstance(value, Mapping) else None


def _region_config(values: Mapping[str, Any] | None) -> RegionConfig:
    from dataclasses import fields as dc_fields

    from metasplice.data.annotation import RegionConfig

    values = dict(values or {})
    known = {f.name for f in dc_fields(RegionConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"regions: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return RegionConfig(**{k: int(v) for k, v in values.items()})


def _make_backend(
    settings: Mapping[str, Any], device: str, batch_size: int | None, threads: int | None, cache: dict
) -> Any:
    """The backend of a base model's settings (one per distinct network, shared between bases)."""
    from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend

    spec = BaseModelSpec(
        str(settings.get("kind", "spliceai")),
        tuple(settings.get("weights") or ()),
        int(settings.get("flanking_size", 10000)),
    )
    engine = EngineSpec(
        str(settings.get("engine", "incremental")), device, batch_size, str(settings.get("precision", "fp32")), threads
    )
    key = (spec, engine.engine, engine.precision)
    if key not in cache:
        cache[key] = make_backend(load_base_model(spec), engine)
    return cache[key]


def load_predictor(
    model_dir: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    distance: int | None = None,
    mask: bool | int | None = None,
    base: Mapping[str, Mapping[str, Any]] | None = None,
    strand_oriented: bool | None = None,
    regions: Mapping[str, Any] | None = None,
) -> Predictor:
    """Load a stacked (``model.json``) or trained (``model.pt``) model directory for scoring VCFs.

    ``distance``/``mask``: SpliceAI's -D/-M for a trained model; for a stacked one they must equal
    the settings its base models were trained with (None: the model's). ``base``: for a trained
    model, the ``{name: base_models entry}`` of the base model behind the SpliceAI field (default
    SpliceAI with default settings). ``strand_oriented``/``regions``: how the training windows and
    region classes were made (default: the model's record, else the pipeline's defaults); a value
    that contradicts the model's record is an error. ``batch_size``: base-model alleles and member
    windows per batch; ``device``: auto, cpu, cuda, cuda:N.
    """
    from metasplice.base_models.backends import resolve_device
    from metasplice.base_models.spliceai.scoring import ScoreConfig

    directory = Path(model_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} not found; {model_hint(directory)}")
    stacked_model = None
    if (directory / "model.json").exists():
        from metasplice.experiments.stacking import StackedModel

        stacked_model = StackedModel.load(directory)
        kind = "stacked"
    elif (directory / "model.pt").exists():
        kind = "trained"
    else:
        raise FileNotFoundError(
            f"{directory} holds neither model.json (a stacked model) nor model.pt (a trained sequence model); "
            + model_hint(directory)
        )
    name = stacked_model.config.name if stacked_model is not None else directory.name

    # settings first (cheap checks), then the networks
    plans: dict[str, tuple[dict, bool]] = {}
    if stacked_model is not None:
        if base:
            raise ValueError(f"{directory} is a stacked model: its base models are fixed by its model.json")
        for b in stacked_model.config.bases:
            recorded = dict(stacked_model.base_models.get(b) or {})
            if not recorded and b != DEFAULT_BASE:
                raise ValueError(
                    f"{directory}/model.json records no settings for base model {b!r}; retrain the "
                    "stacked model with the pipeline (it records config base_models)"
                )
            settings = {**DEFAULT_SETTINGS, **recorded}
            if settings.get("kind") == "pangolin":
                raise ValueError(
                    f"{directory}: stacked model {name!r} has Pangolin base model {b!r} among its features; "
                    "scoring VCFs with Pangolin features is not supported yet (use a stacked model whose "
                    "bases are SpliceAI-kind models only, or a trained model)"
                )
            for key, given in (("distance", distance), ("mask", mask)):
                if given is not None and int(given) != int(settings[key]):
                    raise ValueError(
                        f"stacked model {name!r} was trained on base model {b!r} scores with {key} "
                        f"{int(settings[key])}; {key} {int(given)} would change its features. Leave --{key} out "
                        "(the model's settings are used)"
                    )
            plans[b] = (settings, True)
        stack_orient = stacked_model.sequences.get("strand_oriented")
        if stack_orient is not None and strand_oriented is not None and bool(stack_orient) != bool(strand_oriented):
            raise ValueError(
                f"stacked model {name!r} was trained on {'strand' if stack_orient else 'genome'}-oriented "
                "windows; the requested orientation differs"
            )
        if stack_orient is None:
            stack_orient = True if strand_oriented is None else strand_oriented
        orient = bool(stack_orient)
        recorded_regions = _recorded_regions(directory)
        if (
            recorded_regions is not None
            and regions is not None
            and _region_config(recorded_regions) != _region_config(regions)
        ):
            raise ValueError(
                f"stacked model {name!r} records region settings {recorded_regions}; the requested "
                f"ones ({dict(regions)}) differ"
            )
        region_cfg = _region_config(recorded_regions if recorded_regions is not None else regions)
    else:
        from metasplice.models import load_checkpoint

        recorded = (load_checkpoint(directory / "model.pt").get("info") or {}).get("strand_oriented")
        if recorded is not None and strand_oriented is not None and bool(recorded) != bool(strand_oriented):
            raise ValueError(
                f"model {name!r} was trained on {'strand' if recorded else 'genome'}-oriented windows; "
                "the requested orientation differs (leave it out: the model's own is used)"
            )
        orient = (
            bool(recorded) if recorded is not None else (True if strand_oriented is None else bool(strand_oriented))
        )
        region_cfg = _region_config(regions)
    if not any(feature for _, feature in plans.values()):
        # the SpliceAI field of a trained model, or of a stack without base models
        ((ref_name, given),) = (base or {DEFAULT_BASE: {}}).items()
        settings = {**DEFAULT_SETTINGS, **dict(given)}
        if distance is not None:
            settings["distance"] = int(distance)
        if mask is not None:
            settings["mask"] = int(bool(mask))
        plans[ref_name] = (settings, False)
    reference = (
        DEFAULT_BASE
        if DEFAULT_BASE in plans
        else next((b for b, (s, _) in plans.items() if s.get("kind", "spliceai") == "spliceai"), next(iter(plans)))
    )

    dev = resolve_device(device)
    members: dict[str, Member] = {}
    if stacked_model is not None:
        for m in stacked_model.config.members:
            path = directory / stacked_model.member_files.get(m, f"members/{m}.pt")
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: checkpoint of member {m!r} of stacked model {name!r} is missing; "
                    "retrain the stacked model (train_stacked copies every member there)"
                )
            members[m] = _load_member(m, path, dev)
    else:
        members[name] = _load_member(name, directory / "model.pt", dev)
        if members[name].task == "localisation":
            raise ValueError(
                f"{directory}/model.pt is a localisation model: it predicts where a splice effect lies, "
                "not whether there is one, so it gives no probability"
            )
    cache: dict = {}
    bases: dict[str, BaseScorer] = {}
    for b, (settings, feature) in plans.items():
        try:
            config = ScoreConfig(distance=int(settings["distance"]), mask=bool(int(settings["mask"])))
            backend = _make_backend(settings, str(dev), batch_size, threads, cache)
        except ValueError as exc:
            raise ValueError(f"base model {b!r} of {name!r}: {exc}") from exc
        bases[b] = BaseScorer(b, settings, backend, config, feature)
    predictor = Predictor(
        directory=directory,
        name=name,
        kind=kind,
        bases=bases,
        reference=reference,
        members=members,
        strand_oriented=orient,
        regions=region_cfg,
        stacked=stacked_model,
        device=dev,
        batch_size=int(batch_size or MEMBER_BATCH),
    )
    log.info(
        "%s on %s; base models %s; %s windows",
        predictor.describe(),
        dev,
        ", ".join(s.describe() for s in bases.values()),
        "strand-oriented" if orient else "genome-oriented",
    )
    return predictor


def _load_member(name: str, path: Path, device: Any) -> Member:
    from metasplice.models import load_model

    model = load_model(path, device)
    config = model.config
    return Member(
        name=name,
        model=model,
        context=int(config.context),
        task=str(config.task),
        output_names=tuple(model.output_names),
        architecture=str(getattr(model, "architecture", "")),
    )
