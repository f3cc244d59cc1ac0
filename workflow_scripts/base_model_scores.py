"""base_model_scores: variants.parquet + reference + annotation -> targets/{base}/ scores, deltas, targets."""

import logging

import numpy as np
import pandas as pd

from metasplice.base_models.backends import BaseModelSpec, EngineSpec, load_base_model, make_backend
from metasplice.base_models.pangolin.scoring import PangolinConfig
from metasplice.base_models.pangolin.table import score_pangolin_variants
from metasplice.base_models.spliceai.scoring import ScoreConfig
from metasplice.base_models.table import REQUIRED, score_variants
from metasplice.data.annotation import load_annotation
from metasplice.data.genome import Genome
from metasplice.io import atomic_output, write_parquet
from metasplice.workflow import run_logged


def save_npy(array: np.ndarray, path: str) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def kind_of(cfg) -> str:
    return cfg.get("kind", "spliceai")


def main(sm) -> None:
    log = logging.getLogger("metasplice")
    # params.scoring holds what changes the scores; runtime settings come from the config section
    cfg = {**sm.config["base_models"][sm.wildcards.base], **sm.params.scoring}
    model = load_base_model(
        BaseModelSpec(
            kind=cfg.get("kind", "spliceai"),
            weights=tuple(sm.input.weights) if kind_of(cfg) == "pangolin" else tuple(cfg.get("weights") or ()),
            flanking_size=int(cfg.get("flanking_size", 10000)),
        )
    )
    backend = make_backend(
        model,
        EngineSpec(
            engine=cfg.get("engine", "incremental"),
            device=cfg.get("device", "auto"),
            batch_size=cfg.get("batch_size"),
            precision=cfg.get("precision", "fp32"),
            threads=sm.threads,
        ),
    )
    kind = cfg.get("kind", "spliceai")
    if kind == "pangolin":
        config = PangolinConfig(distance=int(cfg.get("distance", 50)), mask=bool(cfg.get("mask", 1)))
        score = score_pangolin_variants
    else:
        config = ScoreConfig(distance=int(cfg.get("distance", 50)), mask=bool(cfg.get("mask", 0)))
        score = score_variants
    variants = pd.read_parquet(sm.input.variants, columns=list(REQUIRED))
    log.info(
        "%s: %d variants, D=%d, mask=%s, %s engine on %s",
        sm.wildcards.base,
        len(variants),
        config.distance,
        config.mask,
        cfg.get("engine", "incremental"),
        getattr(backend, "device", "cpu"),
    )
    with Genome(sm.input.genome) as genome:
        result = score(variants, genome, load_annotation(sm.input.annotation), backend, config)
    write_parquet(result.scores, sm.output.scores)
    save_npy(result.deltas, sm.output.deltas)
    save_npy(result.targets, sm.output.targets)
    log.info("%d of %d variants scored", int(result.scores["scored"].sum()), len(variants))


run_logged(snakemake, main)  # noqa: F821 (injected by Snakemake)
