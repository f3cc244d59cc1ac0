"""Getting the pipeline's inputs: files from local paths or URLs (with their sha256), the reference
FASTA in an indexed form, the gene annotation table, and clear errors for sources that must be
obtained by hand (the SpliceVarDB export).

Every output is written to a temporary file in the destination's directory and moved into place
with ``os.replace`` only when complete and verified, so an interrupted or failed fetch never leaves
a half-written file behind.

Access tokens are read from an environment variable whose *name* is configured (``token_env``); the
token itself never appears in config files, logs or error messages.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pysam

from metasplice import __version__

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
URL_SCHEMES = ("http", "https", "ftp")
SPLICEVARDB_URL = "https://splicevardb.org"
DEFAULT_SPLICEVARDB_PATH = "data/splicevardb.tsv"  # suggested location of the export (git-ignored data/)
# Paths under these folders are produced by the workflow itself (e.g. the demo dataset), so a missing
# one is left to Snakemake to build instead of being reported as a missing user file.
GENERATED_PREFIXES = ("resources/", "results/")


class FetchError(RuntimeError):
    """A source could not be fetched or prepared; the message says why and what to do."""


class ChecksumError(FetchError):
    """The fetched bytes do not have the expected sha256."""


class MissingSourceError(FetchError):
    """No usable source is configured for an input that must be provided by the user."""


# --------------------------------------------------------------------------------------------------
# sources


def is_url(source: str | os.PathLike) -> bool:
    """True for ``http://``, ``https://`` and ``ftp://`` sources (a ``file://`` URL is a local path)."""
    return urllib.parse.urlsplit(str(source)).scheme.lower() in URL_SCHEMES


def local_path(source: str | os.PathLike) -> Path:
    """A local source as a Path (``file://`` URLs and ``~`` are expanded; relative to the cwd)."""
    text = str(source)
    if text.startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    return Path(text).expanduser()


def redact_url(url: str) -> str:
    """The URL without credentials: user:password and the query string are replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username or parts.password:
        netloc = f"***@{netloc}"
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def describe_source(source: str | os.PathLike) -> str:
    """A printable name of a source (URLs redacted)."""
    return redact_url(str(source)) if is_url(source) else str(source)


@dataclass(frozen=True)
class Source:
    """A resolved input source: a local path or a URL, with its optional token variable and checksum."""

    location: str
    token_env: str | None = None
    sha256: str | None = None

    @property
    def is_url(self) -> bool:
        return is_url(self.location)


def _spec_dict(spec: str | Mapping | None) -> dict:
    """A source spec as a dict; a plain string is a path or a URL."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        return {"url": spec} if is_url(spec) else {"path": spec}
    if isinstance(spec, Mapping):
        return dict(spec)
    raise TypeError(f"a source must be a path, a URL or a mapping with path/url keys, got {spec!r}")


def is_generated(path: str | os.PathLike, prefixes: tuple[str, ...] = GENERATED_PREFIXES) -> bool:
    """True when a relative path lies under a folder the workflow writes (see GENERATED_PREFIXES)."""
    text = str(path).replace(os.sep, "/")
    text = text[2:] if text.startswith("./") else text
    return any(text.startswith(p) for p in prefixes)


