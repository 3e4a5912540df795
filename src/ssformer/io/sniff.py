"""What a file is, from its first bytes: an HTML page (a failed download), a zip archive or a
safetensors file. Used before a download is written and before a checkpoint is parsed."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZIP_MAGIC", "describe_head", "looks_like_html", "looks_like_safetensors", "read_head"]

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
"""The signatures a zip archive starts with (a local file header, or an empty archive)."""


def read_head(path: Path, size: int = 1024) -> bytes:
    """The first ``size`` bytes of ``path``."""
    with open(path, "rb") as handle:
        return handle.read(size)


def describe_head(path: Path, size: int = 64) -> str:
    """A short printable preview of a file's first bytes, for error messages."""
    return repr(read_head(path, size).decode("latin-1"))


def looks_like_html(head: bytes) -> bool:
    """Whether bytes start like an HTML page (a quota, login or error page); a byte-order mark
    and leading white space are skipped, and ``<html`` anywhere in them counts."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")
    return text.startswith(starts) or b"<html" in text


def looks_like_safetensors(head: bytes, path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < path.stat().st_size
