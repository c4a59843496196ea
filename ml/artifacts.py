"""The artifact format: a model version is a directory holding weights, tokenizer and `meta.json`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess  # nosec B404 # runs fixed argument lists only
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.errors import ArtifactError, InvalidInput

META_FILE = "meta.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArtifactMeta:
    """What `meta.json` records about a model version."""

    task: str
    kind: str
    base_model: str
    labels: tuple[str, ...] = ()
    data: dict[str, str] = field(default_factory=dict)  # data set name -> sha256
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    created_at: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data


def code_version() -> str:
    """The git commit of the running code, or 'unknown' outside a checkout."""
    env = os.environ.get("CONTEXTA_CODE_VERSION")
    if env:
        return env
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(  # nosec B603, B607 # a fixed argument list, no shell, no user input; git from PATH, only to stamp the code version; a missing git is handled
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_texts(texts: list[str], labels: list[str] | None = None) -> str:
    """A stable fingerprint of training examples, for data that did not come from one file."""
    digest = hashlib.sha256()
    for i, text in enumerate(texts):
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f")
        if labels is not None:
            digest.update(labels[i].encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def write_meta(directory: Path, meta: ArtifactMeta) -> Path:
    """Write meta.json last, atomically: a directory with meta.json is a complete artifact."""
    if not meta.created_at:
        meta = ArtifactMeta(**{**meta.__dict__, "created_at": datetime.now(UTC).isoformat()})
    if not meta.code_version:
        meta = ArtifactMeta(**{**meta.__dict__, "code_version": code_version()})
    directory.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer, so two processes updating one artifact never share a half-written file.
    tmp = directory / f"{META_FILE}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(directory / META_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    return directory / META_FILE


def read_meta(directory: Path | str) -> ArtifactMeta:
    """Read and validate meta.json; any problem raises ArtifactError naming the path."""
    path = Path(directory)
    if not path.is_dir():
        raise ArtifactError(f"model artifact directory {path} does not exist")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{meta_path} is missing: {path} is not a complete model artifact")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{meta_path} must hold a JSON object")
    missing = [k for k in ("task", "kind", "base_model") if not isinstance(raw.get(k), str)]
    if missing:
        raise ArtifactError(f"{meta_path} lacks {', '.join(missing)}")
    known = set(ArtifactMeta.__dataclass_fields__)
    fields = {k: v for k, v in raw.items() if k in known}
    fields["labels"] = tuple(raw.get("labels") or ())
    return ArtifactMeta(**fields)


_TEXT_FIELDS = ("task", "kind", "base_model", "code_version", "created_at")
_DICT_FIELDS = ("data", "hyperparameters", "metrics")


def _checked_field(name: str, value: object) -> object:
    """`value` as meta.json may hold it under `name`; anything else raises InvalidInput."""
    if name in _TEXT_FIELDS:
        if not isinstance(value, str) or (name in ("task", "kind", "base_model") and not value):
            raise InvalidInput(f"meta field {name!r} must be a non-empty string, got {value!r}")
        return value
    if name == "labels":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise InvalidInput(f"meta field 'labels' must be a list of non-empty strings, got {value!r}")
        return tuple(value)
    if name in _DICT_FIELDS:
        if not isinstance(value, dict):
            raise InvalidInput(f"meta field {name!r} must be a dict, got {type(value).__name__}")
        try:
            return json.loads(json.dumps(value))  # a copy, and proof that it serialises
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"meta field {name!r} is not JSON-serialisable: {exc}") from None
    known = ", ".join(sorted(set(_TEXT_FIELDS) | set(_DICT_FIELDS) | {"labels"}))
    raise InvalidInput(f"{name!r} is not a meta.json field that can be updated; known: {known}")


def update_meta(directory: Path | str, **fields: object) -> ArtifactMeta:
    """Replace `fields` of an artifact's meta.json, validated, and write it back atomically.

    The artifact must already be complete (its meta.json readable); the other fields are kept as they are.
    """
    path = Path(directory)
    meta = read_meta(path)
    if not fields:
        return meta
    checked = {name: _checked_field(name, value) for name, value in fields.items()}
    updated = dataclasses.replace(meta, **checked)  # type: ignore[arg-type]
    write_meta(path, updated)
    return updated


def new_version_dir(store: Path, task: str) -> Path:
    """A fresh directory under the model store for the next version of `task` (never reuses one)."""
    base = store / task
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = base / stamp
    path.mkdir()
    return path
