"""Hyperparameter sweeps: one configured experiment -> one experiment per combination of values.

An experiment of config.yaml's ``experiments:`` may hold ``sweep``, a mapping of experiment keys to
lists of values::

    ctx_sweep:
      model: gated_cnn
      task: delta
      context: 401
      sweep: {context: [401, 1001], hidden: [64, 128]}
      demo: {epochs: 2, sweep: {hidden: [8, 16]}}

:func:`expand_sweeps` replaces it, at its place in the experiment order, by one *child* experiment
per combination, in the cartesian-product order of the params as listed (the last param varies
fastest): ``ctx_sweep.context-401.hidden-64``, ``ctx_sweep.context-401.hidden-128``,
``ctx_sweep.context-1001.hidden-64``, ``ctx_sweep.context-1001.hidden-128``. Rules:

- a child is the parent's mapping without ``sweep``, each swept key set to the child's value and
  ``description`` extended with the values; everything else (validation of the keys included) is
  then the business of :mod:`metasplice.experiments.registry` (or :mod:`metasplice.experiments.ensembles`), which sees
  the children as ordinary experiments;
- child name: ``{name}.{param}-{value}`` for each param in order, joined by ``.``; values are
  written as integers (``401``), positional decimals (``1e-3`` -> ``0.001``, ``2.0`` -> ``2.0``),
  ``true``/``false``, or strings made of ``[A-Za-z0-9_.-]``; any other value (lists, mappings,
  null, NaN, strings such as paths with ``/``) cannot be named and is an error. Names must match
  ``[A-Za-z0-9_.-]+`` (the pipeline's wildcard) and may not contain ``__``, which is reserved for
  instance suffixes (``E__fold3``);
- ``demo``: the parent's ``demo`` mapping may hold its own ``sweep``; in demo runs it replaces the
  main one (so demo runs can sweep smaller values, or fewer), otherwise the main sweep applies in
  both modes. A ``demo.sweep`` without a main ``sweep`` is an error (an experiment is a sweep in
  every mode or in none, so its name never switches between a sweep and a single experiment). Each
  child's ``demo`` is the parent's without ``sweep`` and without the keys of the sweep in use: the
  swept value named by the child holds in demo runs too (a ``demo: {hidden: 16}`` would otherwise
  make every child of a ``hidden`` sweep identical). Keys swept only by the unused sweep keep the
  parent's value (and its demo override);
- errors (ValueError naming the experiment): ``sweep`` not a non-empty mapping, a value list that
  is not a non-empty list, repeated values, a param named ``model``, ``sweep``, ``demo`` or
  ``description``, a child name colliding with another experiment (or another sweep's child).

Experiments without ``sweep`` pass through unchanged. :func:`sweep_tables` and
:func:`sweep_markdown` turn the report's summary table into one table per sweep.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

RESERVED_PARAMS: tuple[str, ...] = ("model", "sweep", "demo", "description")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
INSTANCE_SEPARATOR = "__"
CV_SUFFIX = " (CV)"  # report rows of the pooled cross-validation folds (workflow_scripts/report.py)

# summary.tsv columns (metasplice.evaluation.report.summary_row) a sweep table carries, in this order
METRIC_COLUMNS: tuple[str, ...] = (
    "correlation", "correlation_low", "correlation_high",
    "roc_auc", "roc_auc_low", "roc_auc_high",
    "pr_auc", "pr_auc_low", "pr_auc_high",
    "f1_val_threshold", "f1_val_threshold_low", "f1_val_threshold_high",
    "compared_with",
    "roc_auc_difference", "roc_auc_difference_low", "roc_auc_difference_high",
    "p_roc_auc_bootstrap", "p_roc_auc_delong", "comparison_n_boot",
    # headline metrics of the multi-step tasks (added to the summary by metasplice.evaluation.report)
    "effect_type_macro_f1", "effect_type_macro_f1_low", "effect_type_macro_f1_high",
    "localisation_top1", "localisation_top1_low", "localisation_top1_high",
    "quantile_coverage", "quantile_coverage_low", "quantile_coverage_high",
)


# --------------------------------------------------------------------------------------------
# expansion


def format_value(value: Any) -> str:
    """The name part of a sweep value (``1e-3`` -> ``"0.001"``, ``True`` -> ``"true"``).

    Raises ValueError for a value that cannot be part of an experiment name.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{value!r} is not a finite number")
        return np.format_float_positional(v, trim="0")
    if isinstance(value, str):
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(f"string {value!r} has characters outside [A-Za-z0-9_.-]")
        return value
    raise ValueError(f"{value!r} ({type(value).__name__}) is not a number, boolean or name-like string")


