"""Incremental SpliceAI engine: the CLI's numbers with a fraction of its arithmetic.

Three exact reductions of the windowed computation (:mod:`.windowed`):

1. *Valid convolutions.* Each layer is computed only on the positions that the cropped output
   needs (a layer with cumulative half receptive field c is needed on the outputs +- (F - c)).
   Those positions' receptive fields never reach the window's zero padding, so they equal the
   windowed ('same'-padded) values.
2. *One reference per segment.* The CLI's transcript masking depends only on the gene, so all
   variants of a gene read their reference windows from one masked segment. Every layer's
   reference activations are computed once per segment and stored. On the CPU (``reference=
   "pyramid"``) a layer is computed only where some variant's output needs it - the union of the
   variants' pyramids (output +- 50 widened by the receptive field still to come), not the whole
   segment - and not inside the masked N runs at the segment's ends: a position whose receptive
   field so far is all N has the same activations as every other such position (one constant row
   per layer and member network, computed once). On CUDA (``reference="segment"``) whole segments
   of equal length run as one batch, which suits the GPU better than many small kernels.
3. *Alt cone only.* An allele changes, at a layer with cumulative half receptive field c, only the
   positions within c of the edit. For every alt allele only those positions that the output
   also needs are recomputed (a frame per layer); every other input is read from the stored
   reference, shifted by len(ALT) - len(REF) right of the edit for indels.

On the CPU the alt frames' widest kernels (41 taps at dilation 25: four fifths of the arithmetic)
run as FFT convolutions (:func:`_conv_fft`): per frequency a (C_in x C_out) complex product instead of
41 taps per position, about 10x fewer operations and 1.7-1.9x less time on 2 cores, float32 with an
error against float64 below the direct convolution's. ``fft=False`` keeps the direct ones.

Frames of a batch are padded to a common width; a padded position is either outside the needed
range (its value is never used) or outside the cone, where it is computed from correct inputs,
so every value that reaches an output is exact. Convolutions run channels-last (conv2d over a
(B, C, 1, L) view), which is several times faster than channels-first conv1d on CPU for the wide
dilated kernels. On CUDA, ``precision`` fp32 is exact float32 (TF32 off), tf32 allows TF32
convolutions, bf16/fp16 run under autocast (parity with fp32 is checked by the benchmark).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from metasplice.base_models.jobs import AltJob, Segment
from metasplice.base_models.spliceai.model import Ensemble, SpliceNet


@dataclass
class _Unit:
    """One residual unit. The second batch norm is folded into the first convolution
    (w1 = s2 * conv1.weight, b1 = s2 * conv1.bias + t2), so the unit is
    h + conv2(act(conv1'(act(s1 * h + t1))))."""

    s1: torch.Tensor
    t1: torch.Tensor
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    kernel: int
    dilation: int

    @property
    def radius(self) -> int:
        return (self.kernel - 1) // 2 * self.dilation


@dataclass
class _Net:
    """One member network's weights in the layouts the engine uses."""

    stem: torch.Tensor  # (5, C): token -> stem output (row 4 = N = bias only)
    skip_w: list[torch.Tensor]  # (C_in, C_out) matrices
    skip_b: list[torch.Tensor]
    units: list[_Unit]
    head_w: torch.Tensor  # (C, outputs)
    head_b: torch.Tensor
    slope: float
    units_per_group: int


def _prepare(net: SpliceNet, device: torch.device) -> _Net:
    def cl(conv: torch.nn.Conv1d, scale: torch.Tensor | None = None) -> torch.Tensor:
        w = conv.weight.detach().float().unsqueeze(2)  # (C_out, C_in, 1, k)
        if scale is not None:
            w = w * scale.detach().float()[:, None, None, None]
        return w.to(device).contiguous(memory_format=torch.channels_last)

    def vec(t: torch.Tensor) -> torch.Tensor:
        return t.detach().float().to(device).contiguous()

    stem_w = net.stem.weight.detach().float()[:, :, 0]  # (C, 4)
    stem = torch.cat([stem_w.T, torch.zeros(1, stem_w.shape[0])]) + net.stem.bias.detach().float()[None]
    units = [
        _Unit(
            vec(u.bn1.scale),
            vec(u.bn1.shift),
            cl(u.conv1, u.bn2.scale),
            vec(u.conv1.bias * u.bn2.scale + u.bn2.shift),
            cl(u.conv2),
            vec(u.conv2.bias),
            u.kernel,
            u.dilation,
        )
        for u in net.units
    ]
    return _Net(
        stem=stem.to(device).contiguous(),
        skip_w=[vec(s.weight[:, :, 0].T) for s in net.skips],
        skip_b=[vec(s.bias) for s in net.skips],
        units=units,
        head_w=vec(net.head.weight[:, :, 0].T),
        head_b=vec(net.head.bias),
        slope=float(net.negative_slope),
        units_per_group=net.units_per_group,
    )


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dilation: int) -> torch.Tensor:
    """Valid dilated convolution of (B, L, C) position-major activations, channels-last."""
    y = F.conv2d(x.permute(0, 2, 1).unsqueeze(2), w, b, dilation=(1, dilation))
    return y.squeeze(2).permute(0, 2, 1).contiguous()


#: kernels of at least this many taps run through the FFT in the CPU alt frames: k = 41 (span 1,001
#: at dilation 25) is 1.7-1.9x faster than the direct convolution on 2 cores, k = 21 is not faster
FFT_MIN_TAPS = 41


def _smooth(n: int) -> int:
    """The smallest multiple of 4 >= n whose prime factors are 2, 3 and 5 (fast FFT lengths: odd
    lengths run several times slower)."""
    m = -(-n // 4) * 4
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 4


def _fft_length(width: int, dilation: int) -> int:
    """FFT length for a valid convolution of ``width`` input positions: at least the input (so that no
    needed output wraps around) and a multiple of the dilation (see :func:`_spectrum`)."""
    return dilation * _smooth(-(-width // dilation))


def _spectrum(w: torch.Tensor, dilation: int, n: int) -> torch.Tensor:
    """(n // 2 + 1, C_in, C_out) complex64: conj(DFT_n) of the dilated kernel of ``w`` (C_out, C_in, 1, k).

    With n = dilation * m, the dilated kernel's DFT at frequency f is the k-tap kernel's DFT of length m
    at f mod m, so only an m-point transform is computed."""
    m = n // dilation
    dense = torch.fft.fft(w[:, :, 0, :].float(), n=m).conj().permute(2, 1, 0).contiguous()  # (m, C_in, C_out)
    return dense.index_select(0, torch.arange(n // 2 + 1, device=w.device) % m)


class _Workspace:
    """Buffers reused between calls (fresh multi-megabyte tensors are paged in again on every call)."""

    def __init__(self) -> None:
        self.bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None):
        dtype = dtype or like.dtype
        size = int(np.prod(shape))
        buf = self.bufs.get(name)
        if buf is None or buf.numel() < size or buf.dtype != dtype or buf.device != like.device:
            buf = self.bufs[name] = torch.empty(size, dtype=dtype, device=like.device)
        return buf[:size].view(shape)


def _conv_fft(
    x: torch.Tensor,
    spectrum: torch.Tensor,
    b: torch.Tensor,
    n: int,
    width: int,
    pre: tuple | None = None,
    ws: _Workspace | None = None,
) -> torch.Tensor:
    """The valid convolution of :func:`_conv` through the FFT: (B, L, C) -> (B, ``width``, C).

    ``pre`` = (scale, shift, slope) applies the activation on the way in (one pass with the transpose
    to channel-major). Float32 throughout; its error against float64 is below the direct convolution's.
    Intermediates live in ``ws``; the result is a fresh tensor."""
    ws = ws or _Workspace()
    bsz, length, c = x.shape
    nf = n // 2 + 1
    cplx = torch.complex64
    xt = ws.get("x", (bsz, c, length), x)
    if pre is None:
        xt.copy_(x.transpose(1, 2))
    else:
        scale, shift, slope = pre
        torch.addcmul(shift[:, None], x.transpose(1, 2), scale[:, None], out=xt)
        _act_(xt, slope)
    spec = torch.fft.rfft(xt, n=n, out=ws.get("X", (bsz, c, nf), x, cplx))  # (B, C, F)
    spec_t = ws.get("Xt", (nf, bsz, c), x, cplx)
    spec_t.copy_(spec.permute(2, 0, 1))
    prod = torch.bmm(spec_t, spectrum, out=ws.get("Y", (nf, bsz, spectrum.shape[2]), x, cplx))  # (F, B, C_out)
    prod_t = ws.get("Yt", (bsz, prod.shape[2], nf), x, cplx)
    prod_t.copy_(prod.permute(1, 2, 0))
    y = torch.fft.irfft(prod_t, n=n, out=ws.get("y", (bsz, prod.shape[2], n), x))  # (B, C_out, n)
    out = torch.empty((bsz, width, y.shape[1]), dtype=x.dtype, device=x.device)
    torch.add(y[:, :, :width].transpose(1, 2), b, out=out)
    return out


#: output positions per FFT block of a long reference piece (input 6,400 = 25 x 256 at k = 41, d = 25)
FFT_BLOCK = 5400


def _conv_fft_long(
    x: torch.Tensor, spectra: Callable[[int], torch.Tensor], b: torch.Tensor, span: int, dilation: int, pre, ws
) -> torch.Tensor:
    """:func:`_conv_fft` of one long (L, C) piece: overlapping blocks of FFT_BLOCK outputs run as one
    batch (zero padding after the last input only reaches outputs that are dropped). -> (L - span + 1, C)."""
    length, c = x.shape
    width = length - span + 1
    if width <= FFT_BLOCK:
        n = _fft_length(length, dilation)
        return _conv_fft(x[None], spectra(n), b, n, width, pre, ws)[0]
    nblk = -(-width // FFT_BLOCK)
    padded = ws.get("pad", (nblk * FFT_BLOCK + span - 1, c), x)
    padded[:length].copy_(x)
    padded[length:].zero_()
    blocks = padded.as_strided((nblk, FFT_BLOCK + span - 1, c), (FFT_BLOCK * c, c, 1))
    n = _fft_length(FFT_BLOCK + span - 1, dilation)
    return _conv_fft(blocks, spectra(n), b, n, FFT_BLOCK, pre, ws).view(-1, c)[:width]


def _act(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, slope: float) -> torch.Tensor:
    return _act_(torch.addcmul(shift, x, scale), slope)


def _act_(y: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.relu_(y) if slope == 0.0 else F.leaky_relu_(y, slope)


def _act_into(y: torch.Tensor, slope: float, out: torch.Tensor) -> None:
    """``out`` = act(``y``) in one pass for ReLU (``y`` may be overwritten)."""
    if slope == 0.0:
        torch.clamp_min(y, 0.0, out=out)
    else:
        out.copy_(F.leaky_relu_(y, slope))


@dataclass
class _Schedule:
    """Per-conv radius and cumulative half receptive field (c after conv t; c[0] = 0)."""

    radius: list[int]
    cum: list[int]

    @property
    def flank(self) -> int:
        return self.cum[-1]


def _schedule(net: _Net) -> _Schedule:
    radius: list[int] = []
    for u in net.units:
        radius += [u.radius, u.radius]
    cum = [0]
    for r in radius:
        cum.append(cum[-1] + r)
    return _Schedule(radius, cum)


def _constants(net: _Net) -> list[torch.Tensor]:
    """Per depth, the activations (C,) of a position whose receptive field so far is all N.

    Computed with the same convolutions as every other position (on a constant input one receptive
    field wide), so a constant row equals what a full pass would compute there."""
    with torch.inference_mode():
        out = [net.stem[4].clone()]
        for u, unit in enumerate(net.units):
            x = out[-1].expand(1, 2 * unit.radius + 1, -1)
            m = _act_(_conv(_act(x, unit.s1, unit.t1, net.slope), unit.w1, unit.b1, unit.dilation), net.slope)[0, 0]
            out.append(m)
            x = m.expand(1, 2 * unit.radius + 1, -1)
            out.append(_conv(x, unit.w2, unit.b2, unit.dilation)[0, 0] + out[2 * u])
    return out


@dataclass
class _PyramidPlan:
    """Where the pyramid reference pass computes, per depth t (rows index the depth's store):
    ``convs[t]`` (row, row of the first input at depth t - 1, width, row of the residual at
    depth t - 2) for pieces computed one by one, ``batched[t]`` (width, input rows, output rows,
    residual rows) for narrow pieces of equal width computed as one batch, ``consts[t]`` and ``zeros[t]`` (row, width); ``out_rows[t]`` the depth-t rows of
    every output position, in output-row order (for the skip connections)."""

    rows: list[int]
    convs: list[list[tuple[int, int, int, int]]]
    batched: list[list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None]]]
    consts: list[list[tuple[int, int]]]
    zeros: list[list[tuple[int, int]]]
    out_rows: dict[int, torch.Tensor]


def _merge(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of closed integer intervals, as sorted disjoint intervals (adjacent ones joined)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _pyramid_plan(
    sched: _Schedule,
    lengths: Sequence[int],
    tokens: Sequence[np.ndarray],
    needs: Sequence[list[tuple[int, int]]],
    skip_depths: Sequence[int],
    batch_width: int = 4096,
) -> _PyramidPlan:
    """The pyramid pass of a group of segments (see :meth:`IncrementalBackend._reference_pyramid`).

    Depth t (cumulative half receptive field c, F - c still to come) is needed on the union of
    [lo - (F - c), hi + (F - c)] over the segment's jobs (positions c .. n - 1 - c exist). A needed
    position is computed when its receptive field so far reaches a base that is not N, else it
    takes the constant row. The needed set of depth t - 1 contains every input of depth t.
    """
    cum, f = sched.cum, sched.flank
    nd = len(cum)
    offs = [np.cumsum([0] + [n - 2 * c for n in lengths])[:-1] for c in cum]
    rows = [int(sum(n - 2 * c for n in lengths)) for c in cum]
    convs: list[list] = [[] for _ in range(nd)]
    consts: list[list] = [[] for _ in range(nd)]
    zeros: list[list] = [[] for _ in range(nd)]
    for k, (n, toks, need) in enumerate(zip(lengths, tokens, needs)):
        real = np.flatnonzero(np.asarray(toks) != 4)
        first, last = (int(real[0]), int(real[-1])) if len(real) else (n, -1)
        for t in range(1, nd):
            c, r = cum[t], sched.radius[t - 1]
            rem = f - c

            def row(depth: int, q: int) -> int:
                return int(offs[depth][k]) + q - cum[depth]  # noqa: B023 (called within this iteration)

            done = c
            for a, b in _merge([(max(lo - rem, c), min(hi + rem, n - 1 - c)) for lo, hi in need]):
                if a > b:
                    continue
                if a > done:
                    zeros[t].append((row(t, done), a - done))
                x0, x1 = max(a, first - c), min(b, last + c)
                if x0 > x1:
                    consts[t].append((row(t, a), b - a + 1))
                else:
                    if x0 > a:
                        consts[t].append((row(t, a), x0 - a))
                    convs[t].append((row(t, x0), row(t - 1, x0 - r), x1 - x0 + 1, row(t - 2, x0) if t % 2 == 0 else 0))
                    if x1 < b:
                        consts[t].append((row(t, x1 + 1), b - x1))
                done = b + 1
            if done <= n - 1 - c:
                zeros[t].append((row(t, done), n - c - done))
    batched: list[list] = [[] for _ in range(nd)]
    for t in range(1, nd):
        r = sched.radius[t - 1]
        by_width: dict[int, list] = {}
        for op in convs[t]:
            if op[2] <= batch_width:
                by_width.setdefault(op[2], []).append(op)
        for width, ops in by_width.items():
            if len(ops) < 2:
                continue
            rows_, srcs, res = (np.array([op[i] for op in ops], dtype=np.int64)[:, None] for i in (0, 1, 3))
            batched[t].append(
                (
                    width,
                    torch.from_numpy((srcs + np.arange(width + 2 * r)).reshape(-1)),
                    torch.from_numpy((rows_ + np.arange(width)).reshape(-1)),
                    torch.from_numpy((res + np.arange(width)).reshape(-1)) if t % 2 == 0 else None,
                )
            )
            convs[t] = [op for op in convs[t] if op not in ops]
    out_rows = {}
    for t in skip_depths:
        idx = [offs[t][k] + np.arange(f, n - f) - cum[t] for k, n in enumerate(lengths)]
        out_rows[t] = torch.from_numpy(np.concatenate(idx).astype(np.int64))
    return _PyramidPlan(rows, convs, batched, consts, zeros, out_rows)


class IncrementalBackend:
    """Ensemble probabilities for alt jobs by incremental (cone-only) computation."""

    def __init__(
        self,
        model: Ensemble,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        precision: str = "fp32",
        max_rows: int | None = None,
        max_jobs: int | None = None,
        pad_ratio: float | None = None,
        reference: str | None = None,
        per_member: bool = False,
        fft: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        # CPU: alt-frame convolutions of >= FFT_MIN_TAPS taps through the FFT (cuDNN's direct ones on CUDA)
        self.fft = self.device.type == "cpu" if fft is None else bool(fft)
        self._ws = _Workspace()
        self.per_member = per_member  # True: each member's outputs (M, n, C) instead of their mean
        self.nets = [_prepare(m, self.device) for m in model.members]
        self.sched = _schedule(self.nets[0])
        self.consts = [_constants(net) for net in self.nets]
        self.flank = self.sched.flank
        if self.flank * 2 != model.context:
            raise ValueError("engine schedule and model context disagree")
        self.batch_size = max(1, int(batch_size or (256 if self.device.type == "cuda" else 32)))
        gpu = self.device.type == "cuda"
        # reference rows and alt jobs per group: bounds memory (stores of ~33 x rows x 128 B per member)
        self.max_rows = int(max_rows or (1_500_000 if gpu else 120_000))
        self.max_jobs = max(1, int(max_jobs or (8192 if gpu else 512)))
        # GPU: pad segments to a few lengths so they run batched (fewer, larger kernels); CPU: exact
        self.pad_ratio = float(pad_ratio if pad_ratio is not None else (0.25 if gpu else 0.0))
        if precision not in ("fp32", "tf32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, tf32, bf16 or fp16, got {precision!r}")
        if precision != "fp32" and self.device.type != "cuda":
            raise ValueError(f"precision {precision} needs a CUDA device (got {self.device})")
        self.precision = precision
        self.reference = reference or ("segment" if gpu else "pyramid")
        if self.reference not in ("pyramid", "segment"):
            raise ValueError(f"reference must be 'pyramid' or 'segment', got {reference!r}")
        self.macs = 0  # wide-convolution multiply-accumulates done so far (all members)
        self._pool: list[torch.Tensor | None] = []  # reference stores, reused (see _stores)

    # ------------------------------------------------------------------ public
    def predict(
        self, segments: Sequence[Segment], jobs: Sequence[AltJob], progress: Callable[[int], None] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(reference (n_ref, C), alt (n_alt, C)) probabilities per job, model orientation: the mean over
        the member networks, or with ``per_member`` every member's, (M, n_ref, C) and (M, n_alt, C)."""
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(jobs)
        by_seg: dict[int, list[int]] = {}
        for i, j in enumerate(jobs):
            by_seg.setdefault(j.segment, []).append(i)
        items = [
            (s, idx[k : k + self.max_jobs])
            for s, idx in sorted(by_seg.items())
            for k in range(0, len(idx), self.max_jobs)
        ]
        group: dict[int, list[int]] = {}
        rows = n_jobs = 0
        for s, idx in [*items, (None, [])]:  # type: ignore[list-item]
            n = segments[s].length if s is not None else 0
            if group and (s is None or rows + n > self.max_rows or n_jobs + len(idx) > self.max_jobs):
                self._run_group(segments, jobs, list(group), group, out, progress)
                group, rows, n_jobs = {}, 0, 0
            if s is not None:
                group[s] = idx
                rows += n
                n_jobs += len(idx)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------- internals
    @contextlib.contextmanager
    def _autocast(self):
        """fp32: exact float32 (TF32 off on CUDA); tf32: TF32 convolutions and matmuls on CUDA;
        bf16/fp16: autocast on CUDA."""
        if self.device.type != "cuda":
            yield
            return
        saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        tf32 = self.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            if self.precision in ("bf16", "fp16"):
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast(device_type="cuda", dtype=dtype):
                    yield
            else:
                yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

    def _stores(self, sizes: list[int], channels: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """One (size, channels) store per depth: views of buffers kept between member networks and
        groups (grown when too small). Fresh buffers of hundreds of MB per network would each be
        paged in again; every row a pass reads is written first by that pass."""
        pool = self._pool
        for t, n in enumerate(sizes):
            buf = pool[t] if t < len(pool) else None
            if buf is None or buf.shape[0] < n or buf.shape[1] != channels or buf.dtype != dtype:
                grown = max(n, int(1.25 * buf.shape[0])) if buf is not None and buf.shape[1] == channels else n
                if t < len(pool):
                    pool[t] = None  # release before allocating the larger one
                buf = torch.empty((grown, channels), dtype=dtype, device=self.device)
                if t < len(pool):
                    pool[t] = buf
                else:
                    pool.append(buf)
        return [pool[t][:n] for t, n in enumerate(sizes)]

    def _padded_lengths(self, lengths: dict[int, int]) -> dict[int, int]:
        """Length each segment is padded to (with N on the right) so that segments of similar length
        run as one batch: sorted by length, a run grows while its longest is at most (1 + pad_ratio)
        times its shortest, and every member is padded to the run's longest. pad_ratio 0: no padding."""
        if self.pad_ratio <= 0:
            return dict(lengths)
        out: dict[int, int] = {}
        run: list[int] = []
        for s in [*sorted(lengths, key=lengths.get), None]:  # type: ignore[list-item]
            if run and (s is None or lengths[s] > lengths[run[0]] * (1.0 + self.pad_ratio)):
                out.update(dict.fromkeys(run, lengths[run[-1]]))
                run = []
            if s is not None:
                run.append(s)
        return out

    def _run_group(self, segments, jobs, group, by_seg, out, progress) -> None:
        padded = self._padded_lengths({s: segments[s].length for s in group})
        group = sorted(group, key=lambda s: padded[s])  # equal padded lengths run as one batch
        seg_tokens = [
            np.concatenate([segments[s].tokens, np.full(padded[s] - segments[s].length, 4, dtype=np.uint8)])
            for s in group
        ]
        tokens = np.concatenate(seg_tokens)
        starts = np.cumsum([0] + [len(t) for t in seg_tokens])[:-1]
        seg_start = {s: int(g) for s, g in zip(group, starts)}
        rank = {s: k for k, s in enumerate(group)}
        job_idx = [i for s in group for i in by_seg[s]]
        job_idx.sort(key=lambda i: (jobs[i].n_alt, jobs[i].alt_len))
        batches = [job_idx[k : k + self.batch_size] for k in range(0, len(job_idx), self.batch_size)]
        n_rows = [len(tokens) - 2 * c * len(group) for c in self.sched.cum]
        plans = [self._plan(jobs, b, seg_start, rank, n_rows, tokens) for b in batches]
        slack = [max((p["batch"] * p["widths"][t] if p["stored"][t] else 0) for p in plans) for t in range(len(n_rows))]
        ref_sum: torch.Tensor | None = None
        alt_sum: list[torch.Tensor | None] = [None] * len(batches)
        ref_all: list[np.ndarray] = []  # per_member: each member's reference outputs
        alt_all: list[list[np.ndarray]] = [[] for _ in batches]
        pyramid = None
        if self.reference == "pyramid":
            needs = [self._needs(jobs, by_seg[s]) for s in group]
            upg = self.nets[0].units_per_group
            skip_depths = range(0, len(self.sched.cum), 2 * upg)
            pyramid = _pyramid_plan(self.sched, [len(t) for t in seg_tokens], seg_tokens, needs, skip_depths)
        with torch.inference_mode(), self._autocast():
            for m, net in enumerate(self.nets):
                spectra: dict = {}  # this member's FFT kernels, shared by its reference pass and batches
                if pyramid is None:
                    stores, ref_probs = self._reference(net, seg_tokens, slack)
                else:
                    stores, ref_probs = self._reference_pyramid(
                        net, self.consts[m], seg_tokens, slack, pyramid, spectra
                    )
                if self.per_member:
                    ref_all.append(ref_probs.float().cpu().numpy())
                else:
                    ref_sum = ref_probs if ref_sum is None else ref_sum + ref_probs
                for k, plan in enumerate(plans):
                    p = self._alt(net, stores, n_rows, plan, spectra)
                    if self.per_member:
                        alt_all[k].append(p.float().cpu().numpy())
                    else:
                        alt_sum[k] = p if alt_sum[k] is None else alt_sum[k] + p
                    if progress is not None and m == len(self.nets) - 1:
                        progress(len(batches[k]))
                del stores
        if self.per_member:
            for k, b in enumerate(batches):
                alt_np = np.stack(alt_all[k])  # (M, B, n_out_max, C)
                for v, i in enumerate(b):
                    j = jobs[i]
                    r0 = seg_start[j.segment] - 2 * self.flank * rank[j.segment] + j.ref_lo - self.flank
                    out[i] = (np.stack([r[r0 : r0 + j.n_ref] for r in ref_all]), alt_np[:, v, : j.n_alt].copy())
            return
        n = float(len(self.nets))
        ref_np = (ref_sum / n).float().cpu().numpy()  # rows <-> global output positions
        for k, b in enumerate(batches):
            alt_np = (alt_sum[k] / n).float().cpu().numpy()
            for v, i in enumerate(b):
                j = jobs[i]
                r0 = seg_start[j.segment] - 2 * self.flank * rank[j.segment] + j.ref_lo - self.flank
                out[i] = (ref_np[r0 : r0 + j.n_ref].copy(), alt_np[v, : j.n_alt].copy())

    def _reference(
        self, net: _Net, tokens: list[np.ndarray], slack: list[int]
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every depth's activations of the group's segments, and the reference outputs.

        Depth 2u holds the residual stream after unit u, depth 2u - 1 the input of unit u's second
        convolution (after its batch norm and activation). Each is stored as one (rows_t + slack_t, C)
        tensor: segment k's valid positions
        c_t .. n_k - 1 - c_t one after the other (segment after segment), then room for one batch of
        alt frames at that depth. Segments of equal length run as one batch.
        """
        sc = self.sched
        rows = [sum(len(t) - 2 * c for t in tokens) for c in sc.cum]
        ref = self.nets[0].stem
        stores = self._stores([rows[t] + slack[t] for t in range(len(rows))], ref.shape[1], ref.dtype)
        probs = []
        offsets = [0] * len(rows)
        k = 0
        while k < len(tokens):
            run = k + 1
            while run < len(tokens) and len(tokens[run]) == len(tokens[k]):
                run += 1
            tok = torch.from_numpy(np.stack(tokens[k:run]).astype(np.int64)).to(self.device)
            for t, x in self._valid_forward(net, tok, probs):
                n = x.shape[0] * x.shape[1]
                stores[t][offsets[t] : offsets[t] + n].copy_(x.reshape(n, -1))
                offsets[t] += n
            k = run
        return stores, torch.cat(probs)

    @staticmethod
    def _needs(jobs, idx: Sequence[int]) -> list[tuple[int, int]]:
        """Per job, the segment positions whose reference outputs it reads, directly (the reference
        output range) or as alt context (alt positions outside the alt frame, shifted right of the
        edit); a depth with r positions of receptive field still to come needs them widened by r."""
        out = []
        for i in idx:
            j = jobs[i]
            alt_hi = j.alt_lo + j.n_alt - 1
            lo = min(j.ref_lo, j.alt_lo)
            hi = max(j.ref_lo + j.n_ref - 1, alt_hi - j.shift, min(alt_hi, j.edit - 1))
            out.append((lo, hi))
        return out

    def _reference_pyramid(
        self,
        net: _Net,
        const: list[torch.Tensor],
        tokens: list[np.ndarray],
        slack: list[int],
        plan: _PyramidPlan,
        spectra: dict | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The stores of :meth:`_reference` (same layout), filled only where a job reads them.

        Rows that no job needs are zero; rows in the segments' N runs hold the constant row. With
        ``fft``, pieces of the wide kernels run through :func:`_conv_fft_long` / :func:`_conv_fft`.
        """
        spectra = {} if spectra is None else spectra
        sc = self.sched
        c = net.stem.shape[1]
        dev = self.device
        stores = self._stores([plan.rows[t] + slack[t] for t in range(len(sc.cum))], c, net.stem.dtype)
        tok = torch.from_numpy(np.concatenate(tokens).astype(np.int64)).to(dev)
        torch.index_select(net.stem, 0, tok, out=stores[0][: plan.rows[0]])
        macs = 0
        for t in range(1, len(sc.cum)):
            unit = net.units[(t - 1) // 2]
            r = unit.radius
            dst, prev = stores[t], stores[t - 1]
            wide = self.fft and unit.kernel >= FFT_MIN_TAPS
            w, bias = (unit.w1, unit.b1) if t % 2 == 1 else (unit.w2, unit.b2)
            pre = (unit.s1, unit.t1, net.slope) if t % 2 == 1 else None

            def spectrum(n: int, t=t, w=w, unit=unit) -> torch.Tensor:
                if (t, n) not in spectra:
                    spectra[(t, n)] = _spectrum(w, unit.dilation, n).to(dev)
                return spectra[(t, n)]

            for row, src, width, res in plan.convs[t]:
                if wide:
                    y = _conv_fft_long(
                        prev[src : src + width + 2 * r], spectrum, bias, 2 * r + 1, unit.dilation, pre, self._ws
                    )
                    if t % 2 == 1:
                        _act_into(y, net.slope, dst[row : row + width])
                    else:
                        torch.add(y, stores[t - 2][res : res + width], out=dst[row : row + width])
                    macs += width * unit.kernel * c * c
                    continue
                x = prev[src : src + width + 2 * r].unsqueeze(0)
                if t % 2 == 1:
                    y = _conv(_act(x, unit.s1, unit.t1, net.slope), unit.w1, unit.b1, unit.dilation)
                    _act_into(y[0], net.slope, dst[row : row + width])
                else:
                    y = _conv(x, unit.w2, unit.b2, unit.dilation)
                    torch.add(y[0], stores[t - 2][res : res + width], out=dst[row : row + width])
                macs += width * unit.kernel * c * c
            for width, src, row, res in plan.batched[t]:
                x = prev.index_select(0, src.to(dev)).view(-1, width + 2 * r, c)
                if wide:
                    n = _fft_length(width + 2 * r, unit.dilation)
                    y = _conv_fft(x, spectrum(n), bias, n, width, pre, self._ws)
                    y = (
                        _act_(y, net.slope)
                        if t % 2 == 1
                        else y.view(-1, c).add_(stores[t - 2].index_select(0, res.to(dev)))
                    )
                elif t % 2 == 1:
                    y = _act_(_conv(_act(x, unit.s1, unit.t1, net.slope), unit.w1, unit.b1, unit.dilation), net.slope)
                else:
                    y = _conv(x, unit.w2, unit.b2, unit.dilation)
                    y = y.view(-1, c).add_(stores[t - 2].index_select(0, res.to(dev)))
                dst.index_copy_(0, row.to(dev), y.view(-1, c))
                macs += y.numel() // c * unit.kernel * c * c
            for row, width in plan.consts[t]:
                dst[row : row + width] = const[t]
            for row, width in plan.zeros[t]:
                dst[row : row + width].zero_()
        self.macs += macs
        skip = None
        upg = net.units_per_group
        for g in range(len(net.skip_w)):
            h = stores[2 * upg * g].index_select(0, plan.out_rows[2 * upg * g].to(dev))
            y = h @ net.skip_w[g] + net.skip_b[g]
            skip = y if skip is None else skip + y
        return stores, torch.softmax((skip @ net.head_w + net.head_b).float(), dim=-1)

    def _valid_forward(self, net: _Net, tok: torch.Tensor, probs: list):
        """Valid forward of equal-length segments (B, n): yields (depth, activations (B, n - 2c, C))
        and appends the outputs (B * (n - 2F), 3) to ``probs``."""
        f = self.flank
        n_out = tok.shape[1] - 2 * f
        h = net.stem[tok]
        yield 0, h
        skip = h[:, f : f + n_out] @ net.skip_w[0] + net.skip_b[0]
        cum = 0
        macs = 0
        for u, unit in enumerate(net.units):
            r = unit.radius
            m = _act_(_conv(_act(h, unit.s1, unit.t1, net.slope), unit.w1, unit.b1, unit.dilation), net.slope)
            yield 2 * u + 1, m
            o = _conv(m, unit.w2, unit.b2, unit.dilation)
            macs += (m.shape[1] + o.shape[1]) * unit.kernel * m.shape[0] * m.shape[2] * h.shape[2]
            h = h[:, 2 * r : 2 * r + o.shape[1]] + o
            yield 2 * u + 2, h
            cum += 2 * r
            if (u + 1) % net.units_per_group == 0:
                g = (u + 1) // net.units_per_group
                skip = skip + h[:, f - cum : f - cum + n_out] @ net.skip_w[g] + net.skip_b[g]
        self.macs += macs
        probs.append(torch.softmax((skip @ net.head_w + net.head_b).float(), dim=-1).reshape(-1, net.head_w.shape[1]))

    def _plan(self, jobs, batch, seg_start, rank, n_rows, tokens) -> dict:
        """Frame positions per depth and the gather indices (shared by all member networks).

        A gather index addresses a depth's store: reference rows for positions outside the alt
        frame (shifted by len(ALT) - len(REF) right of the edit), slack rows for frame positions.
        """
        sc = self.sched
        f = self.flank
        dev = self.device
        nb = len(batch)
        e = np.array([jobs[i].edit for i in batch], dtype=np.int64)[:, None]
        a = np.array([jobs[i].alt_len for i in batch], dtype=np.int64)[:, None]
        shift = np.array([jobs[i].shift for i in batch], dtype=np.int64)[:, None]
        g0 = np.array([seg_start[jobs[i].segment] for i in batch], dtype=np.int64)[:, None]
        k0 = np.array([rank[jobs[i].segment] for i in batch], dtype=np.int64)[:, None]
        o_lo = np.array([jobs[i].alt_lo for i in batch], dtype=np.int64)[:, None]
        n_out = np.array([jobs[i].n_alt for i in batch], dtype=np.int64)[:, None]
        o_hi = o_lo + n_out - 1
        los, widths = [], []
        for c in sc.cum:
            rem = f - c
            lo = np.maximum(e - c, o_lo - rem)
            hi = np.minimum(e + a - 1 + c, o_hi + rem)
            los.append(lo)
            widths.append(max(int((hi - lo + 1).max()), 1))
        frame_row = np.arange(nb, dtype=np.int64)[:, None]

        stored = [False] * len(sc.cum)

        def gather_index(depth: int, q: np.ndarray) -> tuple:
            """("slice", depth, offset): q is the same run of frame positions in every row (read the
            frame directly); else ("index", depth, flat store indices)."""
            lo, w = los[depth], widths[depth]
            rel = q - lo
            if (rel >= 0).all() and (rel < w).all() and (rel == rel[:1]).all() and (np.diff(rel[0]) == 1).all():
                return ("slice", depth, int(rel[0, 0]))
            in_frame = (rel >= 0) & (rel < w)
            q_ref = np.where(q < e, q, q - shift)
            ref_row = np.clip(g0 - 2 * sc.cum[depth] * k0 + q_ref - sc.cum[depth], 0, n_rows[depth] - 1)
            idx = np.where(in_frame, n_rows[depth] + frame_row * w + rel, ref_row)
            stored[depth] = True
            return ("index", depth, torch.from_numpy(idx.reshape(-1).astype(np.int32)).to(dev))

        steps = []
        for t in range(1, len(sc.cum)):
            r = sc.radius[t - 1]
            conv_in = gather_index(t - 1, los[t] - r + np.arange(widths[t] + 2 * r)[None])
            resid = gather_index(t - 2, los[t] + np.arange(widths[t])[None]) if t % 2 == 0 else None
            steps.append((conv_in, resid))
        n_max = int(n_out.max())
        q_out = o_lo + np.arange(n_max)[None]
        upg = self.nets[0].units_per_group
        skips = {2 * u: gather_index(2 * u, q_out) for u in range(0, len(self.nets[0].units) + 1, upg)}
        # depth-0 frame: the alt sequence's tokens at the frame positions
        q0 = los[0] + np.arange(widths[0])[None]
        alt_tok = np.empty(q0.shape, dtype=np.int64)
        for v, i in enumerate(batch):
            j = jobs[i]
            seg = tokens[seg_start[j.segment] :]
            qq = q0[v]
            val = seg[np.clip(np.where(qq < j.edit, qq, qq - j.shift), 0, len(seg) - 1)].astype(np.int64)
            inside = (qq >= j.edit) & (qq < j.edit + j.alt_len)
            val[inside] = j.alt[qq[inside] - j.edit]
            alt_tok[v] = val
        return {
            "widths": widths,
            "steps": steps,
            "skips": skips,
            "alt_tok": torch.from_numpy(alt_tok).to(dev),
            "n_out": n_max,
            "batch": nb,
            "stored": stored,
        }

    def _alt(
        self, net: _Net, stores: list[torch.Tensor], n_rows: list[int], plan: dict, spectra: dict | None = None
    ) -> torch.Tensor:
        """Alt probabilities (B, n_out_max, 3) for one planned batch and one member network.

        Frames are kept as (B, W_t, C) tensors; a frame is also copied into its depth's store when
        a later gather mixes it with reference rows. With ``fft``, wide kernels run through
        :func:`_conv_fft` (their spectra cached in ``spectra`` by depth and FFT length).
        """
        spectra = {} if spectra is None else spectra
        b, widths, stored = plan["batch"], plan["widths"], plan["stored"]
        c = stores[0].shape[1]
        frames: list[torch.Tensor | None] = []

        def put(t: int, y: torch.Tensor) -> None:
            frames.append(y)
            if stored[t]:
                stores[t][n_rows[t] : n_rows[t] + b * widths[t]].copy_(y.reshape(-1, c))

        def take(g: tuple, width: int) -> torch.Tensor:
            kind, t, arg = g
            if kind == "slice":
                frame = frames[t]
                return frame if arg == 0 and width == frame.shape[1] else frame[:, arg : arg + width]
            return stores[t].index_select(0, arg).view(b, width, c)

        put(0, net.stem[plan["alt_tok"]])
        skip = take(plan["skips"][0], plan["n_out"]) @ net.skip_w[0] + net.skip_b[0]
        macs = 0
        for t, (conv_in, resid) in enumerate(plan["steps"], start=1):
            unit = net.units[(t - 1) // 2]
            x = take(conv_in, widths[t] + 2 * unit.radius)
            if self.fft and unit.kernel >= FFT_MIN_TAPS:
                w, bias = (unit.w1, unit.b1) if t % 2 == 1 else (unit.w2, unit.b2)
                n = _fft_length(x.shape[1], unit.dilation)
                spec = spectra.get((t, n))
                if spec is None:
                    spec = spectra[(t, n)] = _spectrum(w, unit.dilation, n).to(x.device)
                if t % 2 == 1:
                    y = _act_(
                        _conv_fft(x, spec, bias, n, widths[t], (unit.s1, unit.t1, net.slope), self._ws), net.slope
                    )
                else:
                    y = _conv_fft(x, spec, bias, n, widths[t], ws=self._ws).add_(take(resid, widths[t]))
            elif t % 2 == 1:
                y = _act_(_conv(_act(x, unit.s1, unit.t1, net.slope), unit.w1, unit.b1, unit.dilation), net.slope)
            else:
                y = _conv(x, unit.w2, unit.b2, unit.dilation)
                y = y.add_(take(resid, widths[t]))
            macs += b * widths[t] * unit.kernel * c * c
            put(t, y)
            if t % 2 == 0 and (t // 2) % net.units_per_group == 0:
                g = t // 2 // net.units_per_group
                skip = skip + take(plan["skips"][t], plan["n_out"]) @ net.skip_w[g] + net.skip_b[g]
            if t >= 3:
                frames[t - 3] = None  # no longer needed
        self.macs += macs
        return torch.softmax((skip @ net.head_w + net.head_b).float(), dim=-1)
