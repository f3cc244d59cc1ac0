"""Report sections and cross-validation pooling of the effect tasks (effect_type, localisation, quantile,
multitask) from small synthetic predictions evaluated with the real evaluation functions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import metasplice.evaluation.tasks as ET
from metasplice.evaluation import crossval as CV
from metasplice.evaluation import evaluate as E
from metasplice.evaluation import metrics as M
from metasplice.evaluation import report as R
from metasplice.evaluation.report import FIGURES, Entry, build_report
from metasplice.models import tasks as FX

FAST = E.EvalConfig(bootstrap=M.BootstrapConfig(n=100, seed=0))
DISTANCE = 5
QUANTILES = (0.1, 0.5, 0.9)
CHROMS = ("chr1", "chr2", "chr3")
HEADINGS = (
    "## Effect type (step 2)",
    "## Splice-site localisation (step 3)",
    "## Quantile delta regression: interval calibration",
    "## Multi-task model vs single-task models (step 4)",
)


def make_data(n: int = 600, seed: int = 0) -> dict:
    """Variants on three chromosomes and base-model scores with a dominant delta (and its position) per
    Splice-altering variant; the targets every task is trained on follow from them."""
    rng = np.random.default_rng(seed)
    label = rng.choice([1, 0, -1], n, p=[0.5, 0.4, 0.1]).astype(np.int8)
    sa = label == 1
    variants = pd.DataFrame(
        {
            "variant_id": [f"v{i}" for i in range(n)],
            "chrom": rng.choice(CHROMS, n),
            "split": rng.choice(["train", "val", "test"], n, p=[0.2, 0.35, 0.45]),
            "label": label,
            "classification": np.where(sa, "Splice-altering", np.where(label == 0, "Normal", "Low-frequency")),
            "region": rng.choice(list(E.REGIONS), n),
            "variant_type": rng.choice(["snv", "deletion"], n),
            "strand": rng.choice(["+", "-"], n),
        }
    )
    ds = rng.uniform(0, 0.05, (n, 4))
    dominant = rng.integers(0, 4, n)
    ds[sa, dominant[sa]] = rng.uniform(0.3, 1.0, sa.sum())
    second = rng.random(n) < 0.15  # some complex effects
    ds[sa & second, (dominant[sa & second] + 1) % 4] = 0.9 * ds[sa & second, dominant[sa & second]]
    scores = pd.DataFrame(ds, columns=list(FX.DS_COLUMNS))
    dp = rng.integers(-DISTANCE - 2, DISTANCE + 3, (n, 4))  # some beyond the distance: no offset target
    for j, c in enumerate(FX.DP_COLUMNS):
        scores[c] = dp[:, j]
    for c in FX.DS_COLUMNS:
        scores[f"target_{c}"] = np.where(sa, scores[c], np.where(label == 0, 0.0, np.nan))
    classes = FX.config_effect_labels(scores, label, None)
    offsets = FX.config_localisation_targets(scores, label, variants["strand"].to_numpy(), True, {"distance": DISTANCE})
    return {"variants": variants, "scores": scores, "classes": classes, "offsets": offsets, "rng": rng}


def model_outputs(d: dict, task: str, skill: float) -> tuple[np.ndarray, tuple[str, ...]]:
    """Outputs (every variant row) of a model of ``task`` that is right on about a ``skill`` share of rows."""
    rng, n = d["rng"], len(d["variants"])
    label = d["variants"]["label"].to_numpy()
    right = rng.random(n) < skill

    def one_hot(index: np.ndarray, k: int) -> np.ndarray:
        chosen = np.where(right & (index >= 0), index, rng.integers(0, k, n))
        p = rng.uniform(0.0, 0.1, (n, k))
        p[np.arange(n), chosen] += 1.0
        return p / p.sum(axis=1, keepdims=True)

    binary = np.clip(np.where(right, label == 1, rng.random(n) < 0.5) * 0.6 + rng.uniform(0, 0.4, n), 0, 1)
    target = d["scores"][[f"target_{c}" for c in FX.DS_COLUMNS]].to_numpy(np.float64)
    delta = np.clip(np.nan_to_num(target) + rng.normal(0, 0.1, target.shape), 0.001, 0.999)
    effect = one_hot(d["classes"], len(FX.EFFECT_CLASSES))
    loc = one_hot(d["offsets"], 2 * DISTANCE + 1)
    if task == "binary":
        return binary[:, None], (FX.BINARY_NAME,)
    if task == "effect_type":
        return effect, FX.EFFECT_CLASSES
    if task == "localisation":
        return loc, FX.offset_names(DISTANCE)
    if task == "quantile":
        width = rng.uniform(0.02, 0.3, target.shape)
        q = np.stack([np.clip(delta - width, 0.001, 1), delta, np.clip(delta + width, 0, 0.999)], axis=2)
        return q.reshape(n, -1), FX.quantile_names(FX.DS_COLUMNS, QUANTILES)
    if task == "multitask":
        names = FX.output_layout("multitask", FX.DS_COLUMNS, DISTANCE)
        return np.hstack([binary[:, None], effect, delta, loc]), tuple(n for head in names.values() for n in head)
    raise ValueError(task)


def evaluate_rows(
    variants: pd.DataFrame, scores: pd.DataFrame, outputs: np.ndarray, names: tuple[str, ...], task: str, name: str
) -> tuple[pd.DataFrame, dict]:
    """(predictions, metrics.json content) as :func:`metasplice.evaluation.evaluate.evaluate_experiment_files` makes them."""
    rows = E.eval_rows(variants)
    pred = E.model_predictions(
        variants, outputs[rows], rows, names, task, scores if task != "binary" else None, {"distance": DISTANCE}, True
    )
    extra = {"kind": "experiment", "experiment": name}
    if task == "localisation":
        return pred, E.localisation_evaluation(pred, FAST, name, extra)
    metrics = E.evaluate_predictions(pred, FAST, name, task, E.reference_table(variants, scores), "spliceai", extra)
    return pred, {**metrics, **E.task_metrics(pred, task, FAST)}


def write_row(root: Path, name: str, pred: pd.DataFrame, metrics: dict) -> Entry:
    E.write_parquet(pred, root / f"eval/{name}/predictions.parquet")
    E.write_json(metrics, root / f"eval/{name}/metrics.json")
    return Entry(name, root / f"eval/{name}/metrics.json", root / f"eval/{name}/predictions.parquet")


def baseline_entry(root: Path, d: dict) -> Entry:
    pred = E.baseline_predictions(d["variants"], d["scores"])
    metrics = E.evaluate_predictions(pred, FAST, "spliceai", "baseline", extra={"kind": "baseline"})
    return write_row(root, "spliceai", pred, metrics)


def fold_files(root: Path, d: dict, task: str, name: str) -> dict:
    """Evaluated folds of one model (fold k tests chromosome k, validates on the next one) as the
    pipeline lays them out, plus the variants and reference scores files."""
    outputs, names = model_outputs(d, task, 0.7)
    chrom = d["variants"]["chrom"].to_numpy()
    paths: dict = {"predictions": [], "metrics": []}
    for k, c in enumerate(CHROMS):
        split = np.where(chrom == c, "test", np.where(chrom == CHROMS[(k + 1) % 3], "val", "train"))
        pred, metrics = evaluate_rows(
            d["variants"].assign(split=split), d["scores"], outputs, names, task, f"{name}__fold{k}"
        )
        entry = write_row(root, f"{name}__fold{k}", pred, metrics)
        paths["predictions"].append(entry.predictions)
        paths["metrics"].append(entry.metrics)
    d["variants"].to_parquet(root / "variants.parquet")
    d["scores"].to_parquet(root / "scores.parquet")
    return paths


def aggregate(root: Path, d: dict, task: str, name: str) -> tuple[Entry, dict]:
    paths = fold_files(root, d, task, name)
    out = root / f"eval_cv/{name}"
    metrics = CV.aggregate_experiment_files(
        paths["predictions"],
        paths["metrics"],
        root / "variants.parquet",
        root / "scores.parquet",
        out / "predictions.parquet",
        out / "metrics.json",
        name,
        FAST,
    )
    return Entry(name, out / "metrics.json", out / "predictions.parquet"), metrics


def shown(table: pd.DataFrame) -> pd.Series:
    """A report table's rows as summary.md names them: the name, ``name (CV)`` for set ``cv``."""
    return table["experiment"] + np.where(table["set"] == "cv", " (CV)", "")


