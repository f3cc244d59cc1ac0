"""Tests for metasplice.data.fetch: local copies, downloads from a loopback HTTP server, checksums,
FASTA preparation (plain / gzip / bgzip) and the missing-source messages."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import os
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import pysam
import pytest

from metasplice.data import fetch
from metasplice.data.fetch import (
    ChecksumError,
    FetchError,
    MissingSourceError,
    fetch_file,
    prepare_annotation,
    prepare_fasta,
    redact_url,
    resolve_source,
    splicevardb_source,
)

TOKEN = "s3cr3t-token-value-123"
SECRET_BODY = b"variant_id\thg19\thg38\n1\t1-100-A-G\t1-200-A-G\n"
PUBLIC_BODY = b"public data\n" * 1000


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves /public, /secret (needs the bearer token), /redirect -> /secret (same host), 404 otherwise."""

    seen_auth: ClassVar[list] = []

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if self.path == "/public":
            self._send(200, PUBLIC_BODY)
        elif self.path == "/secret":
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                self._send(200, SECRET_BODY)
            else:
                self._send(401, b"unauthorised\n")
        elif self.path == "/forbidden":
            self._send(403, b"no\n")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-other-host":  # same server, reached under another host name
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/public")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/short":  # announces more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
        else:
            self._send(404, b"not here\n")

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture()
def server():
    """A loopback HTTP server (127.0.0.1, random port) running in a daemon thread."""
    _Handler.seen_auth = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------ fetch_file


def test_local_copy_returns_sha256(tmp_path: Path) -> None:
    src = tmp_path / "src.tsv"
    src.write_bytes(SECRET_BODY)
    dest = tmp_path / "out" / "copy.tsv"
    digest = fetch_file(src, dest)
    assert digest == _sha(SECRET_BODY)
    assert dest.read_bytes() == SECRET_BODY
    assert _leftovers(dest.parent) == ["copy.tsv"]
    # the checksum is checked when given (any case, optional sha256: prefix)
    assert fetch_file(src, dest, expected_sha256="sha256:" + digest.upper()) == digest


def test_local_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="local file not found: .*nope.tsv"):
        fetch_file(tmp_path / "nope.tsv", tmp_path / "x.tsv")
    assert _leftovers(tmp_path) == []


def test_checksum_mismatch_leaves_no_file(tmp_path: Path, server: str) -> None:
    src = tmp_path / "src.tsv"
    src.write_bytes(SECRET_BODY)
    out = tmp_path / "out"
    with pytest.raises(ChecksumError, match="sha256 mismatch .*expected 0{64}, got " + _sha(SECRET_BODY)):
        fetch_file(src, out / "copy.tsv", expected_sha256="0" * 64)
    with pytest.raises(ChecksumError, match="not kept"):
        fetch_file(f"{server}/public", out / "dl.txt", expected_sha256="f" * 64)
    assert _leftovers(out) == []
    with pytest.raises(ValueError, match="64 hex digits"):
        fetch_file(src, out / "copy.tsv", expected_sha256="abc")


def test_http_download_with_token(tmp_path: Path, server: str, monkeypatch, caplog) -> None:
    monkeypatch.setenv("MS_TEST_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG, logger="metasplice")
    dest = tmp_path / "export.tsv"
    digest = fetch_file(f"{server}/secret", dest, token_env="MS_TEST_TOKEN", expected_sha256=_sha(SECRET_BODY))
    assert digest == _sha(SECRET_BODY) and dest.read_bytes() == SECRET_BODY
    assert _Handler.seen_auth == [f"Bearer {TOKEN}"]
    # a same-host redirect keeps the token
    fetch_file(f"{server}/redirect", tmp_path / "again.tsv", token_env="MS_TEST_TOKEN")
    assert _Handler.seen_auth[-2:] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]
    # a redirect to another host does not carry the token on
    assert fetch_file(f"{server}/redirect-other-host", tmp_path / "p.txt", token_env="MS_TEST_TOKEN") == _sha(
        PUBLIC_BODY
    )
    assert _Handler.seen_auth[-2:] == [f"Bearer {TOKEN}", None]
    assert digest in caplog.text
    assert TOKEN not in caplog.text


