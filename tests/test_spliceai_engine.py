"""The incremental engine against the full-window oracle (same numbers, far less arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_spliceai_fixtures import chr10_genome, spliceai_model  # noqa: F401 (fixtures)

from metasplice.base_models.engine import IncrementalBackend, _conv, _conv_fft, _fft_length, _spectrum
from metasplice.base_models.jobs import AltJob, Segment, alt_sequence
from metasplice.base_models.spliceai.model import Ensemble, SpliceNet
from metasplice.base_models.spliceai.scoring import AlleleTask, GeneInfo, ScoreConfig, format_entry, score_tasks
from metasplice.base_models.windowed import WindowedBackend


def random_ensemble(seed: int, slope: float, groups=((11, 1), (11, 4)), members: int = 2) -> Ensemble:
    """Small random networks (context 400) with non-trivial batch-norm affines."""
    torch.manual_seed(seed)
    nets = []
    for _ in range(members):
        net = SpliceNet(groups=groups, negative_slope=slope)
        for unit in net.units:
            for bn in (unit.bn1, unit.bn2):
                bn.scale.data = torch.rand(bn.scale.shape) * 2 - 0.5  # some negative scales too
                bn.shift.data = torch.randn(bn.shift.shape) * 0.5
        nets.append(net.eval())
    return Ensemble(nets).eval()


def random_jobs(rng: np.random.Generator, seg: Segment, flank: int, distance: int, n: int) -> list[AltJob]:
    jobs = []
    for _ in range(n):
        kind = rng.choice(["snv", "ins", "del", "bigdel"] if distance else ["snv", "ins"])
        ref_len = {"snv": 1, "ins": 1, "del": min(int(rng.integers(2, 6)), 2 * distance), "bigdel": 2 * distance}[kind]
        alt_len = int(rng.integers(2, 8)) if kind == "ins" else 1
        alt = rng.integers(0, 5, alt_len).astype(np.uint8)
        lo_edge = flank + distance
        edit = int(rng.integers(lo_edge, seg.length - lo_edge - ref_len))
        anchor_at_end = bool(rng.integers(0, 2))  # minus-strand jobs keep the anchor at the right end
        ref_lo = edit + (ref_len - 1 if anchor_at_end else 0) - distance
        jobs.append(
            AltJob(0, edit, ref_len, alt, ref_lo, 2 * distance + 1, ref_lo, 2 * distance + 1 + alt_len - ref_len)
        )
    return jobs


@pytest.mark.parametrize("reference", ["pyramid", "segment"])
@pytest.mark.parametrize("slope", [0.0, 0.1])
@pytest.mark.parametrize("distance", [0, 7, 50])
def test_incremental_equals_windowed_on_random_networks(slope: float, distance: int, reference: str) -> None:
    model = random_ensemble(3, slope)
    rng = np.random.default_rng(distance)
    tokens = rng.integers(0, 4, 3000).astype(np.uint8)
    tokens[:300] = 4  # transcript masking: N outside the transcript
    tokens[2700:] = 4
    seg = Segment(tokens, "random")
    oracle = WindowedBackend(model, batch_size=16)
    jobs = random_jobs(rng, seg, oracle.flank, distance, 24)
    fast = IncrementalBackend(model, batch_size=5, reference=reference)
    expected = oracle.predict([seg], jobs)
    got = fast.predict([seg], jobs)
    for job, (er, ea), (gr, ga) in zip(jobs, expected, got):
        assert gr.shape == er.shape and ga.shape == ea.shape, job
        np.testing.assert_allclose(gr, er, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ga, ea, atol=1e-5, rtol=0)


def test_segments_sharing_a_batch_and_jobs_split_over_groups() -> None:
    """Several segments concatenated in one reference pass, jobs spread over groups and batches."""
    model = random_ensemble(5, 0.0)
    rng = np.random.default_rng(11)
    segs = [
        Segment(rng.integers(0, 5, int(n)).astype(np.uint8), f"s{i}") for i, n in enumerate([900, 1500, 1500, 1100])
    ]
    oracle = WindowedBackend(model)
    jobs = []
    for s, seg in enumerate(segs):
        for job in random_jobs(rng, seg, oracle.flank, 20, 7):
            jobs.append(AltJob(s, job.edit, job.ref_len, job.alt, job.ref_lo, job.n_ref, job.alt_lo, job.n_alt))
    expected = oracle.predict(segs, jobs)
    for fast in (
        IncrementalBackend(model, batch_size=4, max_rows=2500, max_jobs=6),
        IncrementalBackend(model, batch_size=4, max_rows=2500, max_jobs=6, reference="segment"),
        IncrementalBackend(model, batch_size=8, max_rows=10_000, pad_ratio=0.3),
        IncrementalBackend(model, batch_size=8, max_rows=10_000, pad_ratio=0.3, reference="segment"),
    ):  # padded, batched
        for (er, ea), (gr, ga) in zip(expected, fast.predict(segs, jobs)):
            np.testing.assert_allclose(gr, er, atol=1e-5, rtol=0)
            np.testing.assert_allclose(ga, ea, atol=1e-5, rtol=0)


def test_pyramid_reference_skips_unneeded_and_masked_positions() -> None:
    """Jobs far apart in a long segment with masked (N) ends: the pyramid pass computes only the
    variants' pyramids outside the N runs, far less than the whole segment, with the same outputs."""
    model = random_ensemble(7, 0.0, groups=((11, 1), (11, 4), (21, 10)))
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 4, 9000).astype(np.uint8)
    tokens[:2500] = 4
    tokens[7000:] = 4
    seg = Segment(tokens, "long")
    flank = model.context // 2
    edits = [2520, 2600, 4500, 6950]  # next to the masked start, mid-segment, next to the masked end
    jobs = [AltJob(0, e, 1, np.array([(tokens[e] + 1) % 4], np.uint8), e - 20, 41, e - 20, 41) for e in edits]
    assert min(edits) - 20 - flank >= 0 and max(edits) + 20 + flank < len(tokens)
    expected = WindowedBackend(model).predict([seg], jobs)
    macs = {}
    for reference in ("pyramid", "segment"):
        fast = IncrementalBackend(model, batch_size=4, reference=reference)
        got = fast.predict([seg], jobs)
        macs[reference] = fast.macs
        for (er, ea), (gr, ga) in zip(expected, got):
            np.testing.assert_allclose(gr, er, atol=1e-5, rtol=0)
            np.testing.assert_allclose(ga, ea, atol=1e-5, rtol=0)
    assert macs["pyramid"] < 0.6 * macs["segment"], macs