def iv_text(iv: dict) -> str:
    return f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def section(md: str, heading: str) -> str:
    """The text of one ``## `` section of summary.md."""
    start = md.index(heading + "\n")
    end = md.find("\n## ", start + len(heading))
    return md[start:] if end < 0 else md[start:end]


def run_report(root: Path, entries: list[Entry], **kwargs) -> tuple[pd.DataFrame, str]:
    figures = {f: root / f"report/{f}.png" for f in FIGURES}
    summary = build_report(
        entries,
        root / "report/summary.md",
        root / "report/summary.tsv",
        figures,
        root / "report/breakdowns.tsv",
        {"reference": "spliceai"},
        **kwargs,
    )
    for f in FIGURES:
        assert (root / f"report/{f}.png").read_bytes()[:4] == b"\x89PNG"
    return summary, (root / "report/summary.md").read_text()


# --------------------------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """Every task as a test-split row, localisation and effect_type also cross-validated, and the report."""
    root = tmp_path_factory.mktemp("report_tasks")
    d = make_data()
    rows = {
        "binary_weak": ("binary", 0.55),
        "binary_strong": ("binary", 0.8),
        "effect": ("effect_type", 0.7),
        "loc": ("localisation", 0.6),
        "quant": ("quantile", 0.7),
        "multi": ("multitask", 0.7),
    }
    entries, metrics, preds = [baseline_entry(root, d)], {}, {}
    for name, (task, skill) in rows.items():
        outputs, names = model_outputs(d, task, skill)
        preds[name], metrics[name] = evaluate_rows(d["variants"], d["scores"], outputs, names, task, name)
        entries.append(write_row(root, name, preds[name], metrics[name]))
    for name, task in (("effect", "effect_type"), ("loc", "localisation")):
        entry, metrics[f"{name} (CV)"] = aggregate(root / "cv", d, task, name)
        entries.append(entry)
    curves: list[list[str]] = []
    original = R.plot_families

    def spy(rows, kind, path):
        curves.append([row.label for row in rows])
        return original(rows, kind, path)

    R.plot_families = spy
    try:
        summary, md = run_report(root, entries, tasks_tsv=root / "report/tasks.tsv")
    finally:
        R.plot_families = original
    return {
        "root": root,
        "data": d,
        "metrics": metrics,
        "preds": preds,
        "summary": summary,
        "md": md,
        "curves": curves,
        "tasks": pd.read_csv(root / "report/tasks.tsv", sep="\t", keep_default_na=False, na_values=[""]),
    }


