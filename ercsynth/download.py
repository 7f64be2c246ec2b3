"""Download a public file with a checksum; the partial file never takes the final name."""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path

HINT = (
    "Without network access here, copy the benchmark files into a folder (layout in docs/installation.md, "
    "'Data and licences') and point config key 'benchmarks_dir' at it, or set 'download_mirror' to a "
    "server that has them"
)


class DownloadError(RuntimeError):
    """A benchmark file could not be downloaded; the message says which, from where, why and what to do."""


class ChecksumMismatch(DownloadError, ValueError):
    pass


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    url: str, dest: str | Path, expected_sha256: str | None, log: logging.Logger | None = None, timeout: float = 120
) -> str:
    log = log or logging.getLogger(__name__)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".download")
    name = f"{dest.parent.name}/{dest.name}"
    log.info("downloading %s from %s", name, url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as fh:
            while chunk := resp.read(1 << 20):
                fh.write(chunk)
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"{name}: {url} answered HTTP {exc.code} ({exc.reason}). {HINT}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{name}: cannot download {url}: network error ({reason}). {HINT}") from None
    digest = sha256(tmp)
    if expected_sha256 and digest != expected_sha256:
        tmp.unlink()
        raise ChecksumMismatch(
            f"{name}: the file from {url} has sha256 {digest}, not the expected {expected_sha256} "
            f"(a changed or corrupted release; nothing was saved). {HINT}"
        )
    if not expected_sha256:
        log.warning("%s: no checksum on record; sha256 is %s", url, digest)
    tmp.replace(dest)
    log.info("saved %s (sha256 %s)", dest, digest)
    return digest
