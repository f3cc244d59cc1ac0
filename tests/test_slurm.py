"""The demo pipeline on a real one-node SLURM cluster through profiles/slurm.

tests/slurm/start_slurm.sh installs (when missing) and starts slurmctld + slurmd on localhost; the
workflow then runs with ``--workflow-profile profiles/slurm`` (snakemake-executor-plugin-slurm), so
every job goes through sbatch. The test checks the SLURM side (each job has a SLURM job id, finished
COMPLETED in the run directory, with the partition, time limit and memory the profile took from the
environment) and that the outputs equal those of a local run of the same targets. The annotate
scenario (.test/annotate) runs the same way: its shards are SLURM jobs, and the gathered VCF equals a
one-job run of `metasplice spliceai` on the whole file.

Skipped, with the reason, only where a cluster cannot be started here (not root, no apt-get, a
SLURM of someone else's on the machine). With CI=true that is a failure instead.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPTS = Path(__file__).resolve().parent / "slurm"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
CANNOT_START = 3  # start_slurm.sh: this machine cannot run the test cluster

# Cheap demo targets (about a minute through SLURM): the variant table and one window length, plus one
# small training run when the workflow has the train rule and the experiment.
TARGETS = [
    "results/variants/variants.parquet",
    "results/variants/summary.tsv",
    "results/variants/rejected.tsv",
    "results/sequences/ctx401.npz",
]
BASE_RULES = {"make_demo", "prepare_variants", "extract_sequences"}
# downloads run where Snakemake runs (Snakefile `localrules:`): compute nodes often have no network
LOCAL_RULES = {"fetch_splicevardb", "fetch_genome", "fetch_annotation"}
TRAIN_EXPERIMENT = "binary_quick"  # binary task: needs no base-model scores, a few seconds on the demo
# Values the profile reads from the environment, checked on the submitted jobs.
SLURM_ENV = {
    "METASPLICE_SLURM_PARTITION": "debug",
    "METASPLICE_SLURM_RUNTIME": "30",
    "METASPLICE_SLURM_MEM_MB": "1500",
    "METASPLICE_SLURM_TRAIN_RUNTIME": "20",
    "METASPLICE_SLURM_TRAIN_MEM_MB": "2500",
}
# The one-node cluster has no accounting database: status through squeue, checked every second.
FAST_STATUS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
    "--slurm-keep-successful-logs",
]


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run this checkout's workflow in ``workdir`` (from the repository root, as the README does)."""
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
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def clean_env(**extra: str) -> dict:
    """This process's environment without METASPLICE_SLURM_* settings of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METASPLICE_SLURM_")}
    env.update(extra)
    return env


def workflow_targets() -> list[str]:
    """TARGETS, plus the training run when this workflow trains ``TRAIN_EXPERIMENT``."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--list-rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = set(proc.stdout.split())
    config = (ROOT / "config.yaml").read_text()
    if "train" in rules and re.search(rf"^\s+{TRAIN_EXPERIMENT}:", config, re.MULTILINE):
        return [
            *TARGETS,
            f"results/models/{TRAIN_EXPERIMENT}/model.pt",
            f"results/models/{TRAIN_EXPERIMENT}/history.tsv",
        ]
    return list(TARGETS)


