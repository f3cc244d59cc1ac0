"""config.yaml against rules/schemas/config.schema.yaml: a misspelt key or a reserved name is an error."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "rules" / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_is_valid_and_defaults_fill_in(config):
    checked = copy.deepcopy(config)
    validate(checked, SCHEMA)
    assert checked["variants"]["max_ref_mismatch_fraction"] == 0.05
    minimal = {"dataset": "demo", "datasets": config["datasets"]}
    validate(minimal, SCHEMA)
    assert minimal["split"]["test_chroms"] == ["chr21", "chr22"] and minimal["fetch"]["timeout_s"] == 60


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(trainng={"gpu": 3}), "'trainng' was unexpected"),
        (lambda c: c["base_models"]["spliceai"].update(distanse=10), "'distanse' was unexpected"),
        (lambda c: c["split"].update(test_chromosomes=["chr1"]), "'test_chromosomes' was unexpected"),
        (lambda c: c["sequences"].update(context=[401]), "'context' was unexpected"),
        (lambda c: c["experiments"].update(baseline_x={"model": "gated_cnn"}), "'baseline_x' does not match"),
        (lambda c: c["experiments"].update({"my__fold1": {"model": "gated_cnn"}}), "'my__fold1' does not match"),
        (lambda c: c["base_models"].update({"open-splice": {"kind": "openspliceai"}}), "'open-splice' does not match"),
    ],
)
def test_misspelt_keys_and_reserved_names_are_errors(config, change, message):
    bad = copy.deepcopy(config)
    change(bad)
    with pytest.raises(WorkflowError, match=message):
        validate(bad, SCHEMA)


def test_experiment_names_of_sweeps_and_ensembles_are_allowed(config):
    good = copy.deepcopy(config)
    good["experiments"].update({"cnn.context-401.hidden-8": {"model": "gated_cnn"}, "baselines2": {"model": "x"}})
    validate(good, SCHEMA)
