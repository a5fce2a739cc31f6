"""Writing files without losing what the user had.

Rules every output of the ``backtest`` command follows (the Python API writes atomically too):

- an output is never one of the inputs (data, funding, mark, strategy file), even with
  ``--force``, and two outputs never share a path;
- an existing file is never replaced unless ``force``; the default report name moves on to
  ``name-1.html``, ``name-2.html``... instead;
- the name is *claimed* before the run — created exclusively (``O_EXCL``), so two runs started
  together get different names — and released if the run fails;
- content is written to a temporary file in the same directory, then renamed over the claimed
  name: an interrupted run leaves no half-written file;
- a path that cannot be written (a directory, a missing or read-only parent) is refused before
  the run starts.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> claim = claim_output(folder / "report.html", what="--report")
>>> write_atomic(claim.path, "<html></html>"); claim.path.read_text()
'<html></html>'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAX_NUMBERED = 10_000


class OutputError(ValueError):
    """An output path that would lose the user's data or cannot be written."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output(path, *, what: str, inputs=(), others=()) -> Path:
    """``path`` as a Path after checking it can be written without harm (see the module docs).

    ``inputs``: (flag, path) pairs the run reads; ``others``: (flag, path) pairs of the other
    outputs of the same run.
    """
    text = str(path).strip() if path is not None else ""
    if not text:
        raise OutputError(f"{what}: the path is empty")
    path = Path(text)
    for flag, source in inputs:
        if source is not None and str(source).strip() and _same_file(path, Path(source)):
            raise OutputError(f"{what} {path} is the {flag} input: refusing to overwrite it "
                              "(even with --force); choose another path")
    for flag, other in others:
        if other is not None and _same_file(path, Path(other)):
            raise OutputError(f"{what} and {flag} are both {path}: give them different paths")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{what} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: the directory {parent} is not writable")
    return path


@dataclass
class Claim:
    """A reserved output name; ``placeholder`` is True when we created the (empty) file."""

    path: Path
    placeholder: bool

    def release(self) -> None:
        """Give the name back after a failed run (only the empty file we created)."""
        if self.placeholder:
            with contextlib.suppress(OSError):
                if self.path.stat().st_size == 0:
                    self.path.unlink()
            self.placeholder = False


def _create_exclusive(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def claim_output(path, *, what: str, force: bool = False, numbered: bool = False) -> Claim:
    """Reserve ``path`` for writing: created exclusively so no other run takes it.

    An existing file is an error unless ``force`` (then it is replaced at write time) or
    ``numbered`` (then the first free ``stem-N`` name is claimed).
    """
    path = Path(path)
    if force:
        return Claim(path, placeholder=False)
    if _create_exclusive(path):
        return Claim(path, placeholder=True)
    if not numbered:
        raise OutputError(f"{what} {path} exists; pass --force to replace it or choose another path")
    for number in range(1, MAX_NUMBERED):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        if _create_exclusive(candidate):
            return Claim(candidate, placeholder=True)
    raise OutputError(f"{what}: too many files named {path.stem}-N in {path.parent}")


def write_atomic(path, content: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``content`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    data = content.encode(encoding) if isinstance(content, str) else content
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