def resolve_source(
    spec: str | Mapping | None,
    *,
    what: str,
    config_key: str,
    obtain: str = "",
    allow_generated: bool = True,
) -> Source:
    """Pick the source to use from a config spec ``{path, url, token_env, sha256}`` (or a plain string).

    Order: ``path`` when that file exists (or, with ``allow_generated``, when it lies under a folder
    the workflow itself writes); otherwise ``url``; otherwise a :class:`MissingSourceError` that
    names the config key and includes ``obtain`` (how to get the file).
    """
    d = _spec_dict(spec)
    unknown = sorted(set(d) - {"path", "url", "token_env", "sha256", "link"})
    if unknown:
        raise ValueError(
            f"{config_key}: unknown key(s) {', '.join(unknown)} (known: path, url, token_env, sha256, link)"
        )
    path, url = d.get("path") or None, d.get("url") or None
    token_env, sha256 = d.get("token_env") or None, d.get("sha256") or None
    if sha256 is not None:
        sha256 = normalise_sha256(sha256, where=f"{config_key}.sha256")
    if url is not None and not is_url(url):
        raise ValueError(f"{config_key}.url must start with http://, https:// or ftp://, got {describe_source(url)!r}")
    if path is not None:
        p = local_path(path)
        if p.exists() or (allow_generated and is_generated(path)):
            return Source(str(path), token_env=None, sha256=sha256)
        if url is None:
            raise MissingSourceError(
                f"{what} not found: {p} does not exist (config key {config_key}.path).\n{obtain}".rstrip()
            )
        log.info("%s: %s does not exist; using %s.url", what, p, config_key)
    if url is not None:
        return Source(str(url), token_env=token_env, sha256=sha256)
    raise MissingSourceError(
        f"no source configured for {what}: set {config_key}.path (a local file) or {config_key}.url.\n{obtain}".rstrip()
    )


def splicevardb_instructions(config_key: str, default_path: str = DEFAULT_SPLICEVARDB_PATH) -> str:
    """How to obtain the SpliceVarDB export and where to put it."""
    return (
        "SpliceVarDB is not redistributed with this pipeline. To obtain the export:\n"
        f"  1. register at {SPLICEVARDB_URL} and accept its terms of use;\n"
        "  2. download the full variant export, a TSV with the columns variant_id, hg19, hg38, gene, hgvs,\n"
        "     method, classification, location, doi;\n"
        f"  3. save it as {default_path} and set {config_key}.path to that path (or to wherever\n"
        "     you saved it).\n"
        f"Or set {config_key}.url to a download URL and {config_key}.token_env to the NAME of an environment\n"
        "variable that holds your access token (the token itself never goes into config.yaml).\n"
        "To try the pipeline without the export, run the bundled demo dataset: --config dataset=demo"
    )


def splicevardb_source(
    spec: str | Mapping | None, config_key: str, default_path: str = DEFAULT_SPLICEVARDB_PATH
) -> Source:
    """The SpliceVarDB source from its config spec, or an error saying how to obtain the export."""
    return resolve_source(
        spec,
        what="SpliceVarDB export",
        config_key=config_key,
        obtain=splicevardb_instructions(config_key, default_path),
    )


def genome_instructions(config_key: str) -> str:
    """Where a reference FASTA can come from."""
    return (
        f"Set {config_key}.path to a local FASTA (plain, gzip or bgzip) or {config_key}.url to a download,\n"
        "e.g. https://ftp.ensembl.org/pub/release-112/fasta/homo_sapiens/dna/"
        "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz\n"
        "or https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.fa.gz"
    )


def genome_source(spec: str | Mapping | None, config_key: str) -> Source:
    """The reference FASTA source from its config spec."""
    return resolve_source(spec, what="reference FASTA", config_key=config_key, obtain=genome_instructions(config_key))


def _check_build(requested: str | None, dataset_cfg: Mapping, dataset: str, what: str) -> None:
    if requested is not None and requested != str(dataset_cfg.get("build")):
        raise ValueError(
            f"{what} for build {requested!r} was requested, but dataset {dataset!r} is on build "
            f"{dataset_cfg.get('build')!r} (config datasets.{dataset}.build)"
        )


def _section_source(dataset_cfg: Mapping, dataset: str, section: str) -> Source:
    key = f"datasets.{dataset}.{section}"
    if section == "splicevardb":
        return splicevardb_source(dataset_cfg.get(section), key)
    if section == "genome":
        return genome_source(dataset_cfg.get(section), key)
    raise ValueError(f"unknown source section {section!r} (splicevardb or genome)")


