"""metasplice.experiments.sweeps: expansion of sweep experiments, and the per-sweep result tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import metasplice.evaluation.sweep_tables as ST
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.evaluation import report as R
from metasplice.experiments import sweeps as S
from metasplice.experiments.registry import resolve_experiment

ROOT = Path(__file__).resolve().parents[1]
FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=50, seed=1))


def sweep_spec(**extra) -> dict:
    spec = {
        "description": "gated CNN",
        "model": "gated_cnn",
        "task": "delta",
        "context": 401,
        "hidden": 32,
        "epochs": 5,
        "sweep": {"context": [401, 1001], "hidden": [64, 128]},
    }
    spec.update(extra)
    return spec


def test_two_by_two_sweep_expands_in_product_order():
    before, after = {"model": "gated_cnn"}, {"model": "gated_cnn", "task": "binary"}
    experiments = {"before": before, "ctx": sweep_spec(), "after": after}
    expanded, sweeps = S.expand_sweeps(experiments)

    children = [
        "ctx.context-401.hidden-64",
        "ctx.context-401.hidden-128",
        "ctx.context-1001.hidden-64",
        "ctx.context-1001.hidden-128",
    ]
    assert list(expanded) == ["before", *children, "after"]  # in place of the parent, order kept
    assert expanded["before"] is before and expanded["after"] is after  # passed through unchanged
    assert sweeps == {
        "ctx": [
            {"experiment": c, "params": {"context": ctx, "hidden": h}}
            for c, (ctx, h) in zip(children, [(401, 64), (401, 128), (1001, 64), (1001, 128)])
        ]
    }
    child = expanded["ctx.context-1001.hidden-64"]
    assert child == {
        "description": "gated CNN (context=1001, hidden=64)",
        "model": "gated_cnn",
        "task": "delta",
        "context": 1001,
        "hidden": 64,
        "epochs": 5,
    }
    assert "sweep" in experiments["ctx"] and experiments["ctx"]["hidden"] == 32  # the input is not modified
    # without a parent description the values are the description
    expanded, _ = S.expand_sweeps({"s": {"model": "gated_cnn", "sweep": {"lr": [1e-3]}}})
    assert expanded == {"s.lr-0.001": {"model": "gated_cnn", "lr": 1e-3, "description": "lr=0.001"}}


@pytest.mark.parametrize(
    "value, text",
    [
        (401, "401"),
        (-2, "-2"),
        (1e-3, "0.001"),
        (5.0e-5, "0.00005"),
        (2.0, "2.0"),
        (0.1, "0.1"),
        (True, "true"),
        (False, "false"),
        ("rank_mean", "rank_mean"),
        ("v1.2-b", "v1.2-b"),
    ],
)
def test_value_names(value, text):
    assert S.format_value(value) == text


def test_children_resolve_as_ordinary_experiments():
    """Children of a sweep over a config.yaml experiment resolve, in full and demo runs, to the swept values
    (the parent's demo override of a swept key does not undo the sweep; its other overrides still apply)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    parent = dict(config["experiments"]["quick_test"], sweep={"hidden": [24, 48], "lr": [1e-3, 2e-4]})
    assert parent["demo"]["hidden"] == 16  # the case this test is about
    for demo in (False, True):
        expanded, sweeps = S.expand_sweeps({"qt": parent}, demo=demo)
        assert len(expanded) == 4
        for entry in sweeps["qt"]:
            exp = resolve_experiment(
                entry["experiment"],
                expanded,
                config.get("training"),
                contexts=config["sequences"]["contexts"],
                demo=demo,
            )
            assert exp.model_config.hidden == entry["params"]["hidden"]
            assert exp.train_config.lr == pytest.approx(entry["params"]["lr"])
            assert exp.train_config.epochs == (3 if demo else 40)
            assert exp.description.startswith(parent["description"])


def test_demo_sweep_replaces_the_main_one_in_demo_runs():
    spec = sweep_spec(demo={"epochs": 1, "hidden": 8, "context": 401, "sweep": {"hidden": [8, 16]}})
    full, full_sweeps = S.expand_sweeps({"ctx": spec}, demo=False)
    demo, demo_sweeps = S.expand_sweeps({"ctx": spec}, demo=True)

    assert len(full) == 4 and list(demo) == ["ctx.hidden-8", "ctx.hidden-16"]
    assert [e["params"] for e in demo_sweeps["ctx"]] == [{"hidden": 8}, {"hidden": 16}]
    # demo children: no sweep in demo, and the demo sweep's key dropped from the demo overrides
    assert demo["ctx.hidden-16"]["demo"] == {"epochs": 1, "context": 401}
    assert demo["ctx.hidden-16"]["hidden"] == 16 and demo["ctx.hidden-16"]["context"] == 401
    # full-run children: the main sweep's keys dropped from the demo overrides (never a sweep inside)
    assert full["ctx.context-1001.hidden-64"]["demo"] == {"epochs": 1}
    assert all("sweep" not in c and "sweep" not in c["demo"] for c in [*full.values(), *demo.values()])
    assert len(full_sweeps["ctx"]) == 4
    # without demo.sweep the main sweep applies in demo runs too
    same, _ = S.expand_sweeps({"ctx": sweep_spec(demo={"epochs": 1})}, demo=True)
    assert list(same) == list(full)


def test_expand_config_and_names():
    config = {
        "dataset": "demo",
        "experiments": {
            "a": {"model": "gated_cnn"},
            "s": {"model": "gated_cnn", "sweep": {"hidden": [4, 8]}, "demo": {"sweep": {"hidden": [2]}}},
        },
    }
    expanded, sweeps = S.expand_config(config)
    assert list(expanded["experiments"]) == ["a", "s.hidden-2"] and expanded["dataset"] == "demo"
    assert "s" in config["experiments"]  # a copy
    assert S.expand_names(["s", "a", "s.hidden-2"], sweeps) == ["s.hidden-2", "a"]


@pytest.mark.parametrize(
    "experiments, message",
    [
        ({"s": {"model": "m", "sweep": [1, 2]}}, r"experiment 's': 'sweep' must be a non-empty mapping"),
        ({"s": {"model": "m", "sweep": {}}}, r"experiment 's': 'sweep' must be a non-empty mapping"),
        ({"s": {"model": "m", "sweep": None}}, r"experiment 's': 'sweep' must be a non-empty mapping"),
        ({"s": {"model": "m", "sweep": {"hidden": []}}}, r"experiment 's'.*'hidden' must be a non-empty list"),
        ({"s": {"model": "m", "sweep": {"hidden": 64}}}, r"experiment 's'.*'hidden' must be a non-empty list"),
        ({"s": {"model": "m", "sweep": {"hidden": {"a": 1}}}}, r"'hidden' must be a non-empty list"),
        ({"s": {"model": "m", "sweep": {"model": ["a", "b"]}}}, r"experiment 's'.*'model' cannot be swept"),
        ({"s": {"model": "m", "sweep": {"sweep": [1]}}}, r"'sweep' cannot be swept"),
        ({"s": {"model": "m", "sweep": {"demo": [1]}}}, r"'demo' cannot be swept"),
        ({"s": {"model": "m", "sweep": {"description": ["x"]}}}, r"'description' cannot be swept"),
        ({"s": {"model": "m", "sweep": {"hidden": [64, 64]}}}, r"'hidden' lists the same value more than once \(64\)"),
        (
            {"s": {"model": "m", "sweep": {"model_path": ["org/model"]}}},
            r"value 'org/model' of 'model_path' cannot be part of an experiment name",
        ),
        ({"s": {"model": "m", "sweep": {"hidden": [None]}}}, r"value None of 'hidden' cannot be part"),
        ({"s": {"model": "m", "sweep": {"hidden": [[1, 2]]}}}, r"value \[1, 2\] of 'hidden' cannot be part"),
        ({"s": {"model": "m", "sweep": {"lr": [math.nan]}}}, r"value nan of 'lr' cannot be part.*not a finite"),
        (
            {"s": {"model": "m", "sweep": {"hidden": [64]}}, "s.hidden-64": {"model": "m"}},
            r"experiment 's': child 's.hidden-64' has the name of a configured experiment",
        ),
        (
            {"s": {"model": "m", "sweep": {"a": [1], "x": [1]}}, "s.a-1": {"model": "m", "sweep": {"x": [1]}}},
            r"experiment 's.a-1': child 's.a-1.x-1' is also made by sweep 's'",
        ),
        ({"my__s": {"model": "m", "sweep": {"hidden": [64]}}}, r"experiment 'my__s': names may not contain '__'"),
        (
            {"s": {"model": "m", "sweep": {"tag": ["a__fold1"]}}},
            r"experiment 's': child name 's.tag-a__fold1' must match",
        ),
        (
            {"s p": {"model": "m", "sweep": {"hidden": [1]}}},
            r"experiment 's p': child name 's p.hidden-1' must match \[A-Za-z0-9_.-\]\+",
        ),
        (
            {"s": {"model": "m", "demo": {"sweep": {"hidden": [1]}}}},
            r"experiment 's': 'demo.sweep' needs a main 'sweep'",
        ),
        (
            {"s": {"model": "m", "sweep": {"hidden": [1]}, "demo": {"sweep": {"hidden": []}}}},
            r"experiment 's': 'demo.sweep': 'hidden' must be a non-empty list",
        ),
    ],
)
def test_invalid_sweeps_are_errors_naming_the_experiment(experiments, message):
    with pytest.raises(ValueError, match=message):
        S.expand_sweeps(experiments)


# --------------------------------------------------------------------------------------------
# tables


def predictions(strength: float, seed: int, n: int = 240) -> pd.DataFrame:
    """A binary model's predictions table: half validation, half test; higher scores for label 1."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "variant_id": [f"chr1:{i}:A:G" for i in range(n)],
            "split": np.where(np.arange(n) % 2, "test", "val"),
            "label": label.astype(np.int8),
            "classification": np.where(label == 1, "Splice-altering", "Normal"),
            "region": rng.choice(["exonic", "intronic"], n),
            "variant_type": "snv",
            "score": 1 / (1 + np.exp(-(strength * label + rng.normal(size=n)))),
        }
    )


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """The report's summary table for a reference baseline, three of four children of a 2x2 sweep (one
    with a cross-validated row) and an unrelated experiment."""
    reference = predictions(0.5, 0)
    items = []
    for k, name in enumerate(
        [
            "spliceai",
            "other",
            "s.lr-0.001.hidden-8",
            "s.lr-0.001.hidden-16",
            "s.lr-0.01.hidden-16",
            "s.lr-0.001.hidden-8",  # its cross-validated row: same name, set "cv"
        ]
    ):
        pred = reference if k == 0 else predictions(0.5 + 0.3 * k, k)
        ref = None if k == 0 else reference[["variant_id", "score"]]
        extra = {"kind": "baseline"} if k == 0 else {"kind": "experiment"}
        if k == 5:
            extra["evaluation"] = "cross-validation"
        metrics = E.evaluate_predictions(pred, FAST, name, "binary", ref, "spliceai", extra)
        items.append(R._Loaded(R.Entry(name, "", ""), metrics, pred, None))
    return R.summary_table(items)


SWEEPS = {
    "s": [
        {"experiment": f"s.lr-{lr}.hidden-{h}", "params": {"lr": float(lr), "hidden": h}}
        for lr in ("0.001", "0.01")
        for h in (8, 16)
    ]
}


def test_sweep_tables_pick_the_children_rows_and_metric_columns(summary):
    tables = ST.sweep_tables(summary, SWEEPS)
    assert list(tables) == ["s", "s (CV)"]
    table = tables["s"]
    # rows: evaluated children in sweep order (s.lr-0.01.hidden-8 was not evaluated)
    assert list(table["experiment"]) == ["s.lr-0.001.hidden-8", "s.lr-0.001.hidden-16", "s.lr-0.01.hidden-16"]
    assert table["lr"].tolist() == [0.001, 0.001, 0.01] and table["hidden"].tolist() == [8, 16, 16]
    # columns: name, params, the metrics present (no correlation for binary models), nothing else
    expected = [
        "experiment",
        "lr",
        "hidden",
        *(c for c in ST.METRIC_COLUMNS if not c.startswith(("correlation", "effect_type", "localisation", "quantile"))),
    ]
    assert list(table.columns) == expected
    # the report really has these columns (the task headline columns only with rows of those tasks)
    task_columns = {c for c in ST.METRIC_COLUMNS if c.startswith(("effect_type", "localisation", "quantile"))}
    assert not (set(ST.METRIC_COLUMNS) - task_columns - set(summary.columns))
    assert summary["set"].tolist() == ["test"] * 5 + ["cv"]
    by_name = summary[summary["set"] == "test"].set_index("experiment")
    for _, row in table.iterrows():
        for column in ("roc_auc", "roc_auc_low", "pr_auc_high", "f1_val_threshold", "p_roc_auc_delong"):
            assert row[column] == by_name.loc[row["experiment"], column]
    assert set(table["compared_with"]) == {"spliceai"}
    assert tables["s (CV)"]["experiment"].tolist() == ["s.lr-0.001.hidden-8"]
    cv_row = summary[summary["set"] == "cv"].set_index("experiment")
    assert tables["s (CV)"]["roc_auc"].iloc[0] == cv_row.loc["s.lr-0.001.hidden-8", "roc_auc"]
    # a sweep without evaluated children gets no table; a summary with "name" instead of "experiment" works
    assert ST.sweep_tables(summary, {"t": [{"experiment": "t.a-1", "params": {"a": 1}}]}) == {}
    renamed = ST.sweep_tables(summary.rename(columns={"experiment": "name"}), SWEEPS)
    pd.testing.assert_frame_equal(renamed["s"], table)


def test_sweep_markdown(summary):
    text = ST.sweep_markdown(ST.sweep_tables(summary, SWEEPS))
    lines = text.splitlines()
    assert lines[0] == "## Sweeps" and "### s" in lines and "### s (CV)" in lines
    header = lines[lines.index("### s") + 2]
    assert header.startswith("| experiment | lr | hidden | ROC-AUC | PR-AUC | F1 @ val thr | Δ ROC-AUC vs spliceai |")
    rows = [line for line in lines if line.startswith("| s.lr-")]
    assert len(rows) == 4  # three children + one CV row
    roc = summary.set_index("experiment").loc["s.lr-0.01.hidden-16", "roc_auc"]
    assert f"| s.lr-0.01.hidden-16 | 0.01 | 16 | {roc:.3f} [" in text
    assert ST.sweep_markdown({}) == ""


def test_a_2x2_sweep_is_four_training_jobs_in_a_dry_run(tmp_path):
    """The real workflow plans one cached train (and evaluate) job per combination."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["experiments"] = {
        "grid": {
            "model": "gated_cnn",
            "task": "binary",
            "context": 401,
            "sweep": {"hidden": [8, 16], "lr": [1.0e-3, 3.0e-3]},
            "demo": {"epochs": 1, "layers": 2},
        }
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(root / "Snakefile"), "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = sorted(set(re.findall(r"results/models/(grid[^/\s]*)/model\.pt", proc.stdout)))
    assert trained == [
        "grid.hidden-16.lr-0.001",
        "grid.hidden-16.lr-0.003",
        "grid.hidden-8.lr-0.001",
        "grid.hidden-8.lr-0.003",
    ]
    assert len(re.findall(r"^rule train:", proc.stdout, flags=re.M)) == 4
