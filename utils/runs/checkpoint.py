"""Checkpoint files: written atomically, read without executing code, identified by their sha256."""
import hashlib
import zipfile
from pathlib import Path

import torch

from utils.errors import UserError
from utils.process.files import atomic_write, staged_write

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip archive
CHUNK_BYTES = 1 << 20


def sha256_of(path) -> str:
    """A file's sha256 (as sha256sum prints it), read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def atomic_save(obj, path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def staged_save(obj, path):
    """atomic_save in two steps (staged_write): saved when the block starts, in `path`'s place when it ends."""
    return staged_write(path, lambda f: torch.save(obj, f))


def load_checkpoint(path, map_location="cpu", name=None):
    """torch.load with weights_only=True: a downloaded checkpoint cannot run code on load. `name`: what
    messages call the file (an archive member read from a temporary copy)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {name or path}")
    looks_like = not_a_checkpoint(path)
    if looks_like:
        raise UserError(f"{name or path} is not a PyTorch checkpoint: it is {looks_like}; probably a failed download "
                        f"(a sharing link saves its web page): download the file again")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or unsafe files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if file_head(path, len(ZIP_MAGIC)) == ZIP_MAGIC and not zipfile.is_zipfile(path):
            reason = (f"a zip archive cut short ({path.stat().st_size} bytes), an interrupted download or copy, "
                      f"or a damaged disk")
        raise UserError(f"cannot read checkpoint {name or path}: {reason}") from None


def not_a_checkpoint(path: Path):
    """What a file that cannot be a checkpoint looks like (empty, a web page), or None.

    torch.load's own message for these advises weights_only=False, which is the wrong remedy.
    """
    head = file_head(path, 512)
    if not head:
        return "empty (0 bytes)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<!--")):
        return f"an HTML page ({path.stat().st_size} bytes starting {head[:15]!r})"
    return None


def file_head(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def extract_state_dict(checkpoint, path="checkpoint") -> dict:
    """The weights from either published layout ('state_dict' or 'model') or a bare state dict."""
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                return checkpoint[key]
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
    raise UserError(f"{path} holds no state dict (looked under 'state_dict', 'model' and the top level)")


def load_weights(model, state_dict: dict, arch: str, path="checkpoint") -> None:
    """Strict load, with a message that names the architecture and the first mismatches."""
    expected, found = set(model.state_dict()), set(state_dict)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise UserError(f"{path} does not fit architecture {arch}: missing keys {missing[:3]}, "
                        f"unexpected keys {unexpected[:3]} ({len(missing)} missing, {len(unexpected)} unexpected)")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        shape_lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise UserError(f"{path} does not fit architecture {arch}: {shape_lines[0] if shape_lines else exc}") from None
