"""The execution profiles: what they set, the real-data DAG they plan, and resuming after a kill.

Dry runs use the documented invocations, from the repository root: ``--workflow-profile
profiles/runpod`` (and ``--profile profiles/runpod``) and ``--workflow-profile profiles/slurm``. The
real dataset's inputs are stand-ins (a header-only SpliceVarDB table and a one-contig FASTA given as
local paths); a dry run only needs them to exist.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("default", "runpod", "slurm", "kubernetes")
REAL_RULES = {"fetch_splicevardb", "fetch_genome", "fetch_annotation", "prepare_variants", "extract_sequences"}


def snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """This checkout's workflow in ``workdir``, started from the repository root."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def profile_env(**settings: str) -> dict:
    """The environment without profile settings of the caller (METASPLICE_*, the output cache), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASPLICE_") and k != "SNAKEMAKE_OUTPUT_CACHE"}
    env.update(settings)
    return env


def planned_jobs(output: str) -> list[dict]:
    """Jobs of a dry run's printout: rule, wildcards, threads and resources of each."""
    jobs, job = [], None
    for line in output.splitlines():
        start = re.match(r"^(?:local)?rule (\w+):$", line)
        if start:
            job = {"rule": start.group(1), "resources": {}, "threads": 1, "wildcards": ""}
            jobs.append(job)
        elif job is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "resources":
                job["resources"] = dict(item.split("=", 1) for item in value.split(", "))
            elif key == "threads":
                job["threads"] = int(value)
            elif key == "wildcards":
                job["wildcards"] = value
        else:
            job = None
    return jobs


@pytest.fixture(scope="module")
def rules() -> set[str]:
    """Rules of this workflow (the later steps join the DAG checks once the Snakefile includes them)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--list-rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(proc.stdout.split())


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory) -> dict:
    """A run directory for the real dataset with stand-in inputs, and the config file pointing at them."""
    workdir = tmp_path_factory.mktemp("real_run")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    (workdir / "data").mkdir()
    (workdir / "data/splicevardb.tsv").write_text("variant_id\tgene\thg19\thg38\tclassification\n")
    (workdir / "data/GRCh38.fa").write_text(">chr1\nACGTACGTAC\n")
    overrides = workdir / "paths.yaml"
    overrides.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "splicevardb_grch38": {
                        "splicevardb": {"path": "data/splicevardb.tsv"},
                        "genome": {"path": "data/GRCh38.fa"},
                    }
                }
            }
        )
    )
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return {"workdir": workdir, "configfile": str(overrides), "config": config}


def expected_training_gpus(config: dict) -> int:
    """GPUs a real-data training job declares by config (training.gpu, default 0 in the registry)."""
    return int((config.get("training") or {}).get("gpu", 0))


# --------------------------------------------------------------------------------------------------
# what each profile sets (parsed by Snakemake's own command-line parser)


def parsed_args(monkeypatch, *args: str, **env: str):
    from snakemake.cli import parse_args

    for key in [k for k in os.environ if k.startswith("METASPLICE_") or k == "SNAKEMAKE_OUTPUT_CACHE"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT)
    return parse_args(["--snakefile", str(ROOT / "Snakefile"), *args])[1]


def value(resource, attempt: int = 1):
    """A parsed profile resource's value: expressions (quoted strings, memory per attempt) evaluated
    the way Snakemake evaluates them for a job's ``attempt``."""
    if not resource.is_evaluable():
        return resource.value
    return eval(resource.raw, {"attempt": attempt})


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_is_loadable(name, monkeypatch):
    from snakemake.profiles import ProfileConfigFileParser

    monkeypatch.setenv("METASPLICE_K8S_IMAGE", "registry.example/metasplice:1")
    monkeypatch.setenv("METASPLICE_STORAGE_PREFIX", "s3://bucket/run")
    with open(ROOT / "profiles" / name / "config.yaml") as fh:
        settings = ProfileConfigFileParser().parse(fh)
    assert settings["rerun-incomplete"] == "True"
    if name != "default":
        assert settings["keep-going"] == "True" and settings["retries"] == "1"
        assert "code" not in settings["rerun-triggers"]  # a git pull must not retrain every model