def _check_sweep(name: str, sweep: Any, where: str) -> dict[str, list]:
    """A validated copy of a ``sweep`` mapping (``where``: ``'sweep'`` or ``'demo.sweep'``)."""
    prefix = f"experiment {name!r}: {where!r}"
    if not isinstance(sweep, Mapping) or not sweep:
        raise ValueError(f"{prefix} must be a non-empty mapping of experiment keys to lists of values, "
                         f"got {sweep!r}")
    checked: dict[str, list] = {}
    for param, values in sweep.items():
        if not isinstance(param, str) or not NAME_PATTERN.fullmatch(param) or INSTANCE_SEPARATOR in param:
            raise ValueError(f"{prefix}: param {param!r} is not a valid key name")
        if param in RESERVED_PARAMS:
            raise ValueError(f"{prefix}: {param!r} cannot be swept (reserved keys: {', '.join(RESERVED_PARAMS)}); "
                             "configure separate experiments instead")
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"{prefix}: {param!r} must be a non-empty list of values, got {values!r}")
        parts = []
        for value in values:
            try:
                parts.append(format_value(value))
            except ValueError as error:
                raise ValueError(f"{prefix}: value {value!r} of {param!r} cannot be part of an experiment "
                                 f"name: {error}") from None
        repeated = sorted({p for p in parts if parts.count(p) > 1})
        if repeated:
            raise ValueError(f"{prefix}: {param!r} lists the same value more than once ({', '.join(repeated)})")
        checked[param] = list(values)
    return checked


def child_name(name: str, params: Mapping[str, Any]) -> str:
    """``{name}.{param}-{value}`` for each param in order, e.g. ``ctx_sweep.context-401.hidden-128``."""
    return ".".join([name, *(f"{p}-{format_value(v)}" for p, v in params.items())])


def _describe(description: str, params: Mapping[str, Any]) -> str:
    values = ", ".join(f"{p}={format_value(v)}" for p, v in params.items())
    return f"{description} ({values})" if description else values


def _children(name: str, spec: Mapping[str, Any], sweep: Mapping[str, list]) -> list[tuple[str, dict, dict]]:
    """(child name, child mapping, params) per combination, in cartesian-product order."""
    base = {k: copy.deepcopy(v) for k, v in spec.items() if k != "sweep"}
    demo = base.pop("demo", None)
    out = []
    for combination in itertools.product(*sweep.values()):
        params = dict(zip(sweep, combination))
        child = copy.deepcopy(base)
        child.update(params)
        child["description"] = _describe(str(spec.get("description") or ""), params)
        if isinstance(demo, Mapping):
            child["demo"] = {k: copy.deepcopy(v) for k, v in demo.items() if k != "sweep" and k not in params}
        elif demo is not None:  # not a mapping: left for metasplice.experiments.registry to reject
            child["demo"] = copy.deepcopy(demo)
        out.append((child_name(name, params), child, params))
    return out


def expand_sweeps(
    experiments: Mapping[str, Mapping[str, Any]], demo: bool = False
) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """(experiments with every sweep replaced by its children, sweeps).

    ``sweeps`` maps each sweep's name to ``[{"experiment": child name, "params": {param: value}}]``
    in the children's order. ``demo``: use an experiment's ``demo.sweep`` where it has one.
    Experiments without ``sweep`` are passed through unchanged (same objects, same order).
    """
    plain = {name for name, spec in experiments.items() if not (isinstance(spec, Mapping) and "sweep" in spec)}
    expanded: dict[str, dict] = {}
    sweeps: dict[str, list[dict]] = {}
    origin: dict[str, str] = {}  # child name -> sweep that made it
    for name, spec in experiments.items():
        overrides = spec.get("demo") if isinstance(spec, Mapping) else None
        demo_sweep = overrides.get("sweep") if isinstance(overrides, Mapping) else None
        if name in plain:
            if isinstance(overrides, Mapping) and "sweep" in overrides:
                raise ValueError(f"experiment {name!r}: 'demo.sweep' needs a main 'sweep' (an experiment is a "
                                 "sweep in every mode or in none)")
            expanded[name] = spec
            continue
        if INSTANCE_SEPARATOR in name:
            raise ValueError(f"experiment {name!r}: names may not contain {INSTANCE_SEPARATOR!r} (reserved for "
                             "instance suffixes such as __fold3)")
        main = _check_sweep(name, spec["sweep"], "sweep")
        chosen = main
        if isinstance(overrides, Mapping) and "sweep" in overrides:
            checked = _check_sweep(name, demo_sweep, "demo.sweep")
            chosen = checked if demo else main
        entries = []
        for child, child_spec, params in _children(name, spec, chosen):
            if not NAME_PATTERN.fullmatch(child) or INSTANCE_SEPARATOR in child:
                raise ValueError(f"experiment {name!r}: child name {child!r} must match [A-Za-z0-9_.-]+ and may "
                                 f"not contain {INSTANCE_SEPARATOR!r}")
            if child in experiments:
                raise ValueError(f"experiment {name!r}: child {child!r} has the name of a configured experiment")
            if child in origin:
                raise ValueError(f"experiment {name!r}: child {child!r} is also made by sweep {origin[child]!r}")
            origin[child] = name
            expanded[child] = child_spec
            entries.append({"experiment": child, "params": params})
        sweeps[name] = entries
    return expanded, sweeps


