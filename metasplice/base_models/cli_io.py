"""What every scoring command line (``spliceai``, ``pangolin``, ``predict``) does the same way.

- **Checks before anything slow**: flag values in range (argparse types that fail with one line),
  the input readable, every output folder present and writable; the FASTA and its index are
  checked by :class:`metasplice.data.genome.Genome`. Each failure is one line naming the file and
  what to do.
- **Atomic output**: every output is written to a temporary file in its target's folder and
  renamed into place only when the run completes (:class:`AtomicFiles`); on any failure or
  signal the temporary files are removed and no output is left behind.
- **Signals**: SIGINT and SIGTERM end the run with one line on stderr, temporary files removed,
  exit status 130 / 143 (:func:`run_command`).
- **Exit status**: :data:`EXIT_OK` (0) the run completed: every record was written, and lines or
  records that could not be used were named on stderr; :data:`EXIT_FAILED` (1) an input file is
  missing, unreadable or damaged, an output folder is missing or not writable, or the run failed
  (nothing written); :data:`EXIT_USAGE` (2) a flag is missing or out of range; 128 + the signal
  number when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
STDOUT = ("-", "/dev/stdout")


# --------------------------------------------------------------------------------------------
# flag values


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (inclusive; None: no upper bound)."""
    wanted = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    parse.__name__ = wanted  # argparse names the type by it
    return parse


positive_int = int_range(1)


# --------------------------------------------------------------------------------------------
# files


def check_input(path: str, what: str = "input VCF") -> None:
    """The input exists and can be read ('-' = stdin is always accepted)."""
    if path in ("-", "/dev/stdin"):
        return
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not p.is_file():
        raise ValueError(f"{path}: the {what} is not a file")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{path}: the {what} is not readable (check its permissions)")


def check_output(path: str | None, flag: str) -> None:
    """The folder of an output file exists and is writable ('-' = stdout, None = not asked for)."""
    if path is None or path in STDOUT:
        return
    target = Path(path)
    folder = target.resolve().parent
    if target.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {folder} (of {flag} {path}) does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {folder} (of {flag} {path}) is not writable; choose another {flag}")


def named(path: str | os.PathLike, exc: BaseException, what: str) -> str:
    """``exc``'s message, prefixed with the file when it does not already name it."""
    text = str(exc) or type(exc).__name__
    return text if str(path) in text else f"{what} {path}: {text}"


class AtomicFiles:
    """Temporary files beside the outputs, moved into place together by :meth:`commit`.

    As a context manager it commits on success and removes every temporary file on any exception
    (including an interruption); the target files are then left as they were.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def temp(self, path: str | os.PathLike, suffix: str = ".tmp") -> str:
        """A new empty temporary file in ``path``'s folder (``.NAME.XXXX.tmp``), moved to ``path`` on commit."""
        target = Path(path).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # the permissions of a file created the usual way, not mkstemp's 0600
        self.pending.append((tmp, str(target)))
        return tmp

    def text(self, path: str | os.PathLike) -> IO[str]:
        """A text file (UTF-8; bytes that were not UTF-8 are written back unchanged) at a temporary name."""
        return open(self.temp(path), "w", encoding="utf-8", errors="surrogateescape", newline="")

    def commit(self) -> None:
        for tmp, target in self.pending:  # in the order registered: register the main output last
            os.replace(tmp, target)
        self.pending = []

    def discard(self) -> None:
        for tmp, _ in self.pending:
            Path(tmp).unlink(missing_ok=True)
        self.pending = []

    def __enter__(self) -> AtomicFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def open_output(path: str, files: AtomicFiles) -> IO[bytes]:
    """A binary stream for a VCF output: stdout ('-'), bgzip (.gz/.bgz) or plain, at a temporary name."""
    if path in STDOUT:
        return sys.stdout.buffer
    tmp = files.temp(path)
    if path.endswith((".gz", ".bgz")):
        from pysam.libcbgzf import BGZFile

        return BGZFile(tmp, "wb")
    return open(tmp, "wb")


def encode_line(line: str) -> bytes:
    return (line + "\n").encode("utf-8", errors="surrogateescape")


# --------------------------------------------------------------------------------------------
# one record's failure


def isolate_failures(
    items: Sequence[T], score: Callable[[Sequence[T]], R], failed: Callable[[T, Exception], R]
) -> list[R]:
    """``[score(items)]``; when that raises, each item scored alone, so that an error costs one record.

    The item whose own scoring raises gets ``failed(item, error)``. When more than one item raises,
    the problem is not a record's (a device, memory or model failure): the first error is raised.
    """
    try:
        return [score(items)]
    except Exception as first:
        if len(items) < 2:
            return [failed(item, first) for item in items]
        results: list[R] = []
        failures = 0
        for item in items:
            try:
                results.append(score([item]))
            except Exception as exc:
                failures += 1
                if failures > 1:
                    raise first from None
                results.append(failed(item, exc))
        return results


# --------------------------------------------------------------------------------------------
# signals and exit status


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds the run (every ``finally`` and context manager runs).

    A BaseException, not an Exception, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` (once; later ones are ignored while it unwinds)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_command(command: str, log: logging.Logger, body: Callable[[], int]) -> int:
    """Run a command's body under :func:`interruptible`; expected failures become one line and an exit status.

    FileNotFoundError, ValueError, RuntimeError and OSError are expected failures (logged as one
    ``ERROR:`` line, :data:`EXIT_FAILED`); an interruption logs one line and returns 130 / 143.
    """
    with interruptible():
        try:
            return int(body() or 0)
        except Interrupted as exc:
            log.error("metasplice %s: interrupted by %s; stopped, temporary files removed", command, exc.name)
            return exc.exit_code
        except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
            log.error("%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return EXIT_FAILED