def _logs(state: Path) -> str:
    parts = []
    for log in sorted((state / "log").glob("*.log")):
        parts.append(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster for this module; its daemons are stopped at the end in any case."""
    lock_path = Path(tempfile.gettempdir()) / "metasplice-test-slurm.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test cluster per machine: /etc/slurm/slurm.conf is global
        state = tmp_path_factory.mktemp("slurm_state")
        try:
            proc = subprocess.run(
                ["bash", str(SLURM_SCRIPTS / "start_slurm.sh"), str(state)], capture_output=True, text=True, timeout=900
            )
            if proc.returncode == CANNOT_START:
                reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "start_slurm.sh: exit 3"
                if IN_CI:
                    pytest.fail(f"CI=true, but SLURM could not be started: {reason}")
                pytest.skip(reason)
            assert proc.returncode == 0, f"start_slurm.sh failed ({proc.returncode}):\n{proc.stderr}\n{_logs(state)}"
            yield state
        finally:
            subprocess.run(["bash", str(SLURM_SCRIPTS / "stop_slurm.sh"), str(state)], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def targets() -> list[str]:
    return workflow_targets()


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, targets, tmp_path_factory) -> dict:
    """The targets built through SLURM; the submitted jobs as ``scontrol show job`` sees them."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    started = time.monotonic()
    proc = snakemake(
        workdir, *targets, "--workflow-profile", "profiles/slurm", *FAST_STATUS, env=clean_env(**SLURM_ENV)
    )
    log = proc.stdout + proc.stderr
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    jobs = {}
    for _, slurm_id, slurm_log in submitted:
        show = subprocess.run(["scontrol", "-o", "show", "job", slurm_id], capture_output=True, text=True)
        fields = dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", show.stdout))
        jobs[slurm_id] = {"log": Path(slurm_log), "scontrol": fields, "raw": show.stdout + show.stderr}
    return {
        "workdir": workdir,
        "log": log,
        "jobs": jobs,
        "n_submitted": len(submitted),
        "seconds": time.monotonic() - started,
    }


@pytest.fixture(scope="module")
def local_run(targets, tmp_path_factory) -> Path:
    """The same targets with the local executor (the auto-loaded default profile)."""
    workdir = tmp_path_factory.mktemp("local_run")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    snakemake(workdir, *targets, "--cores", "2", env=clean_env())
    return workdir


def rule_of(slurm_log: Path) -> str:
    """Rule name from the plugin's log path .snakemake/slurm_logs/rule_<name>/[<wildcards>/]<id>.log."""
    return next(part[len("rule_") :] for part in slurm_log.parts if part.startswith("rule_"))


def test_every_job_went_through_sbatch(slurm_run, targets):
    jobs, log = slurm_run["jobs"], slurm_run["log"]
    assert jobs, f"no job was submitted to SLURM:\n{log[-4000:]}"
    expected = BASE_RULES | ({"train"} if any("results/models/" in t for t in targets) else set())
    assert {rule_of(job["log"]) for job in jobs.values()} == expected
    # every other job Snakemake ran was a SLURM job, each under its own job id; the downloads ran locally
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log)
    assert len(finished) == slurm_run["n_submitted"] + len(LOCAL_RULES) and slurm_run["n_submitted"] == len(jobs)
    assert {rule for _, rule in finished} - expected == LOCAL_RULES, log[-4000:]
    assert set(re.findall(r"localrule (\w+):", log)) == LOCAL_RULES, log[-4000:]
    for slurm_id, job in jobs.items():
        fields = job["scontrol"]
        assert fields.get("JobState") == "COMPLETED", f"SLURM job {slurm_id}:\n{job['raw']}"
        assert fields.get("ExitCode") == "0:0", job["raw"]
        assert Path(fields["WorkDir"]).resolve() == slurm_run["workdir"].resolve(), job["raw"]
        assert fields.get("NodeList") == "localhost", job["raw"]
        # the jobstep's own Snakemake log, kept by --slurm-keep-successful-logs
        assert job["log"].is_file(), job["log"]
        assert "slurm-jobstep" in job["log"].read_text(errors="replace"), job["log"]


def test_profile_resources_reach_sbatch(slurm_run):
    """Partition, time limit and memory come from METASPLICE_SLURM_* through the profile; the demo's
    training job asks for no GPU because config (training.demo.gpu: 0) says so."""
    for _slurm_id, job in slurm_run["jobs"].items():
        fields, rule = job["scontrol"], rule_of(job["log"])
        assert fields.get("Partition") == SLURM_ENV["METASPLICE_SLURM_PARTITION"], job["raw"]
        if rule == "train":
            assert fields.get("TimeLimit") == "00:20:00", job["raw"]
            assert fields.get("MinMemoryNode") == "2500M", job["raw"]
        else:
            assert fields.get("TimeLimit") == "00:30:00", job["raw"]
            assert fields.get("MinMemoryNode") == "1500M", job["raw"]
        assert "gpu" not in fields.get("TRES", ""), job["raw"]


def test_outputs_equal_a_local_run(slurm_run, local_run, targets):
    on_slurm = slurm_run["workdir"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(on_slurm / "results/variants/variants.parquet"),
        pd.read_parquet(local_run / "results/variants/variants.parquet"),
    )
    for table in ("results/variants/summary.tsv", "results/variants/rejected.tsv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(on_slurm / table, sep="\t", keep_default_na=False),
            pd.read_csv(local_run / table, sep="\t", keep_default_na=False),
        )
    with (
        np.load(on_slurm / "results/sequences/ctx401.npz") as a,
        np.load(local_run / "results/sequences/ctx401.npz") as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"ctx401.npz[{key}]")
    if not any("results/models/" in t for t in targets):
        return
    import torch

    from metasplice.models.registry import load_checkpoint

    history = f"results/models/{TRAIN_EXPERIMENT}/history.tsv"
    a = pd.read_csv(on_slurm / history, sep="\t").drop(columns=["seconds"], errors="ignore")
    b = pd.read_csv(local_run / history, sep="\t").drop(columns=["seconds"], errors="ignore")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5)
    model = f"results/models/{TRAIN_EXPERIMENT}/model.pt"
    ckpt_a, ckpt_b = load_checkpoint(on_slurm / model), load_checkpoint(local_run / model)
    assert ckpt_a["model_config"] == ckpt_b["model_config"]
    assert ckpt_a["state_dict"].keys() == ckpt_b["state_dict"].keys()
    for name, tensor in ckpt_a["state_dict"].items():
        torch.testing.assert_close(tensor, ckpt_b["state_dict"][name], msg=f"{model}: {name}")