@pytest.mark.parametrize("width", [137, 1001, 1203])
def test_fft_convolution_is_closer_to_float64_than_the_direct_one(width: int) -> None:
    """The wide dilated kernels' FFT path: every output within float32 error of the exact value, with
    the activation applied on the way in, whatever the input width (FFT lengths of any size)."""
    torch.manual_seed(width)
    k, d, c = 41, 3, 32
    w = (torch.randn(c, c, 1, k) * 0.05).contiguous(memory_format=torch.channels_last)
    b, scale, shift = torch.randn(c), torch.rand(c) + 0.5, torch.randn(c)
    x = torch.randn(4, width, c)
    out = width - d * (k - 1)
    n = _fft_length(width, d)
    assert n >= width and n % d == 0
    exact = torch.nn.functional.conv2d(
        torch.relu(x.double() * scale.double() + shift.double()).permute(0, 2, 1).unsqueeze(2),
        w.double(),
        b.double(),
        dilation=(1, d),
    )[:, :, 0].permute(0, 2, 1)
    got = _conv_fft(x, _spectrum(w, d, n), b, n, out, (scale, shift, 0.0))
    direct = _conv(torch.relu(x * scale + shift), w, b, d)
    assert got.shape == direct.shape == (4, out, c)
    err_fft = (got.double() - exact).abs().max().item()
    err_direct = (direct.double() - exact).abs().max().item()
    assert err_fft < 1e-5 and err_fft <= 2 * err_direct