def test_summary_has_localisation_rows_without_scores(report):
    table = pd.read_csv(report["root"] / "report/summary.tsv", sep="\t")
    assert list(table.columns[:2]) == ["experiment", "set"]
    assert table.loc[table["set"] == "cv", "experiment"].tolist() == ["effect", "loc"]  # named as on the test split
    table = table.set_index(shown(table))
    for name in ("loc", "loc (CV)"):
        assert table.loc[name, "task"] == "localisation"
        assert np.isnan(table.loc[name, "roc_auc"]) and np.isnan(table.loc[name, "pr_auc"])
    assert table.loc["loc (CV)", "evaluation"] == "cross-validation"
    # the headline task values, with their bounds, on the rows that have them
    m = report["metrics"]
    for name, column, section, key in (
        ("loc (CV)", "localisation_top1", "localisation", "top1"),
        ("multi", "localisation_within_5", "localisation", "within_5"),
        ("effect", "effect_type_macro_f1", "effect_type", "macro_f1"),
        ("quant", "quantile_coverage", "quantile", "coverage"),
    ):
        iv = m[name][section][key]
        assert [table.loc[name, column + s] for s in ("", "_low", "_high")] == pytest.approx(
            [iv["estimate"], iv["low"], iv["high"]]
        )
        assert table.loc[name, f"{section}_n"] == m[name][section]["n"]
    assert table.loc["quant", "quantile_nominal"] == pytest.approx(0.8)
    assert np.isnan(table.loc["binary_strong", "localisation_top1"]) and np.isnan(table.loc["loc", "quantile_n"])
    line = next(x for x in report["md"].splitlines() if x.startswith("| loc | localisation |"))
    assert line.split(" | ")[3:6] == ["–", "–", "–"]  # ROC-AUC, PR-AUC, F1
    # the ROC / PR small multiples draw the scored rows only
    assert len(report["curves"]) == 2
    for labels in report["curves"]:
        assert "loc" not in labels and "loc (CV)" not in labels
        assert {"spliceai", "effect", "multi", "quant", "effect (CV)"} <= set(labels)