def test_runpod_profile(monkeypatch, tmp_path):
    args = parsed_args(monkeypatch, "--workflow-profile", "profiles/runpod")
    from snakemake.utils import available_cpu_count

    assert args.cores == available_cpu_count()  # cores: all
    assert value(args.resources["gpu"]) == 1  # GPU jobs queue for the pod's one GPU
    assert value(args.default_resources["gpu"]) == 0
    assert args.config == ["dataset=splicevardb_grch38"]
    assert args.keep_going and args.rerun_incomplete and args.retries == 1
    assert {t.name for t in args.rerun_triggers} == {"MTIME", "INPUT", "PARAMS", "SOFTWARE_ENV"}
    assert args.cache is None and args.directory is None
    # the run directory and the between-workflow cache follow the environment
    args = parsed_args(
        monkeypatch,
        "--workflow-profile",
        "profiles/runpod",
        METASPLICE_RUN_DIR=str(tmp_path),
        SNAKEMAKE_OUTPUT_CACHE=str(tmp_path / "cache"),
        METASPLICE_GPUS="2",
    )
    assert str(args.directory) == str(tmp_path)
    assert args.cache == []  # --cache for every rule with a cache: directive
    assert value(args.resources["gpu"]) == 2


def test_slurm_profile_defaults_and_environment(monkeypatch):
    args = parsed_args(monkeypatch, "--workflow-profile", "profiles/slurm")
    assert args.executor == "slurm" and args.jobs == 100
    resources = args.default_resources
    assert value(resources["runtime"]) == 60 and value(resources["gpu"]) == 0
    assert "slurm_partition" not in resources and "slurm_account" not in resources  # cluster default / plugin's guess
    assert value(resources["mem_mb"]) == 4000
    assert value(resources["mem_mb"], attempt=2) == 8000  # a retry gets twice the memory
    train = args.set_resources["train"]
    assert value(train["runtime"]) == 720 and "gpu" not in train and "gpu_model" not in train  # GPUs: from config
    assert value(train["mem_mb"]) == 32000

    args = parsed_args(
        monkeypatch,
        "--workflow-profile",
        "profiles/slurm",
        METASPLICE_SLURM_ACCOUNT="lab42",
        METASPLICE_SLURM_PARTITION="all",
        METASPLICE_SLURM_GPU_PARTITION="gpu",
        METASPLICE_SLURM_RUNTIME="90",
        METASPLICE_SLURM_TRAIN_RUNTIME="1440",
        METASPLICE_SLURM_GPU_MODEL="a100",
        METASPLICE_SLURM_CPUS_PER_GPU="8",
        METASPLICE_SLURM_GPUS="2",
    )
    resources, train = args.default_resources, args.set_resources["train"]
    # string resources stay strings even when they name a Python builtin (a partition called "all")
    assert value(resources["slurm_account"]) == "lab42" and value(resources["slurm_partition"]) == "all"
    assert value(resources["runtime"]) == 90
    assert value(train["slurm_partition"]) == "gpu" and value(train["gpu_model"]) == "a100"
    assert value(train["cpus_per_gpu"]) == 8 and value(train["gpu"]) == 2 and value(train["runtime"]) == 1440
    # base-model scoring follows base_models.*.gpu (0 by default): its own partition and GPU type
    assert value(args.set_resources["base_model_scores"]["slurm_partition"]) == "all"
    assert "gpu_model" not in args.set_resources["base_model_scores"]
    args = parsed_args(
        monkeypatch,
        "--workflow-profile",
        "profiles/slurm",
        METASPLICE_SLURM_SCORE_PARTITION="gpu",
        METASPLICE_SLURM_SCORE_GPU_MODEL="h100",
    )
    scoring = args.set_resources["base_model_scores"]
    assert value(scoring["slurm_partition"]) == "gpu" and value(scoring["gpu_model"]) == "h100"
    assert "slurm_partition" not in args.set_resources["train"]


