"""Download a public file with a checksum; the partial file never takes the final name."""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from pathlib import Path


class ChecksumMismatch(ValueError):
    pass


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, dest: str | Path, expected_sha256: str | None, log: logging.Logger | None = None) -> str:
    log = log or logging.getLogger(__name__)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".download")
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as fh:
        while chunk := resp.read(1 << 20):
            fh.write(chunk)
    digest = sha256(tmp)
    if expected_sha256 and digest != expected_sha256:
        tmp.unlink()
        raise ChecksumMismatch(f"{url}: sha256 {digest} does not match the expected {expected_sha256}")
    if not expected_sha256:
        log.warning("%s: no checksum on record; sha256 is %s", url, digest)
    tmp.replace(dest)
    log.info("saved %s (sha256 %s)", dest, digest)
    return digest
