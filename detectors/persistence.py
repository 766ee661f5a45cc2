"""On-disk envelope of a frozen detector: our own format, never pickle.

Layout of a model file::

    MAGIC (18 bytes) | header length (8 bytes, little-endian) | header (UTF-8 JSON) | .npz payload

* The magic comes first so that anything else (a pickle, a joblib dump, a bare .npz, a
  text file) is refused before a single byte of it is interpreted.
* The JSON header can be read without touching the arrays (``read_header``), which is what
  listing tools want: format name and version, algorithm, detector class, params, feature
  names, model version (content hash), created_at and the library versions used to train.
* The payload is a plain ``.npz`` loaded with ``allow_pickle=False``; its SHA-256 is in the
  header, and the model's content hash (params + feature names + every learned array) is
  recomputed after loading and compared with the header. The hashes detect corruption and
  accidental edits; they are not a signature (whoever can write the file can recompute
  them), which is why loaders also validate the structure of the arrays before any kernel
  indexes with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT_NAME = "riskctl.detector"
FORMAT_VERSION = 1
MAGIC = b"\x89RISKCTL-DETECTOR\n"
_LENGTH_BYTES = 8
_MAX_HEADER_BYTES = 16 * 1024 * 1024
# Only plain numeric arrays are ever written; anything else in a payload is foreign.
_ALLOWED_KINDS = frozenset("biuf")


class ModelFormatError(ValueError):
    """The file is not a detector in a format this build can read."""


class ModelIntegrityError(ModelFormatError):
    """The file is in our format but its content does not match its own hashes."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(
    algorithm: str,
    params: Mapping[str, Any],
    feature_names: list[str],
    arrays: Mapping[str, NDArray[Any]],
) -> str:
    """SHA-256 (hex) over params, feature names and learned arrays, in a canonical byte form.

    Byte order is normalised to little-endian so the same model hashes the same everywhere;
    created_at and library versions are deliberately left out, so retraining identically
    (same data, params and seed) gives the same version.
    """
    digest = hashlib.sha256()
    meta = {"algorithm": algorithm, "params": dict(params), "feature_names": list(feature_names)}
    digest.update(canonical_json(meta).encode())
    for name in sorted(arrays):
        array = np.asarray(arrays[name], order="C")
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(canonical_json([name, little.dtype.str, list(array.shape)]).encode())
        digest.update(little.tobytes())
    return digest.hexdigest()


def write_envelope(
    path: str | os.PathLike[str], header: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]
) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a model."""
    buffer = io.BytesIO()
    contiguous: dict[str, Any] = {name: np.asarray(a, order="C") for name, a in arrays.items()}
    np.savez(buffer, **contiguous)
    payload = buffer.getvalue()
    full_header = {
        **header,
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()},
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    header_bytes = canonical_json(full_header).encode()
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(MAGIC)
            handle.write(len(header_bytes).to_bytes(_LENGTH_BYTES, "little"))
            handle.write(header_bytes)
            handle.write(payload)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _reject_constant(name: str) -> Any:
    raise ModelFormatError(f"model header contains a non-finite number ({name})")


def _read_header_from(handle: io.BufferedReader, path: str | os.PathLike[str]) -> dict[str, Any]:
    magic = handle.read(len(MAGIC))
    if magic != MAGIC:
        raise ModelFormatError(
            f"{os.fspath(path)!r} is not a riskctl detector file (bad magic {magic[:8]!r}); "
            "pickle/joblib files are never loaded"
        )
    length = int.from_bytes(handle.read(_LENGTH_BYTES), "little")
    if not 0 < length <= _MAX_HEADER_BYTES:
        raise ModelFormatError(f"implausible header length {length}")
    raw = handle.read(length)
    if len(raw) != length:
        raise ModelFormatError("truncated model header")
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"model header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelFormatError("model header is not a JSON object")
    if header.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"unknown model format {header.get('format')!r}; expected {FORMAT_NAME!r}")
    version = header.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ModelFormatError(
            f"unsupported {FORMAT_NAME} format version {version!r}; this build reads version {FORMAT_VERSION}"
        )
    return header


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header only (cheap: the arrays are not read)."""
    with open(path, "rb") as handle:
        return _read_header_from(handle, path)


def read_envelope(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Header and arrays of a model file, with format, hash and dtype checks."""
    with open(path, "rb") as handle:
        header = _read_header_from(handle, path)
        payload = handle.read()
    if len(payload) != header.get("payload_bytes"):
        raise ModelIntegrityError("model payload has the wrong length (truncated or appended to)")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ModelIntegrityError("model payload does not match its SHA-256 (corrupted or edited)")
    declared = header.get("arrays")
    if not isinstance(declared, dict):
        raise ModelFormatError("model header lacks the array index")
    arrays: dict[str, NDArray[Any]] = {}
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            if sorted(npz.files) != sorted(declared):
                raise ModelFormatError("model payload arrays differ from the header's index")
            for name in npz.files:
                array = npz[name]
                if array.dtype.kind not in _ALLOWED_KINDS:
                    raise ModelFormatError(f"array {name!r} has a non-numeric dtype {array.dtype}")
                arrays[name] = np.asarray(array, order="C")
    except ModelFormatError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFormatError(f"model payload is not a plain .npz archive: {exc}") from exc
    return header, arrays