def test_kubernetes_profile_gpu_handling(monkeypatch):
    """Not runnable here (no cluster, plugin not installed): check what the plugin would get."""
    from snakemake.profiles import ProfileConfigFileParser

    monkeypatch.setenv("METASPLICE_K8S_IMAGE", "registry.example/metasplice:1")
    monkeypatch.setenv("METASPLICE_STORAGE_PREFIX", "s3://bucket/run")
    with open(ROOT / "profiles/kubernetes/config.yaml") as fh:
        settings = ProfileConfigFileParser().parse(fh)
    assert settings["executor"] == "kubernetes"
    assert settings["container-image"] == "registry.example/metasplice:1"
    # the plugin makes any job with a `gpu` resource a GPU job: no default gpu, vendor on the GPU rules
    assert not any(r.startswith("gpu=") for r in settings["default-resources"])
    vendor_rules = {
        entry.split(":", 1)[0] for entry in settings["set-resources"] if entry.endswith(":gpu_manufacturer='nvidia'")
    }
    assert {"train", "base_model_scores", "score_vcf"} <= vendor_rules
    monkeypatch.setenv("METASPLICE_K8S_GPU_VENDOR", "amd")
    with open(ROOT / "profiles/kubernetes/config.yaml") as fh:
        amd = ProfileConfigFileParser().parse(fh)["set-resources"]
    assert {e.split(":", 1)[0] for e in amd if e.endswith(":gpu_manufacturer='amd'")} == vendor_rules
    monkeypatch.delenv("METASPLICE_K8S_IMAGE")
    with open(ROOT / "profiles/kubernetes/config.yaml") as fh, pytest.raises(Exception, match="METASPLICE_K8S_IMAGE"):
        ProfileConfigFileParser().parse(fh)


RULES_WITH_GPU = """
from pathlib import Path
import sys
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path(sys.argv[1]),
                            workdir=Path(sys.argv[2]))
    print("GPU RULES:", *sorted(r.name for r in workflow._workflow.rules if "gpu" in r.resources))
"""


