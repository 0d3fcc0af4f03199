"""Files written whole or not at all: a reader (a resumed run, the launcher gathering the ranks' last words, a batch
script reading the stop file) finds the old file or the new one, never one cut short."""
import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path, write) -> None:
    """Call write(file) on a temporary file in the same directory, then rename it over `path`.

    A crash or a full disk mid-write leaves the previous file intact, never a truncated one.
    """
    with staged_write(path, write):
        pass


@contextlib.contextmanager
def staged_write(path, write):
    """atomic_write in two steps: write(file) on the temporary file (on disk) when the block starts, the rename
    over `path` when it ends without an error. What the block writes is on disk before `path` says so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it what open() would, so that labmates on a
        # shared cluster can read results as the umask allows.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        yield
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def current_umask() -> int:
    umask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(umask)
    return umask