def test_public_download_sends_no_token(tmp_path: Path, server: str) -> None:
    digest = fetch_file(f"{server}/public", tmp_path / "p.txt")
    assert digest == _sha(PUBLIC_BODY)
    assert _Handler.seen_auth == [None]


def test_http_401_names_token_variable(tmp_path: Path, server: str, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="metasplice")
    monkeypatch.delenv("MS_TEST_TOKEN", raising=False)
    with pytest.raises(FetchError, match="HTTP 401.*MS_TEST_TOKEN.*not set"):
        fetch_file(f"{server}/secret", tmp_path / "x.tsv", token_env="MS_TEST_TOKEN")
    monkeypatch.setenv("MS_TEST_TOKEN", "wrong-" + TOKEN)
    with pytest.raises(FetchError, match="HTTP 401.*MS_TEST_TOKEN may be invalid") as err:
        fetch_file(f"{server}/secret", tmp_path / "x.tsv", token_env="MS_TEST_TOKEN")
    assert TOKEN not in str(err.value) and TOKEN not in caplog.text
    with pytest.raises(FetchError, match="HTTP 403.*token_env"):
        fetch_file(f"{server}/forbidden", tmp_path / "x.tsv")
    assert _leftovers(tmp_path) == []


def test_http_404_and_truncated(tmp_path: Path, server: str) -> None:
    with pytest.raises(FetchError, match="not found: .*/missing: HTTP 404"):
        fetch_file(f"{server}/missing", tmp_path / "x.tsv")
    with pytest.raises(FetchError, match="incomplete|broke off"):
        fetch_file(f"{server}/short", tmp_path / "x.tsv", timeout=5)
    assert _leftovers(tmp_path) == []


def test_connection_error(tmp_path: Path) -> None:
    # a port nothing listens on: bind one, note it, close it
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="could not connect to http://127.0.0.1"):
        fetch_file(f"http://127.0.0.1:{port}/x?sig=abc", tmp_path / "x.tsv", timeout=5)


def test_redact_url() -> None:
    assert redact_url("https://user:pw@host.org:8443/a/b.tsv?token=xyz#f") == "https://***@host.org:8443/a/b.tsv?***"
    assert redact_url("https://host.org/a.tsv") == "https://host.org/a.tsv"


# ------------------------------------------------------------------------------------ sources


def test_missing_splicevardb_source_says_how_to_obtain(tmp_path: Path) -> None:
    key = "datasets.splicevardb_grch38.splicevardb"
    with pytest.raises(MissingSourceError) as err:
        splicevardb_source({}, key)
    msg = str(err.value)
    assert "https://splicevardb.org" in msg and "terms of use" in msg
    assert f"{key}.path" in msg and fetch.DEFAULT_SPLICEVARDB_PATH in msg and "token_env" in msg
    missing = tmp_path / "export.tsv"
    with pytest.raises(MissingSourceError, match=f"{missing} does not exist .*{key}.path"):
        splicevardb_source({"path": str(missing)}, key)


def test_resolve_source_order(tmp_path: Path) -> None:
    present = tmp_path / "a.tsv"
    present.write_text("x")
    url = "https://example.org/a.tsv"
    assert resolve_source({"path": str(present), "url": url}, what="x", config_key="k").location == str(present)
    # a missing local file falls back to the URL, which keeps its token variable and checksum
    src = resolve_source(
        {"path": str(tmp_path / "gone"), "url": url, "token_env": "T", "sha256": "A" * 64}, what="x", config_key="k"
    )
    assert (src.location, src.token_env, src.sha256, src.is_url) == (url, "T", "a" * 64, True)
    # a path the workflow produces itself is accepted before it exists
    assert resolve_source("resources/demo/x.tsv", what="x", config_key="k").location == "resources/demo/x.tsv"
    assert resolve_source(url, what="x", config_key="k").is_url
    with pytest.raises(ValueError, match="unknown key"):
        resolve_source({"paht": "x"}, what="x", config_key="k")
    with pytest.raises(ValueError, match="k.url must start with"):
        resolve_source({"url": "example.org/x"}, what="x", config_key="k")


# ------------------------------------------------------------------------------------ FASTA