def test_kubernetes_profile_gives_a_vendor_to_every_rule_with_a_gpu_resource(monkeypatch, tmp_path):
    """The plugin refuses any job that has a `gpu` resource (0 included) but no gpu_manufacturer."""
    from snakemake.profiles import ProfileConfigFileParser

    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = subprocess.run(
        [sys.executable, "-c", RULES_WITH_GPU, str(ROOT / "Snakefile"), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=profile_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gpu_rules = {
        name for line in proc.stdout.splitlines() if line.startswith("GPU RULES:") for name in line.split()[2:]
    }
    assert {"train", "base_model_scores", "score_vcf"} <= gpu_rules, gpu_rules

    monkeypatch.setenv("METASPLICE_K8S_IMAGE", "registry.example/metasplice:1")
    monkeypatch.setenv("METASPLICE_STORAGE_PREFIX", "s3://bucket/run")
    with open(ROOT / "profiles/kubernetes/config.yaml") as fh:
        settings = ProfileConfigFileParser().parse(fh)
    vendor_rules = {entry.split(":", 1)[0] for entry in settings["set-resources"] if ":gpu_manufacturer=" in entry}
    assert gpu_rules <= vendor_rules, sorted(gpu_rules - vendor_rules)


# --------------------------------------------------------------------------------------------------
# the real-data DAG, planned through the profiles


def expected_training_jobs(config: dict) -> int:
    """Trained experiments (sweeps expanded) plus one out-of-fold instance per stacked member and group."""
    from metasplice.experiments.registry import trained_experiments
    from metasplice.experiments.stacking import OOFConfig, StackConfig, is_stacked
    from metasplice.experiments.sweeps import expand_sweeps

    demo = config.get("dataset") == "demo"
    experiments = expand_sweeps(config.get("experiments") or {}, demo=demo)[0]
    members = {
        m
        for name, spec in experiments.items()
        if is_stacked(spec)
        for m in StackConfig.from_spec(name, spec, demo).members
    }
    return len(trained_experiments(experiments)) + len(members) * OOFConfig.from_config(config).oof_folds


def check_real_dag(jobs: list[dict], config: dict, rules: set[str], gpu_key: str = "gpu") -> dict[str, list[dict]]:
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert set(by_rule) >= REAL_RULES, sorted(by_rule)
    assert "make_demo" not in by_rule  # the real dataset, not the demo
    assert len(by_rule["extract_sequences"]) == len(config["sequences"]["contexts"])
    if "train" in rules:
        assert len(by_rule["train"]) == expected_training_jobs({**config, "dataset": "splicevardb_grch38"})
        for job in by_rule["train"]:
            assert int(job["resources"][gpu_key]) == expected_training_gpus(config), job
    for job in jobs:
        if job["rule"] != "all":
            assert gpu_key in job["resources"], job  # every job declares its GPUs (0 for CPU jobs)
    return by_rule


@pytest.mark.parametrize("flag", ["--workflow-profile", "--profile"])
def test_runpod_plans_the_real_dag(real_inputs, rules, flag):
    proc = snakemake(
        real_inputs["workdir"],
        "-n",
        flag,
        "profiles/runpod",
        "--configfile",
        real_inputs["configfile"],
        env=profile_env(),
    )
    by_rule = check_real_dag(planned_jobs(proc.stdout), real_inputs["config"], rules)
    assert "resources/genome/GRCh38.fa" in proc.stdout
    for job in by_rule.get("base_model_scores", []):
        assert job["resources"]["gpu"] == "1", job  # on the pod, scoring holds the GPU like training


def test_slurm_plans_the_real_dag(real_inputs, rules):
    env = profile_env(
        METASPLICE_SLURM_PARTITION="cpu",
        METASPLICE_SLURM_GPU_PARTITION="gpu",
        METASPLICE_SLURM_GPU_MODEL="a100",
        METASPLICE_SLURM_ACCOUNT="lab42",
    )
    proc = snakemake(
        real_inputs["workdir"],
        "-n",
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        real_inputs["configfile"],
        "--config",
        "dataset=splicevardb_grch38",
        env=env,
    )
    by_rule = check_real_dag(planned_jobs(proc.stdout), real_inputs["config"], rules)
    for rule, jobs in by_rule.items():
        for job in jobs:
            if rule == "all":
                continue
            resources = job["resources"]
            assert resources["slurm_account"] == "lab42", job
            if rule == "train":
                assert resources["slurm_partition"] == "gpu" and resources["gpu_model"] == "a100", job
                assert resources["runtime"] == "720" and resources["mem_mb"] == "32000", job
            elif rule == "base_model_scores":  # a CPU job unless base_models.*.gpu says otherwise
                assert resources["slurm_partition"] == "cpu" and "gpu_model" not in resources, job
                assert resources["runtime"] == "360", job
            else:
                assert resources["slurm_partition"] == "cpu", job
                assert resources["runtime"] == "60" and resources["mem_mb"] == "4000", job


# --------------------------------------------------------------------------------------------------
# a run killed in the middle of a job


def test_a_killed_run_resumes_with_rerun_incomplete(tmp_path):
    """Kill Snakemake while make_demo runs, leave a half-written output behind (what a tool that writes
    in place leaves), then: without --rerun-incomplete Snakemake refuses; with the runpod profile it
    needs `--unlock` once (the killed run's lock) and then rebuilds the file."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    target = "resources/demo/genome.fa"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--cores",
        "1",
        target,
    ]
    run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    markers = tmp_path / ".snakemake/incomplete"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and run.poll() is None:
            if markers.is_dir() and any(p.name != "migration_underway" for p in markers.iterdir()):
                break
            time.sleep(0.02)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the whole session: Snakemake and the job it started
        run.wait()
    assert run.returncode == -signal.SIGKILL, "make_demo finished before it could be killed"
    assert list((tmp_path / ".snakemake/locks").iterdir()), "the killed run left no lock"
    (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / target).write_text(">chr1\nACGTN")  # half-written output of the killed job

    plain = snakemake(tmp_path, "-n", "--workflow-profile", "none", "--cores", "1", target, check=False)
    assert plain.returncode != 0 and "IncompleteFilesException" in plain.stdout + plain.stderr

    profile = ["--workflow-profile", "profiles/runpod", "--config", "dataset=demo"]  # targets go before --config
    locked = snakemake(tmp_path, target, *profile, env=profile_env(), check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(tmp_path, *profile, "--unlock", env=profile_env())
    rerun = snakemake(tmp_path, target, *profile, env=profile_env())
    assert "make_demo" in rerun.stdout + rerun.stderr
    genome = (tmp_path / target).read_text()
    assert len(genome) > 1000 and (tmp_path / f"{target}.fai").is_file()
    assert not [p for p in markers.iterdir() if p.name != "migration_underway"]