def rule_input(dataset_cfg: Mapping, dataset: str, section: str, build: str | None = None) -> list[str]:
    """Input of a fetch rule (``section`` = splicevardb or genome of dataset ``dataset``): the local
    source file, or nothing when the source is a URL, which the rule's script downloads (so DAG
    building and dry runs never touch the network). Raises the how-to-obtain error when no source
    is usable, and an error when ``build`` is not the dataset's build."""
    _check_build(build, dataset_cfg, dataset, section)
    source = _section_source(dataset_cfg, dataset, section)
    return [] if source.is_url else [source.location]


def rule_params(dataset_cfg: Mapping, dataset: str, section: str) -> dict:
    """Params of a fetch rule: the configured spec without empty values (never a token) and the config key
    for messages; a change in either reruns the rule. The network timeout is not one of them (the scripts
    read ``fetch.timeout_s`` from the config): waiting longer changes no result."""
    spec = _spec_dict(dataset_cfg.get(section))
    return {
        "spec": {k: v for k, v in spec.items() if v not in ("", None)},
        "config_key": f"datasets.{dataset}.{section}",
    }


def timeout_from_config(config: Mapping) -> float:
    """``fetch.timeout_s`` of the workflow config (seconds; default 60)."""
    return float((config.get("fetch") or {}).get("timeout_s", 60))


def annotation_input(dataset_cfg: Mapping, dataset: str, build: str | None = None) -> list[str]:
    """Input of the annotation rule: the table when it is a local file, nothing for the bundled
    ``grch37``/``grch38`` tables or a URL."""
    _check_build(build, dataset_cfg, dataset, "annotation")
    source = str(dataset_cfg.get("annotation") or "")
    if not source:
        raise MissingSourceError(
            f"no gene annotation configured: set datasets.{dataset}.annotation to grch37 or grch38 (the "
            "tables bundled with the spliceai package), a SpliceAI-format table's path, or a URL"
        )
    return [] if source.lower() in ("grch37", "grch38") or is_url(source) else [source]


# --------------------------------------------------------------------------------------------------
# checksums and atomic outputs


def normalise_sha256(value: str, where: str = "sha256") -> str:
    """A sha256 hex digest in lower case; anything that is not 64 hex digits is an error."""
    text = str(value).strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"{where}: expected a sha256 hex digest (64 hex digits), got {value!r}")
    return text


def sha256_file(path: str | os.PathLike, chunk_size: int = CHUNK_SIZE) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _temp_path(dest: Path, suffix: str = ".part") -> Path:
    """A new empty file next to ``dest`` (created with the usual umask-based permissions)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = dest.parent / f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        try:
            with open(path, "xb"):
                return path
        except FileExistsError:
            continue


def _unlink(*paths: Path) -> None:
    for p in paths:
        with suppress(FileNotFoundError):
            p.unlink()


@contextmanager
def atomic_output(dest: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; on success it replaces ``dest``, on error it is removed."""
    dest = Path(dest)
    tmp = _temp_path(dest, suffix)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        _unlink(tmp)
        raise


class _Progress:
    """Logs the progress of a long copy: every 10 % when the size is known, else every 30 s."""

    def __init__(self, label: str, total: int | None, interval_s: float = 30.0) -> None:
        self.label, self.total, self.interval_s = label, total, interval_s
        self.done = 0
        self.t0 = self.last_t = time.monotonic()
        self.last_fraction = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        fraction = self.done / self.total if self.total else 0.0
        if (self.total and fraction - self.last_fraction >= 0.1) or now - self.last_t >= self.interval_s:
            rate = self.done / max(now - self.t0, 1e-9) / 1e6
            of = f" of {self.total / 1e6:.1f} MB ({100 * fraction:.0f}%)" if self.total else " MB"
            log.info("%s: %.1f%s, %.1f MB/s", self.label, self.done / 1e6, of, rate)
            self.last_t, self.last_fraction = now, fraction