def expand_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict]]]:
    """(a shallow copy of a pipeline config with ``experiments`` expanded, sweeps); demo sweeps
    apply when ``dataset`` is ``demo`` (as in :func:`metasplice.experiments.registry.experiment_for`)."""
    experiments, sweeps = expand_sweeps(config.get("experiments") or {}, demo=config.get("dataset") == "demo")
    return {**config, "experiments": experiments}, sweeps


def expand_names(names: Sequence[str], sweeps: Mapping[str, list[dict]]) -> list[str]:
    """Experiment names with each sweep name replaced by its children (e.g. ``evaluation.experiments``)."""
    out: list[str] = []
    for name in names:
        out.extend([e["experiment"] for e in sweeps[name]] if name in sweeps else [name])
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------
# tables


def _name_column(summary: pd.DataFrame) -> str:
    for column in ("experiment", "name"):
        if column in summary.columns:
            return column
    raise ValueError("summary table has no 'experiment' (or 'name') column")


def _one_table(summary: pd.DataFrame, column: str, entries: Sequence[Mapping], suffix: str) -> pd.DataFrame | None:
    rows_by_name = {str(n): i for i, n in enumerate(summary[column])}
    params = list(dict.fromkeys(p for e in entries for p in e["params"]))
    metric_columns = [c for c in METRIC_COLUMNS if c in summary.columns]
    rows = []
    for entry in entries:
        i = rows_by_name.get(entry["experiment"] + suffix)
        if i is None:
            continue
        record = summary.iloc[i]
        rows.append({"experiment": entry["experiment"], **{p: entry["params"].get(p) for p in params},
                     **{c: record[c] for c in metric_columns}})
    if not rows:
        return None
    table = pd.DataFrame(rows, columns=["experiment", *params, *metric_columns])
    empty = [c for c in metric_columns if table[c].isna().all()]
    return table.drop(columns=empty)


def sweep_tables(summary: pd.DataFrame, sweeps: Mapping[str, Sequence[Mapping]]) -> dict[str, pd.DataFrame]:
    """One table per sweep from the report's summary table (:func:`metasplice.evaluation.report.summary_table`).

    Rows: the sweep's children found in the summary (others are skipped), in sweep order. Columns:
    ``experiment``, one per swept param, then the metric columns of :data:`METRIC_COLUMNS` present
    in the summary with at least one value (correlation, ROC-AUC, PR-AUC and F1 at the validation
    threshold with their interval bounds, the paired comparison with the reference). Rows of pooled
    cross-validation (``{child} (CV)``) give a second table ``{sweep} (CV)``. Sweeps without any
    evaluated child get no table.
    """
    column = _name_column(summary)
    tables: dict[str, pd.DataFrame] = {}
    for name, entries in sweeps.items():
        for suffix in ("", CV_SUFFIX):
            table = _one_table(summary, column, entries, suffix)
            if table is not None:
                tables[name + suffix] = table
    return tables


def _shown(value: Any) -> str:
    try:
        return format_value(value)
    except ValueError:
        return str(value)


def sweep_markdown(tables: Mapping[str, pd.DataFrame]) -> str:
    """A ``## Sweeps`` section with one ``### {sweep}`` table each ("" when there is none)."""
    from metasplice.evaluation.report import _ci, _md_table, _p

    if not tables:
        return ""
    parts = ["## Sweeps", "",
             "Test-split values of each combination. Picking the best combination by these numbers selects on the "
             "test set; choose on validation (the training histories' val_auroc) or cross-validation instead.", ""]
    for name, table in tables.items():
        params = [c for c in table.columns if c != "experiment" and c not in METRIC_COLUMNS]
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        header = ["experiment", *params]
        shown = [(label, prefix) for label, prefix in (("correlation (r)", "correlation"), ("ROC-AUC", "roc_auc"),
                                                       ("PR-AUC", "pr_auc"), ("F1 @ val thr", "f1_val_threshold"),
                                                       ("effect-type macro-F1", "effect_type_macro_f1"),
                                                       ("localisation top-1", "localisation_top1"),
                                                       ("interval coverage", "quantile_coverage"))
                 if prefix in table.columns]
        header += [label for label, _ in shown]
        compared = "compared_with" in table.columns
        if compared:
            reference = next((r["compared_with"] for r in records if r["compared_with"] is not None), "reference")
            header += [f"Δ ROC-AUC vs {reference}", "p (bootstrap / DeLong)"]
        rows = []
        for r in records:
            row = [r["experiment"], *("–" if r[p] is None else _shown(r[p]) for p in params)]
            row += [_ci(r, prefix) for _, prefix in shown]
            if compared:
                if r["compared_with"] is None:
                    row += ["–", "–"]
                else:
                    row += [_ci(r, "roc_auc_difference"),
                            f"{_p(r.get('p_roc_auc_bootstrap'), r.get('comparison_n_boot'))} / "
                            f"{_p(r.get('p_roc_auc_delong'))}"]
            rows.append(row)
        parts += [f"### {name}", "", _md_table(header, rows), ""]
    return "\n".join(parts)