FASTA = ">chrA desc\n" + "ACGTACGTNN\n" * 30 + "ACG\n" + ">chrB\n" + "TTTTGGGGCC\n" * 5
SEQ_A = "ACGTACGTNN" * 30 + "ACG"


def _check_fasta(path: Path) -> None:
    with pysam.FastaFile(str(path)) as fa:
        assert list(fa.references) == ["chrA", "chrB"]
        assert fa.fetch("chrA") == SEQ_A
        assert fa.fetch("chrB", 45, 50) == "GGGCC"


@pytest.mark.parametrize("kind", ["plain", "gzip", "bgzip"])
@pytest.mark.parametrize("out", ["genome.fa", "genome.fa.gz"])
def test_prepare_fasta_forms(tmp_path: Path, kind: str, out: str) -> None:
    src = tmp_path / "src" / f"in.{kind}"
    src.parent.mkdir()
    if kind == "plain":
        src.write_text(FASTA)
    elif kind == "gzip":
        src.write_bytes(gzip.compress(FASTA.encode()))
    else:
        plain = tmp_path / "src" / "tmp.fa"
        plain.write_text(FASTA)
        pysam.tabix_compress(str(plain), str(src))
        plain.unlink()
    assert fetch.compression(src) == kind
    dest = tmp_path / "res" / out
    assert prepare_fasta(src, dest) == dest
    _check_fasta(dest)
    expected = [out, f"{out}.fai"] + ([f"{out}.gzi"] if out.endswith(".gz") else [])
    assert _leftovers(dest.parent) == sorted(expected)
    assert fetch.compression(dest) == ("bgzip" if out.endswith(".gz") else "plain")
    assert not dest.is_symlink()


def test_prepare_fasta_link_and_download(tmp_path: Path, server: str) -> None:
    src = tmp_path / "in.fa"
    src.write_text(FASTA)
    dest = tmp_path / "res" / "g.fa"
    prepare_fasta(src, dest, link=True, expected_sha256=_sha(FASTA.encode()))
    assert dest.is_symlink() and dest.resolve() == src.resolve()
    _check_fasta(dest)
    with pytest.raises(ChecksumError):
        prepare_fasta(src, tmp_path / "res2" / "g.fa", expected_sha256="1" * 64)
    assert _leftovers(tmp_path / "res2") == []


def test_prepare_fasta_from_url(tmp_path: Path, monkeypatch) -> None:
    """A gzip FASTA downloaded over HTTP ends up as an indexed plain FASTA; the download is removed."""
    body = gzip.compress(FASTA.encode())

    class FastaHandler(_Handler):
        def do_GET(self) -> None:
            self._send(200, body) if self.path == "/g.fa.gz" else self._send(404, b"")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FastaHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "res" / "g.fa"
        prepare_fasta(f"http://127.0.0.1:{httpd.server_address[1]}/g.fa.gz", dest, expected_sha256=_sha(body))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    _check_fasta(dest)
    assert _leftovers(dest.parent) == ["g.fa", "g.fa.fai"]


def test_prepare_fasta_bad_inputs(tmp_path: Path) -> None:
    not_fasta = tmp_path / "x.fa"
    not_fasta.write_text("chrom\tpos\n1\t2\n")
    with pytest.raises(FetchError, match="not a FASTA"):
        prepare_fasta(not_fasta, tmp_path / "res" / "g.fa")
    ragged = tmp_path / "r.fa"
    ragged.write_text(">a\nACGT\nAC\nACGT\n")
    with pytest.raises(FetchError, match="could not index"):
        prepare_fasta(ragged, tmp_path / "res" / "g.fa")
    with pytest.raises(FetchError, match="not found"):
        prepare_fasta(tmp_path / "none.fa", tmp_path / "res" / "g.fa")
    assert _leftovers(tmp_path / "res") == []


# ------------------------------------------------------------------------------------ annotation


def test_prepare_annotation(tmp_path: Path) -> None:
    table = tmp_path / "ann.tsv"
    table.write_text(
        "#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\nG1\tchr1\t+\t99\t500\t99,300,\t200,500,\n"
    )
    dest = tmp_path / "res" / "ann.tsv"
    assert prepare_annotation(table, dest) == _sha(table.read_bytes())
    assert dest.read_bytes() == table.read_bytes()
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene\tchrom\nG\t1\n")
    with pytest.raises(ValueError, match="missing column"):
        prepare_annotation(bad, tmp_path / "res" / "bad.tsv")
    assert _leftovers(tmp_path / "res") == ["ann.tsv"]