def test_effect_type_section(report):
    md, m = section(report["md"], HEADINGS[0]), report["metrics"]
    for name in ("effect", "multi", "effect (CV)"):
        fx = m[name]["effect_type"]
        assert f"| {name} | {m[name]['task']} | {fx['n']} | {iv_text(fx['macro_f1'])} |" in md
    fx = m["effect"]["effect_type"]
    sub = md[md.index("### effect\n") : md.index("### multi\n")]
    for c in FX.EFFECT_CLASSES:
        cell = fx["per_class"][c]
        if cell["support"] and cell["precision"]["low"] is not None:
            assert (
                f"| {c} | {cell['support']} | {iv_text(cell['precision'])} | {iv_text(cell['recall'])} | "
                f"{iv_text(cell['f1'])} |"
            ) in sub
    counts = fx["confusion_matrix"]["counts"]
    assert "| target / predicted | " + " | ".join(FX.EFFECT_CLASSES) + " | total |" in sub
    for c, row in zip(FX.EFFECT_CLASSES, counts):
        assert f"| {c} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |" in sub
    # the counts are those of the predictions table
    test = report["preds"]["effect"]
    test = test[(test["split"] == "test") & test["label"].isin([0, 1]) & test["target_class"].notna()]
    assert sum(map(sum, counts)) == len(test)
    assert counts[0][0] == int(((test["target_class"] == "normal") & (test["predicted_class"] == "normal")).sum())
    # the pooled cross-validated row has its own block
    assert "### effect (CV)" in md and "### multi" in md


def test_localisation_section(report):
    md, m = section(report["md"], HEADINGS[1]), report["metrics"]
    assert "| experiment | task | n | top-1 | top-3 | within ±2 nt | within ±5 nt |" in md
    for name in ("loc", "multi", "loc (CV)"):
        loc = m[name]["localisation"]
        cells = " | ".join(iv_text(loc[k]) for k in ("top1", "top3", "within_2", "within_5"))
        assert f"| {name} | {m[name]['task']} | {loc['n']} | {cells} |" in md
    # n: the Splice-altering test variants with an offset target
    pred = report["preds"]["loc"]
    assert m["loc"]["localisation"]["n"] == int(((pred["split"] == "test") & pred["loc_target"].notna()).sum())


def test_quantile_section(report):
    md, q = section(report["md"], HEADINGS[2]), report["metrics"]["quant"]["quantile"]
    assert q["nominal"] == pytest.approx(0.8)
    assert f"| quant | [q0.1, q0.9] | all targets | {q['n']} | 0.800 | {iv_text(q['coverage'])} |" in md
    for t in FX.DS_COLUMNS:
        assert f"| quant | [q0.1, q0.9] | {t} | {q['n']} | 0.800 | {iv_text(q['per_target'][t])} |" in md
    pred = report["preds"]["quant"]
    test = pred[(pred["split"] == "test") & pred["label"].isin([0, 1])]
    finite = np.isfinite(test[[f"target_{t}" for t in FX.DS_COLUMNS]].to_numpy()).all(axis=1)
    for label, value, shown in (("splice_altering", 1, "Splice-altering"), ("normal", 0, "Normal")):
        n = int((finite & (test["label"] == value).to_numpy()).sum())
        iv = q["by_label"][label]
        diff = iv["estimate"] - 0.8
        assert f"| quant | [q0.1, q0.9] | {shown} | {n} | 0.800 | {iv_text(iv)} | {diff:+.3f} |" in md
    for level, iv in q["share_at_or_below"].items():
        assert f"| quant | q{level} | {float(level):.3f} | {iv_text(iv)} |" in md