def _copy_stream(src: BinaryIO, dst: BinaryIO, progress: _Progress) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK_SIZE):
        digest.update(chunk)
        dst.write(chunk)
        progress.update(len(chunk))
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# downloads


class _AuthRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects, keeping the Authorization header only on the same host and scheme
    (never sent on to another host, never downgraded from https to http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get("Authorization")
        if new is not None and auth is not None:
            old, nxt = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(new.full_url)
            if (old.scheme, old.netloc) == (nxt.scheme, nxt.netloc):
                new.add_unredirected_header("Authorization", auth)
        return new


def _http_error_message(exc: urllib.error.HTTPError, url: str, token_env: str | None) -> str:
    where = f"{describe_source(url)}: HTTP {exc.code} {exc.reason}"
    if exc.code in (401, 403):
        if token_env and os.environ.get(token_env):
            hint = f"the access token in environment variable {token_env} may be invalid or expired, or lack access"
        elif token_env:
            hint = f"environment variable {token_env} (token_env) is not set or empty; export it with your access token"
        else:
            hint = (
                "this source may need an access token: set token_env to the NAME of an environment variable "
                "that holds it"
            )
        return f"access denied by {where}; {hint}"
    if exc.code == 404:
        return f"not found: {where}; check the URL (or download the file by hand and configure its local path)"
    return f"download failed: {where}"


def _open_url(url: str, token_env: str | None, timeout: float):
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    request = urllib.request.Request(url, headers={"User-Agent": f"metasplice/{__version__}"})
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            log.warning(
                "environment variable %s (token_env) is not set or empty; requesting without a token", token_env
            )
        elif scheme in ("http", "https"):
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        else:
            log.warning("token_env is ignored for %s URLs (only http/https carry a bearer token)", scheme)
    opener = urllib.request.build_opener(_AuthRedirectHandler())
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise FetchError(_http_error_message(exc, url, token_env)) from None
    except urllib.error.URLError as exc:
        reason = str(exc.reason)
        if scheme == "ftp" and ("550" in reason or "No such file" in reason):
            raise FetchError(f"not found: {describe_source(url)} ({reason}); check the URL") from None
        raise FetchError(
            f"could not connect to {describe_source(url)}: {reason}. Check the URL and the network "
            "(this machine may be offline), or download the file by hand and configure its local path"
        ) from None
    except (TimeoutError, OSError) as exc:
        raise FetchError(f"could not download {describe_source(url)}: {type(exc).__name__}: {exc}") from None


def fetch_file(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    token_env: str | None = None,
    expected_sha256: str | None = None,
    timeout: float = 60.0,
) -> str:
    """Copy a local file or download an http(s)/ftp URL to ``dest``; return its sha256 (hex).

    The bytes are streamed into a temporary file next to ``dest`` while their sha256 is computed;
    ``dest`` is replaced only when the transfer is complete and, if ``expected_sha256`` is given,
    the digest matches (a mismatch raises :class:`ChecksumError` and leaves no new file).
    ``token_env`` names an environment variable whose value is sent as ``Authorization: Bearer``
    (http/https only, kept across redirects only on the same host); the value is never logged.
    ``timeout`` is the socket timeout in seconds for each network operation.
    """
    dest = Path(dest)
    expected = normalise_sha256(expected_sha256) if expected_sha256 else None
    label = describe_source(source)
    if is_url(source):
        with _open_url(str(source), token_env, timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            log.info("downloading %s -> %s%s", label, dest, f" ({total / 1e6:.1f} MB)" if total else "")
            progress = _Progress(f"download {label}", total)
            with atomic_output(dest) as tmp:
                try:
                    with open(tmp, "wb") as out:
                        digest = _copy_stream(response, out, progress)
                except (TimeoutError, OSError, http.client.HTTPException) as exc:
                    raise FetchError(
                        f"download of {label} broke off after {progress.done} bytes: {type(exc).__name__}: {exc}"
                    ) from None
                if total is not None and progress.done != total:
                    raise FetchError(f"download of {label} is incomplete: {progress.done} of {total} bytes; try again")
                _check_sha256(digest, expected, label)
    else:
        path = local_path(source)
        if not path.is_file():
            raise FetchError(f"local file not found: {path}" + (" (it is a directory)" if path.is_dir() else ""))
        total = path.stat().st_size
        log.info("copying %s -> %s (%.1f MB)", path, dest, total / 1e6)
        with atomic_output(dest) as tmp, open(path, "rb") as src, open(tmp, "wb") as out:
            digest = _copy_stream(src, out, _Progress(f"copy {path}", total))
            out.flush()
            _check_sha256(digest, expected, label)
    log.info("%s: sha256 %s", dest, digest)
    return digest


def _check_sha256(digest: str, expected: str | None, label: str) -> None:
    if expected is not None and digest != expected:
        raise ChecksumError(
            f"sha256 mismatch for {label}: expected {expected}, got {digest}; the file was not kept. "
            "If the source changed on purpose, update the configured sha256."
        )


# --------------------------------------------------------------------------------------------------
# reference FASTA


def compression(path: str | os.PathLike) -> str:
    """``"bgzip"``, ``"gzip"`` or ``"plain"``, from the file's first bytes (BGZF = gzip with a BC extra field)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    if len(head) >= 14 and head[3] & 0x04 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def _check_fasta_start(path: Path, kind: str, label: str) -> None:
    opener = gzip.open if kind != "plain" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4096).lstrip()
    except (OSError, EOFError) as exc:
        raise FetchError(f"{label}: cannot read it as {kind} data: {exc}") from None
    if not head.startswith(b">"):
        raise FetchError(f"{label} is not a FASTA file: it does not start with a '>' header line")


def _index(path: Path, label: str) -> None:
    try:
        pysam.faidx(str(path))
    except pysam.utils.SamtoolsError as exc:
        raise FetchError(
            f"could not index the FASTA from {label}: {str(exc).strip()}. A FASTA must have the same "
            "line length within each sequence (re-wrap it, e.g. with `seqkit seq -w 60`)"
        ) from None


def _decompress(src: Path, dst: Path, label: str) -> None:
    total = src.stat().st_size
    progress = _Progress(f"decompress {label}", None)
    try:
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            _copy_stream(fin, fout, progress)
    except (OSError, EOFError) as exc:
        raise FetchError(f"{label}: corrupt gzip data ({exc})") from None
    log.info("decompressed %s: %.1f MB -> %.1f MB", label, total / 1e6, progress.done / 1e6)


def prepare_fasta(
    source: str | os.PathLike,
    dest_fa: str | os.PathLike,
    *,
    link: bool = False,
    token_env: str | None = None,
    expected_sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Make an indexed reference FASTA at ``dest_fa`` from a local path or a URL.

    The input may be plain, gzip or bgzip (detected from its bytes, not its name). The output form
    follows ``dest_fa``'s name:

    * ``*.gz`` -> bgzip FASTA with ``.fai`` and ``.gzi`` (gzip input is decompressed and recompressed
      with ``pysam.tabix_compress``; bgzip input is used as is);
    * anything else -> plain FASTA with ``.fai`` (gzip and bgzip input are decompressed). The
      workflow uses this form: every reader here (pysam, pyfaidx as used by the SpliceAI CLI,
      samtools) reads it, and random access needs no decompression.

    With ``link=True`` a local input that already has the output's form is symlinked (absolute
    path) instead of copied, which avoids duplicating a 3 GB genome; the index is always built
    next to ``dest_fa``. ``expected_sha256`` is checked against the source bytes (the download or
    the local file); the source's sha256 is logged either way. Nothing is left at ``dest_fa`` (or
    its index) unless every step succeeded.
    """
    dest = Path(dest_fa)
    dest.parent.mkdir(parents=True, exist_ok=True)
    want_bgzip = dest.name.endswith(".gz")
    label = describe_source(source)
    cleanup: list[Path] = []
    try:
        if is_url(source):
            src = _temp_path(dest, ".download")
            cleanup.append(src)
            fetch_file(source, src, token_env=token_env, expected_sha256=expected_sha256, timeout=timeout)
            link = False
        else:
            src = local_path(source)
            if not src.is_file():
                raise FetchError(f"reference FASTA not found: {src}")
            digest = sha256_file(src)
            log.info("%s: sha256 %s", src, digest)
            if expected_sha256:
                _check_sha256(digest, normalise_sha256(expected_sha256), label)
        kind = compression(src)
        log.info("%s: %s input, writing a %s FASTA", label, kind, "bgzip" if want_bgzip else "plain")
        _check_fasta_start(src, kind, label)

        tmp = _temp_path(dest, ".part" + (".fa.gz" if want_bgzip else ".fa"))
        cleanup += [tmp, Path(f"{tmp}.fai"), Path(f"{tmp}.gzi")]
        same_form = (kind == "bgzip") if want_bgzip else (kind == "plain")
        if same_form and link and not is_url(source):
            tmp.unlink()
            os.symlink(src.resolve(), tmp)
            log.info("linked %s -> %s", dest, src.resolve())
        elif same_form:
            shutil.copyfile(src, tmp)
        elif want_bgzip and kind == "plain":
            pysam.tabix_compress(str(src), str(tmp), force=True)
        elif want_bgzip:  # gzip -> plain temp -> bgzip
            plain = _temp_path(dest, ".part.fa")
            cleanup.append(plain)
            _decompress(src, plain, label)
            pysam.tabix_compress(str(plain), str(tmp), force=True)
            _unlink(plain)
        else:  # gzip/bgzip -> plain
            _decompress(src, tmp, label)

        _index(tmp, label)
        with pysam.FastaFile(str(tmp)) as fasta:
            n, total = fasta.nreferences, sum(fasta.lengths)
        if n == 0:
            raise FetchError(f"{label}: the FASTA has no sequences")
        if want_bgzip:
            os.replace(f"{tmp}.gzi", f"{dest}.gzi")
        os.replace(f"{tmp}.fai", f"{dest}.fai")
        os.replace(tmp, dest)
        log.info("%s: %d contigs, %d bases, indexed", dest, n, total)
        return dest
    finally:
        _unlink(*cleanup)


# --------------------------------------------------------------------------------------------------
# gene annotation


def prepare_annotation(
    source: str | os.PathLike, dest: str | os.PathLike, *, token_env: str | None = None, timeout: float = 60.0
) -> str:
    """Copy a SpliceAI-format annotation table to ``dest``; return its sha256.

    ``source`` is ``"grch37"``/``"grch38"`` (the tables bundled with the spliceai package, found
    without importing it), a local path or a URL. The copy is parsed before it is kept, so a file
    that is not a SpliceAI annotation table fails here with the line that is wrong.
    """
    from metasplice.data.annotation import BUNDLED, bundled_annotation_path, read_annotation_table

    text = str(source)
    if text.lower() in BUNDLED:
        path = bundled_annotation_path(text.lower())
        if not path.is_file():
            raise FetchError(f"the spliceai package has no bundled table {path}; reinstall spliceai==1.3.1")
        text = str(path)
    dest = Path(dest)
    with atomic_output(dest, ".part.tsv") as tmp:
        digest = fetch_file(text, tmp, token_env=token_env, timeout=timeout)
        genes = read_annotation_table(tmp)
        if genes.empty:
            raise FetchError(f"annotation {describe_source(text)} lists no genes")
        log.info("annotation %s: %d genes on %d contigs", describe_source(text), len(genes), genes["chrom"].nunique())
    log.info("%s: sha256 %s", dest, digest)
    return digest