def test_prepare_annotation_bundled(tmp_path: Path) -> None:
    from metasplice.data.annotation import bundled_annotation_path

    path = bundled_annotation_path("grch37")
    if not path.is_file():
        pytest.skip("spliceai package not installed")
    dest = tmp_path / "grch37.tsv"
    digest = prepare_annotation("GRCh37", dest)
    assert digest == _sha(path.read_bytes()) and dest.stat().st_size == path.stat().st_size
    assert os.path.getsize(dest) > 1_000_000


# ------------------------------------------------------------------------------------ rule helpers


def test_rule_helpers(tmp_path: Path) -> None:
    export = tmp_path / "export.tsv"
    export.write_text("x")
    ds = {
        "build": "GRCh38",
        "splicevardb": {"path": "", "url": "https://example.org/e.tsv", "token_env": "TOK", "sha256": ""},
        "genome": {"path": str(export), "url": ""},
        "annotation": "grch38",
    }
    assert fetch.rule_input(ds, "real", "splicevardb") == []  # a URL is downloaded by the script
    assert fetch.rule_input(ds, "real", "genome", "GRCh38") == [str(export)]
    with pytest.raises(ValueError, match="build 'hg19' was requested, but dataset 'real' is on build 'GRCh38'"):
        fetch.rule_input(ds, "real", "genome", "hg19")
    params = fetch.rule_params(ds, "real", "splicevardb")
    assert params == {
        "spec": {"url": "https://example.org/e.tsv", "token_env": "TOK"},
        "config_key": "datasets.real.splicevardb",
    }
    assert fetch.timeout_from_config({"fetch": {"timeout_s": 30}}) == 30.0 and fetch.timeout_from_config({}) == 60.0
    assert fetch.annotation_input(ds, "real", "GRCh38") == []
    assert fetch.annotation_input({**ds, "annotation": "ann/x.tsv"}, "real") == ["ann/x.tsv"]
    with pytest.raises(MissingSourceError, match="(?s)datasets.real.splicevardb.path.*splicevardb.org"):
        fetch.rule_input({**ds, "splicevardb": {"path": "", "url": ""}}, "real", "splicevardb")


ROOT = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, splicevardb: dict) -> subprocess.CompletedProcess[str]:
    """`snakemake -n` of the fetch rules with the given SpliceVarDB source, in a temporary folder."""
    import subprocess
    import sys

    import yaml

    tmp_path.mkdir(parents=True)
    genome = tmp_path / "g.fa"
    genome.write_text(FASTA)
    config = {
        "dataset": "real",
        "datasets": {
            "real": {
                "build": "GRCh38",
                "splicevardb": splicevardb,
                "genome": {"path": str(genome)},
                "annotation": "grch38",
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{tmp_path}/config.yaml"\ninclude: "{ROOT}/rules/common.smk"\ninclude: "{ROOT}/rules/fetch.smk"\n'
    )
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile", str(tmp_path / "Snakefile")]
    cmd += ["--directory", str(tmp_path / "run"), "resources/splicevardb/splicevardb.tsv"]
    cmd += ["resources/genome/GRCh38.fa", "resources/annotation/GRCh38.tsv"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_dry_run_stays_offline_and_missing_source_fails_early(tmp_path: Path) -> None:
    # an http source is not a rule input: the dry run plans the download without contacting the host
    # (nothing listens on this loopback port)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _dry_run(tmp_path / "a", {"url": f"http://127.0.0.1:{port}/export.tsv", "token_env": "TOK"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fetch_splicevardb" in done.stdout and "fetch_genome" in done.stdout
    # no source at all: the DAG cannot be built, and the message says how to get the export
    failed = _dry_run(tmp_path / "b", {"path": "", "url": ""})
    assert failed.returncode != 0
    text = failed.stdout + failed.stderr
    assert "https://splicevardb.org" in text and "datasets.real.splicevardb.path" in text