def test_multitask_comparison(report):
    md, m = section(report["md"], HEADINGS[3]), report["metrics"]
    weak, strong = (m[n]["metrics"]["roc_auc"]["estimate"] for n in ("binary_weak", "binary_strong"))
    assert strong > weak
    rows = [x for x in md.splitlines() if x.startswith("| multi |")]
    assert len(rows) == 3  # one per compared metric; no cross-validated multitask row
    auc = m["multi"]["metrics"]["roc_auc"]
    ref = m["binary_strong"]["metrics"]["roc_auc"]
    assert rows[0] == (
        f"| multi | binary ROC-AUC | {iv_text(auc)} | {m['multi']['n']['test']['scored']} | "
        f"binary_strong | {iv_text(ref)} | {m['binary_strong']['n']['test']['scored']} | "
        f"{auc['estimate'] - ref['estimate']:+.3f} |"
    )
    f1, ref = m["multi"]["effect_type"]["macro_f1"], m["effect"]["effect_type"]["macro_f1"]
    assert rows[1].startswith(
        f"| multi | effect-type macro-F1 | {iv_text(f1)} | {m['multi']['effect_type']['n']} | effect | {iv_text(ref)} |"
    )  # the test-split row, not the pooled one
    top1, ref = m["multi"]["localisation"]["top1"], m["loc"]["localisation"]["top1"]
    assert rows[2].endswith(
        f"| loc | {iv_text(ref)} | {m['loc']['localisation']['n']} | {top1['estimate'] - ref['estimate']:+.3f} |"
    )
    assert report["md"].index(HEADINGS[0]) < report["md"].index(HEADINGS[1]) < report["md"].index(HEADINGS[3])


def test_task_table(report):
    tasks, m = report["tasks"], report["metrics"]
    assert list(tasks.columns) == list(R.TASK_TABLE_COLUMNS)
    tasks = tasks.assign(experiment=shown(tasks))
    assert set(tasks["experiment"]) == {"effect", "loc", "quant", "multi", "effect (CV)", "loc (CV)"}

    def one(experiment: str, metric: str, group: str = "") -> pd.Series:
        hit = tasks[
            (tasks["experiment"] == experiment) & (tasks["metric"] == metric) & (tasks["group"].fillna("") == group)
        ]
        assert len(hit) == 1, (experiment, metric, group)
        return hit.iloc[0]

    iv = m["effect"]["effect_type"]["macro_f1"]
    row = one("effect", "macro_f1")
    assert (row["estimate"], row["low"], row["high"]) == pytest.approx((iv["estimate"], iv["low"], iv["high"]))
    assert row["n"] == m["effect"]["effect_type"]["n"]
    cm = m["effect"]["effect_type"]["confusion_matrix"]
    row = one("effect", "confusion_count", "donor_gain -> normal")
    assert row["estimate"] == cm["counts"][1][0] and row["n"] == sum(cm["counts"][1])
    row = one("effect", "confusion_rate", "donor_gain -> normal")
    assert row["estimate"] == pytest.approx(cm["rate"]["estimate"][1][0])
    within = m["loc (CV)"]["localisation"]["within_5"]
    assert one("loc (CV)", "within_5")["estimate"] == pytest.approx(within["estimate"])
    q = m["quant"]["quantile"]
    row = one("quant", "coverage", "DS_AL")
    assert row["estimate"] == pytest.approx(q["per_target"]["DS_AL"]["estimate"]) and row["nominal"] == 0.8
    assert one("quant", "share_at_or_below", "q0.9")["nominal"] == 0.9
    assert not ((tasks["experiment"] == "multi") & (tasks["section"] == "quantile")).any()


