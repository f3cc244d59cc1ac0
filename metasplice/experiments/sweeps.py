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
from collections.abc import Mapping, Sequence
from typing import Any

from metasplice.evaluation.formatting import NAME_PATTERN, format_value

RESERVED_PARAMS: tuple[str, ...] = ("model", "sweep", "demo", "description")
INSTANCE_SEPARATOR = "__"


# --------------------------------------------------------------------------------------------
# expansion


def _check_sweep(name: str, sweep: Any, where: str) -> dict[str, list]:
    """A validated copy of a ``sweep`` mapping (``where``: ``'sweep'`` or ``'demo.sweep'``)."""
    prefix = f"experiment {name!r}: {where!r}"
    if not isinstance(sweep, Mapping) or not sweep:
        raise ValueError(f"{prefix} must be a non-empty mapping of experiment keys to lists of values, got {sweep!r}")
    checked: dict[str, list] = {}
    for param, values in sweep.items():
        if not isinstance(param, str) or not NAME_PATTERN.fullmatch(param) or INSTANCE_SEPARATOR in param:
            raise ValueError(f"{prefix}: param {param!r} is not a valid key name")
        if param in RESERVED_PARAMS:
            raise ValueError(
                f"{prefix}: {param!r} cannot be swept (reserved keys: {', '.join(RESERVED_PARAMS)}); "
                "configure separate experiments instead"
            )
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"{prefix}: {param!r} must be a non-empty list of values, got {values!r}")
        parts = []
        for value in values:
            try:
                parts.append(format_value(value))
            except ValueError as error:
                raise ValueError(
                    f"{prefix}: value {value!r} of {param!r} cannot be part of an experiment name: {error}"
                ) from None
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
                raise ValueError(
                    f"experiment {name!r}: 'demo.sweep' needs a main 'sweep' (an experiment is a "
                    "sweep in every mode or in none)"
                )
            expanded[name] = spec
            continue
        if INSTANCE_SEPARATOR in name:
            raise ValueError(
                f"experiment {name!r}: names may not contain {INSTANCE_SEPARATOR!r} (reserved for "
                "instance suffixes such as __fold3)"
            )
        main = _check_sweep(name, spec["sweep"], "sweep")
        chosen = main
        if isinstance(overrides, Mapping) and "sweep" in overrides:
            checked = _check_sweep(name, demo_sweep, "demo.sweep")
            chosen = checked if demo else main
        entries = []
        for child, child_spec, params in _children(name, spec, chosen):
            if not NAME_PATTERN.fullmatch(child) or INSTANCE_SEPARATOR in child:
                raise ValueError(
                    f"experiment {name!r}: child name {child!r} must match [A-Za-z0-9_.-]+ and may "
                    f"not contain {INSTANCE_SEPARATOR!r}"
                )
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
