"""A staged release folder: the two files that describe it, named and read.

``release.json`` says which staged file is the model, its sidecar, its Sigstore
bundle, its licence text, its card and its export manifest; ``SHA256SUMS`` lists
every file's digest in ``sha256sum`` form; ``release.sigstore.json`` signs every
other file, those two included. Staging writes them and verification reads
them back, each through a capped read of a plain file (no symlinks), refusing
any name that is not a plain file name in the folder itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vmafx_saliency._json import json_loads
from vmafx_saliency._util import read_capped
from vmafx_saliency.errors import ReleaseError

SUMS = "SHA256SUMS"
RELEASE_JSON = "release.json"
RELEASE_SCHEMA = "vmafx-saliency/release/v1"
# The signature over every other file of the folder (release.json and the sums
# included), made by 'release stage --private-key'.
RELEASE_BUNDLE = "release.sigstore.json"
# The names release.json may not give to an asset: the folder's own files.
RESERVED = (RELEASE_JSON, SUMS, RELEASE_BUNDLE)
# release.json, SHA256SUMS and licence texts are a few KiB.
MAX_TEXT_BYTES = 8 * 1024 * 1024


def plain_name(value: object) -> bool:
    """A file name in the release folder itself: no folders, no '..', nothing hidden."""
    return (
        isinstance(value, str)
        and bool(value)
        and not value.startswith(".")
        and not any(c in value for c in "/\\\0\n")
    )


def read_small(path: Path, *, cap: int, what: str) -> bytes:
    """A release holds plain files only: symlinks are refused."""
    return read_capped(path, cap=cap, what=what, error=ReleaseError, symlinks=False)


# The keys of release.json that name a staged file; the optional ones are absent in
# releases without that file.
FILE_KEYS = ("onnx", "sigstore_bundle", "license_file", "card")
OPTIONAL_FILE_KEYS = ("manifest", "sidecar")


def named_files(doc: dict[str, Any]) -> set[str]:
    """The staged files a (checked) release.json names, the reserved three included."""
    names = {doc.get(key) for key in (*FILE_KEYS, *OPTIONAL_FILE_KEYS)}
    return set(RESERVED) | {name for name in names if isinstance(name, str)}


def read_release_doc(folder: Path) -> dict[str, Any]:
    """The folder's release.json, every field checked; a malformed one is refused whole."""
    raw = read_small(folder / RELEASE_JSON, cap=MAX_TEXT_BYTES, what="release description")
    return parse_release_doc(folder, raw)


def parse_release_doc(folder: Path, raw: bytes) -> dict[str, Any]:
    """release.json's bytes (already read), every field checked."""
    try:
        doc = json_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{folder / RELEASE_JSON} is not UTF-8 JSON ({exc})") from exc
    problems = []
    if not isinstance(doc, dict):
        raise ReleaseError(f"{folder / RELEASE_JSON} is not a JSON object")
    if doc.get("schema") != RELEASE_SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}, not {RELEASE_SCHEMA!r}")
    for key in ("model_id", "license", "source"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            problems.append(f"{key} is not a string")
    for key in FILE_KEYS:
        if not plain_name(doc.get(key)) or doc[key] in RESERVED:
            problems.append(f"{key} {doc.get(key)!r} is not a file name in the folder")
    for key in OPTIONAL_FILE_KEYS:
        value = doc.get(key)
        if value is not None and (not plain_name(value) or value in RESERVED):
            problems.append(f"{key} {value!r} is not a file name in the folder")
    if problems:
        raise ReleaseError(
            f"{folder / RELEASE_JSON} is malformed: {'; '.join(problems)}: stage the release "
            "again with 'vmafx-saliency release stage'"
        )
    return doc


def read_sums(folder: Path) -> dict[str, str]:
    """The folder's SHA256SUMS as {file name: sha256}; a line that is not sha256sum's is refused."""
    return parse_sums(folder, read_small(folder / SUMS, cap=MAX_TEXT_BYTES, what="checksum list"))


def parse_sums(folder: Path, raw: bytes) -> dict[str, str]:
    """SHA256SUMS's bytes (already read) as {file name: sha256}."""
    text = raw.decode("utf-8", errors="replace")
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not match or not plain_name(match.group(2)):
            raise ReleaseError(f"{folder / SUMS}:{number}: not a sha256sum line: {line!r}")
        if match.group(2) in sums:
            raise ReleaseError(f"{folder / SUMS}:{number}: lists {match.group(2)!r} twice")
        sums[match.group(2)] = match.group(1)
    return sums