def test_no_task_rows_no_task_sections(tmp_path):
    d = make_data(n=300, seed=3)
    entries = [baseline_entry(tmp_path, d)]
    for name, task in (("bin", "binary"), ("delta", "delta")):
        outputs, names = model_outputs(d, "binary", 0.7)
        if task == "delta":
            outputs, names = np.clip(d["scores"][list(FX.DS_COLUMNS)].to_numpy(), 0, 1), FX.DS_COLUMNS
        rows = E.eval_rows(d["variants"])
        pred = E.model_predictions(
            d["variants"], outputs[rows], rows, names, task, d["scores"] if task == "delta" else None
        )
        entries.append(write_row(tmp_path, name, pred, E.evaluate_predictions(pred, FAST, name, task)))
    summary, md = run_report(tmp_path, entries, tasks_tsv=tmp_path / "report/tasks.tsv")
    assert len(summary) == 3
    assert not [c for c in summary.columns if c.startswith(("effect_type_", "localisation_", "quantile_"))]
    for heading in HEADINGS:
        assert heading not in md
    assert "\n\n\n\n" not in md  # no empty section left behind
    tasks = pd.read_csv(tmp_path / "report/tasks.tsv", sep="\t")
    assert tasks.empty and list(tasks.columns) == list(R.TASK_TABLE_COLUMNS)
    # a multitask row alone: its comparison has no single-task rows to show
    outputs, names = model_outputs(d, "multitask", 0.7)
    pred, metrics = evaluate_rows(d["variants"], d["scores"], outputs, names, "multitask", "multi")
    _, md = run_report(tmp_path, [entries[0], write_row(tmp_path, "multi", pred, metrics)])
    rows = [x for x in section(md, HEADINGS[3]).splitlines() if x.startswith("| multi |")]
    assert len(rows) == 3 and all(r.endswith("| – | – | – | – |") for r in rows)
    table = pd.read_csv(tmp_path / "report/summary.tsv", sep="\t")
    assert {"effect_type_macro_f1", "localisation_top1", "localisation_top3"} <= set(table.columns)
    assert "quantile_coverage" not in table.columns
    assert HEADINGS[2] not in md and HEADINGS[0] in md and HEADINGS[1] in md


# --------------------------------------------------------------------------------------------- cross-validation


def _pooled_test(paths: dict) -> pd.DataFrame:
    parts = [pd.read_parquet(p) for p in paths["predictions"]]
    return pd.concat([E.labelled_rows(p, "test").assign(fold=k) for k, p in enumerate(parts)], ignore_index=True)


def test_pooled_localisation_folds(tmp_path):
    d = make_data(seed=5)
    entry, metrics = aggregate(tmp_path, d, "localisation", "loc")
    assert "metrics" not in metrics and "threshold" not in metrics and "comparison" not in metrics
    assert metrics["task"] == "localisation" and metrics["evaluation"] == "cross-validation"
    paths = {"predictions": [tmp_path / f"eval/loc__fold{k}/predictions.parquet" for k in range(3)]}
    pooled = _pooled_test(paths)
    written = pd.read_parquet(entry.predictions)
    assert sorted(written["variant_id"]) == sorted(pooled["variant_id"])  # every labelled test row once
    labelled = d["variants"]["label"].isin([0, 1])
    assert len(written) == int(labelled.sum())
    assert metrics["n"]["test"] == E.label_counts(pooled) and metrics["n"]["test"]["scored"] == 0
    expected = ET.localisation_metrics(pooled, FAST)
    on_disk = E.read_json(entry.metrics)
    for key in ("n", "top1", "top3", "within_2", "within_5"):
        assert on_disk["localisation"][key] == E._clean(expected)[key]
    target = pooled["loc_target"].to_numpy()
    ok = np.isfinite(target)
    assert on_disk["localisation"]["top1"]["estimate"] == pytest.approx(
        np.mean(pooled["loc_top1"].to_numpy()[ok] == target[ok])
    )
    cvm = on_disk["cross_validation"]
    assert cvm["n_folds"] == 3 and [f["fold"] for f in cvm["folds"]] == [0, 1, 2]
    tops = [f["localisation_top1"]["estimate"] for f in cvm["folds"]]
    assert cvm["across_folds"]["localisation_top1"]["mean"] == pytest.approx(np.mean(tops))
    assert set(cvm["across_folds"]) == {"localisation_top1", "localisation_within_2"}
    # without the folds' metrics files they are recomputed, to the same values
    preds = [pd.read_parquet(p) for p in paths["predictions"]]
    _, again = CV.aggregate_folds(preds, FAST, "loc (CV)", "localisation")
    assert again["localisation"]["top1"] == on_disk["localisation"]["top1"]
    assert [f["localisation_top1"] for f in again["cross_validation"]["folds"]] == [
        f["localisation_top1"] for f in cvm["folds"]
    ]
    with pytest.raises(ValueError, match="more than one fold"):
        CV.aggregate_folds([preds[0], preds[0]], FAST, "x", "localisation")


