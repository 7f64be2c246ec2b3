"""Reading the text files a user gives ercsynth (benchmark files, prompt templates, IEMOCAP's
release): UTF-8, with or without a byte-order mark, and a file in another encoding (a corpus
exported from a spreadsheet as Windows-1252 or Latin-1) stopped with its file, line and column
instead of a traceback from deep inside a reader."""

from __future__ import annotations

import codecs
from pathlib import Path


class NotUtf8(ValueError):
    """A text file that is not UTF-8; the message names the file, line, column and byte."""


def read_utf8(path: str | Path) -> str:
    """The file's text; a UTF-8 byte-order mark is dropped. Raises NotUtf8 at the first byte that
    is not UTF-8: `FILE:LINE: not UTF-8 (byte 0x.. at column N); re-save the file as UTF-8`."""
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1  # 1-based, in bytes
        raise NotUtf8(
            f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); re-save the file as UTF-8"
        ) from None
