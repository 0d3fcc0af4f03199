"""Downloading one large file over HTTP(S) with the standard library: a progress bar, and a download
broken off (network, Ctrl-C) continued where it stopped, with an HTTP Range request."""
import http.client
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from utils.errors import UserError
from utils.training.progress import REFRESH_SECONDS

CHUNK_BYTES = 1 << 20
STALL_SECONDS = 60  # a connection silent this long is broken off (and continued by the next call)
PART_SUFFIX = ".part"


class ByteProgress:
    """'name  12.3/190.0 MB  6 %  4.1 MB/s' rewritten in place on a terminal; one last line elsewhere."""

    def __init__(self, name: str, done: int, total, stream=None, clock=time.perf_counter):
        self.name, self.done, self.total, self.clock = name, done, total, clock
        self.stream = sys.stderr if stream is None else stream
        self.start_bytes, self.start = done, clock()
        self.last_shown = self.start

    def update(self, received: int) -> None:
        self.done += received
        if self.stream.isatty() and self.clock() - self.last_shown >= REFRESH_SECONDS:
            self.last_shown = self.clock()
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self.stream.isatty() else "") + self.line() + "\n")
        self.stream.flush()

    def line(self) -> str:
        rate = (self.done - self.start_bytes) / max(self.clock() - self.start, 1e-9) / 1e6
        size = f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB" if self.total else f"{self.done / 1e6:.1f} MB"
        percent = f"  {100 * self.done / self.total:3.0f} %" if self.total else ""
        return f"{self.name}  {size}{percent}  {rate:.1f} MB/s"


def open_from(url: str, offset: int):
    """(response, first byte it sends): from `offset` when the server honours the Range header, else 0."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=STALL_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing after `offset`: the partial file may already be whole
            error.close()
            return None, offset
        raise UserError(f"downloading {url} failed: HTTP {error.code} {error.reason} (--url takes a mirror)") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"cannot reach {url}: {reason} (--url takes a mirror; or download the file by hand and "
                        "import it)") from None
    if offset and response.status == 206:
        match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == offset:
            return response, offset
    return response, 0  # a full answer: the server ignores ranges, so start over


def expected_size(response, start: int):
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def download(url: str, dest: Path, stream=None) -> Path:
    """Fetch url to dest, continuing dest.part if an earlier call was broken off; dest appears only whole."""
    if dest.is_file():
        print(f"already downloaded: {dest}", file=stream or sys.stderr)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    have = part.stat().st_size if part.is_file() else 0
    response, start = open_from(url, have)
    if response is not None:
        with response:
            total = expected_size(response, start)
            if start:
                print(f"continuing {part} from byte {start:,}", file=stream or sys.stderr)
            receive(response, part, start, ByteProgress(dest.name, start, total, stream), url)
        if total is not None and part.stat().st_size != total:
            raise UserError(f"the download of {url} broke off at {part.stat().st_size:,} of {total:,} bytes; "
                            "run the same command again to continue it")
    part.replace(dest)
    return dest


def receive(response, part: Path, start: int, progress: ByteProgress, url: str) -> None:
    with open(part, "r+b" if start else "wb") as file:
        file.seek(start)
        file.truncate()
        try:
            while chunk := response.read(CHUNK_BYTES):
                file.write(chunk)
                progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # reset, timeout, body cut short
            reason = str(error) or type(error).__name__
            raise UserError(f"the download of {url} broke off after {file.tell():,} bytes ({reason}); "
                            "run the same command again to continue it") from None
        finally:
            progress.close()