def test_pooled_effect_type_folds(tmp_path):
    d = make_data(seed=6)
    entry, metrics = aggregate(tmp_path, d, "effect_type", "effect")
    on_disk = E.read_json(entry.metrics)
    # the classification metrics as before ...
    assert {"metrics", "threshold", "comparison", "breakdowns"} <= set(on_disk)
    pooled = pd.read_parquet(entry.predictions)
    y, s = E.scored_arrays(pooled)
    assert on_disk["metrics"]["roc_auc"]["estimate"] == pytest.approx(M.roc_auc(y, s))
    # ... and the effect-type metrics of the pooled test rows next to them
    paths = {"predictions": [tmp_path / f"eval/effect__fold{k}/predictions.parquet" for k in range(3)]}
    expected = E._clean(ET.effect_type_metrics(_pooled_test(paths), FAST))
    assert on_disk["effect_type"] == expected
    known = pooled[pooled["target_class"].notna()]
    assert on_disk["effect_type"]["n"] == len(known)
    assert np.trace(np.array(on_disk["effect_type"]["confusion_matrix"]["counts"])) == int(
        (known["target_class"] == known["predicted_class"]).sum()
    )
    cvm = on_disk["cross_validation"]
    f1s = [f["effect_type_macro_f1"]["estimate"] for f in cvm["folds"]]
    assert cvm["across_folds"]["effect_type_macro_f1"]["mean"] == pytest.approx(np.mean(f1s))
    assert cvm["across_folds"]["effect_type_macro_f1"]["sd"] == pytest.approx(np.std(f1s, ddof=1))
    assert set(cvm["across_folds"]) == {"roc_auc", "pr_auc", "effect_type_macro_f1"}
    assert all(math.isfinite(f["roc_auc"]["estimate"]) for f in cvm["folds"])


@pytest.mark.parametrize("task", ["quantile", "multitask"])
def test_pooled_task_keys_of_quantile_and_multitask(tmp_path, task):
    d = make_data(n=400, seed=7)
    entry, _ = aggregate(tmp_path, d, task, task)
    on_disk = E.read_json(entry.metrics)
    keys = {"quantile": ("quantile",), "multitask": ("effect_type", "localisation")}[task]
    paths = {"predictions": [tmp_path / f"eval/{task}__fold{k}/predictions.parquet" for k in range(3)]}
    expected = E._clean(E.task_metrics(_pooled_test(paths), task, FAST))
    assert {"metrics", "threshold"} <= set(on_disk)
    for key in keys:
        assert on_disk[key] == expected[key]
    if task == "multitask":
        assert on_disk["correlation"] is not None  # the delta head
        assert {"effect_type_macro_f1", "localisation_top1"} <= set(on_disk["cross_validation"]["across_folds"])


def test_pooled_folds_of_an_ensemble_stay_an_ensemble(tmp_path):
    """The pooled CV row of an ensemble keeps its kind, members and combination (the report's ensemble section
    lists it); a plain experiment stays an experiment."""
    d = make_data(seed=8)
    paths = fold_files(tmp_path, d, "binary", "ens")
    for path in paths["metrics"]:
        fold = E.read_json(path)
        E.write_json({**fold, "kind": "ensemble", "members": ["a", "b"], "combine": "rank_mean"}, path)
    out = tmp_path / "eval_cv/ens"
    metrics = CV.aggregate_experiment_files(
        paths["predictions"],
        paths["metrics"],
        tmp_path / "variants.parquet",
        tmp_path / "scores.parquet",
        out / "predictions.parquet",
        out / "metrics.json",
        "ens",
        FAST,
    )
    assert (metrics["kind"], metrics["members"], metrics["combine"]) == ("ensemble", ["a", "b"], "rank_mean")
    _, plain = aggregate(tmp_path / "plain", make_data(seed=8), "binary", "plain")
    assert plain["kind"] == "experiment" and "members" not in plain