@pytest.mark.parametrize(("distance", "block"), [(0, 5400), (50, 5400), (50, 256)])
def test_fft_and_direct_convolutions_give_the_same_probabilities(distance: int, block: int, monkeypatch) -> None:
    """The engine with wide kernels (k = 41) through the FFT - alt frames, and reference pieces in one
    block or in overlapping blocks (``block`` outputs each) - equals the direct convolutions and the
    windowed oracle, SNVs and indels alike."""
    from metasplice.base_models import engine

    monkeypatch.setattr(engine, "FFT_BLOCK", block)
    model = random_ensemble(5, 0.0, groups=((11, 1), (41, 2)))
    rng = np.random.default_rng(distance + 1)
    tokens = rng.integers(0, 4, 3000).astype(np.uint8)
    tokens[:200] = 4
    seg = Segment(tokens, "random")
    oracle = WindowedBackend(model, batch_size=16)
    jobs = random_jobs(rng, seg, oracle.flank, distance, 20)
    fft = IncrementalBackend(model, batch_size=6, fft=True)
    direct = IncrementalBackend(model, batch_size=6, fft=False)
    results = zip(oracle.predict([seg], jobs), fft.predict([seg], jobs), direct.predict([seg], jobs))
    for (expected_ref, expected_alt), (fft_ref, fft_alt), (direct_ref, direct_alt) in results:
        np.testing.assert_allclose(fft_alt, direct_alt, atol=2e-6, rtol=0)
        np.testing.assert_allclose(fft_ref, direct_ref, atol=2e-6, rtol=0)
        np.testing.assert_allclose(fft_alt, expected_alt, atol=1e-5, rtol=0)
        np.testing.assert_allclose(fft_ref, expected_ref, atol=1e-5, rtol=0)


def test_reference_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="reference must be"):
        IncrementalBackend(random_ensemble(1, 0.0), reference="trapezoid")


def test_alt_sequence_applies_the_edit() -> None:
    seg = Segment(np.array([0, 1, 2, 3, 0, 1], dtype=np.uint8))
    job = AltJob(0, 2, 2, np.array([3], dtype=np.uint8), 0, 1, 0, 1)
    assert alt_sequence(seg, job).tolist() == [0, 1, 3, 0, 1]


def test_incremental_arithmetic_is_a_fraction_of_the_windowed() -> None:
    """MACs per SNV (alt cone only, reference shared) far below the 2 x 5 full windows."""
    model = random_ensemble(1, 0.0, groups=((11, 1), (11, 4), (21, 10), (41, 25)), members=1)
    fast = IncrementalBackend(model, batch_size=8)
    rng = np.random.default_rng(0)
    seg = Segment(rng.integers(0, 4, 10101 + 400).astype(np.uint8))
    jobs = [AltJob(0, e, 1, np.array([1], np.uint8), e - 50, 101, e - 50, 101) for e in range(5100, 5400, 50)]
    fast.predict([seg], jobs)
    windowed_per_variant = 2 * 10101 * sum(2 * u.kernel * 32 * 32 for u in model.members[0].units)
    assert fast.macs / len(jobs) < 0.4 * windowed_per_variant


# ---------------------------------------------------------------- real SpliceAI ensemble


def test_real_ensemble_fast_path_matches_oracle(spliceai_model, chr10_genome) -> None:
    """SNVs, insertions, deletions on both strands, next to transcript ends: identical DS strings."""
    genome = chr10_genome
    minus = GeneInfo("TUBB8", "10", "-", 92893, 95529, (92893, 93071, 93497, 93658, 95529))
    plus = GeneInfo("PLUSGENE", "10", "+", 60000, 94200, (60000, 60500, 94000, 94200))
    specs = [
        (minus, 94077, 1, "C"),  # the acceptor SNV of SpliceAI's own tests
        (minus, 94555, 1, "T"),
        (minus, 94080, 1, "ACGT"),  # insertion
        (minus, 94100, 3, None),  # deletion of 2
        (minus, 92895, 1, "G"),  # 2 nt from the transcript start
        (minus, 95525, 40, None),  # deletion running past the transcript end
        (plus, 94150, 1, "T"),
        (plus, 94190, 1, "TTT"),
        (plus, 94195, 90, None),  # deletion longer than D + 1
        (plus, 60003, 2, None),
    ]
    tasks = []
    for gene, pos, ref_len, alt in specs:
        ref = genome.fetch("chr10", pos - 1, pos - 1 + ref_len)
        alt = alt or ref[0]
        if alt == ref:
            alt = "A" if ref != "A" else "C"
        tasks.append(AlleleTask("chr10", pos, ref, alt, gene))
    config = ScoreConfig(distance=50)
    oracle = score_tasks(tasks, genome, WindowedBackend(spliceai_model, batch_size=4), config)
    fast = score_tasks(tasks, genome, IncrementalBackend(spliceai_model, batch_size=3), config)
    for task, o, f in zip(tasks, oracle, fast):
        assert format_entry(task.alt, task.gene.name, f) == format_entry(task.alt, task.gene.name, o), task
        np.testing.assert_allclose(f.ref_probs, o.ref_probs, atol=1e-5, rtol=0)
        np.testing.assert_allclose(f.alt_probs, o.alt_probs, atol=1e-5, rtol=0)
