"""Checks of a raw file's bytes shared by every door that reads files from another system (bronze
ingestion, ``c360 identity --input``): its SHA-256, where it stops being UTF-8, whether it ends
with a line break (one streaming pass), and a CSV file's header as written. Any file system pyarrow
knows (local, S3, GCS, HDFS)."""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass

import pyarrow.fs as pafs


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    #: offset of the first byte that is not UTF-8 (text formats only), or None
    bad_utf8_at: int | None = None
    #: the file is not empty and its last byte is not a line break
    unterminated: bool = False


def file_digest(path: str, *, text: bool = False) -> FileDigest:
    """SHA-256 of the file; for a text format also where it stops being UTF-8 and whether it ends
    with a line break, in the same pass."""
    fs, fs_path = pafs.FileSystem.from_uri(path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, bad_at, last = 0, None, b""
    with fs.open_input_stream(fs_path) as stream:
        while chunk := stream.read(8 << 20):
            digest.update(chunk)
            if text and bad_at is None:
                pending = len(decoder.getstate()[0])  # bytes of a character begun in the last chunk
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    bad_at = offset - pending + exc.start
            offset += len(chunk)
            last = chunk[-1:]
    if text and bad_at is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            bad_at = offset - len(decoder.getstate()[0])  # a sequence cut at the end of the file
    return FileDigest(digest.hexdigest(), bad_at, bool(text and offset and last not in (b"\n", b"\r")))


def csv_header(path: str) -> list[str]:
    """The names in the first line of a CSV file, trimmed, as written (duplicates kept: Spark
    renames them, which hides them)."""
    fs, fs_path = pafs.FileSystem.from_uri(path)
    with fs.open_input_stream(fs_path) as stream:
        first = stream.read(1 << 20).decode("utf-8-sig", errors="replace").splitlines()
    if not first:
        return []
    return [name.strip() for name in next(csv.reader(io.StringIO(first[0])))]