def test_slurm_run_is_complete_and_resumable(slurm_run, targets):
    """A second invocation with the same profile finds nothing to do (outputs and metadata complete)."""
    proc = snakemake(
        slurm_run["workdir"], *targets, "--workflow-profile", "profiles/slurm", "--dry-run", env=clean_env()
    )
    assert "Nothing to be done" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------
# the annotate scenario (.test/annotate) through sbatch: shards scored as SLURM jobs, gathered VCF
# equal to a one-job run of `metasplice spliceai` on the whole file

ANNOTATE_SCENARIO = ROOT / ".test" / "annotate"
ANNOTATE_SHARD_RECORDS = 20  # the scenario's 58 records in at least 3 shards
ANNOTATE_MEM_MB = 2000  # base_models.spliceai.mem_mb: what each shard job asks SLURM for


@pytest.fixture(scope="module")
def slurm_annotate(slurm_cluster, tmp_path_factory) -> dict:
    import yaml

    workdir = tmp_path_factory.mktemp("slurm_annotate")
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    config = yaml.safe_load((ANNOTATE_SCENARIO / "config.yaml").read_text())
    section = config["annotate"]
    section["vcfs"] = {name: str(ROOT / path) for name, path in section["vcfs"].items()}
    section["reference"] = str(ROOT / section["reference"])
    section.update(base_models=["spliceai"], shard_records=ANNOTATE_SHARD_RECORDS)
    config["base_models"] = {"spliceai": {"device": "cpu", "threads": 1, "mem_mb": ANNOTATE_MEM_MB}}
    (workdir / "annotate.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(
        workdir,
        "annotate",
        "--configfile",
        str(workdir / "annotate.yaml"),
        "--workflow-profile",
        "profiles/slurm",
        *FAST_STATUS,
        env=clean_env(**SLURM_ENV),
    )
    log = proc.stdout + proc.stderr
    jobs = {}
    for _, slurm_id, slurm_log in re.findall(
        r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log
    ):
        show = subprocess.run(["scontrol", "-o", "show", "job", slurm_id], capture_output=True, text=True)
        jobs[slurm_id] = {
            "rule": rule_of(Path(slurm_log)),
            "scontrol": dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", show.stdout)),
            "raw": show.stdout + show.stderr,
        }
    return {"workdir": workdir, "log": log, "jobs": jobs, "section": section}


def test_annotate_shards_run_as_slurm_jobs_and_equal_a_one_job_run(slurm_annotate, tmp_path):
    from metasplice.cli import main as cli_main
    from metasplice.predict.shards import shard_ids

    workdir, jobs, section = slurm_annotate["workdir"], slurm_annotate["jobs"], slurm_annotate["section"]
    ((name, vcf),) = section["vcfs"].items()
    shards = shard_ids(workdir / f"results/annotate/{name}/shards")
    assert len(shards) >= 3
    rules = sorted(job["rule"] for job in jobs.values())
    assert rules == sorted(["annotate_split", "annotate_gather", *["annotate_score"] * len(shards)]), rules
    for slurm_id, job in jobs.items():
        fields = job["scontrol"]
        assert fields.get("JobState") == "COMPLETED" and fields.get("ExitCode") == "0:0", f"{slurm_id}:\n{job['raw']}"
        if job["rule"] == "annotate_score":  # the base model's resources reach sbatch
            assert fields.get("MinMemoryNode") == f"{ANNOTATE_MEM_MB}M", job["raw"]
    one = tmp_path / "one.vcf"
    args = ["spliceai", "-I", vcf, "-O", str(one), "-R", section["reference"], "-A", section["annotation"]]
    code = cli_main([*args, "--no-progress", "--device", "cpu"])
    assert code == 0
    gathered = workdir / f"results/annotate/{name}.vcf.gz"
    assert Path(f"{gathered}.tbi").is_file()
    with gzip.open(gathered, "rt", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        assert fh.read() == one.read_text(encoding="utf-8", errors="surrogateescape")
