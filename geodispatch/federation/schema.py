"""Validation of EIDO documents against the official NENA schema, read where it is installed.

The schema is NENA-STA-021's OpenAPI document (``<standards_dir>/eido/openapi.yaml``) whose
``components.schemas.EmergencyIncidentDataObjectType`` is the EIDO, with ``$ref``s into the NIEM
files beside it. They are loaded from ``Settings.standards_dir`` at run time (never copied into
the repository) and resolved with :mod:`referencing`: each file is one resource under its
``file:`` URI, so relative references such as ``NIEMComponents/nc.yaml#/...`` resolve as the
authors wrote them.

One defect of that published schema is repaired on load: ``minItems: '1,'`` under ``AgentType``
(a string where JSON Schema wants a number) is read as 1.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

EIDO_SCHEMA = "EmergencyIncidentDataObjectType"
_lock = threading.Lock()


class SchemaUnavailable(Exception):
    """The standards folder does not hold the EIDO schema."""


def _repair(node: Any) -> Any:
    """Fix the published schema's known defects (a string ``minItems``)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in ("minItems", "maxItems") and isinstance(v, str):
                out[k] = int(v.strip().rstrip(",") or 0)
            else:
                out[k] = _repair(v)
        return out
    if isinstance(node, list):
        return [_repair(v) for v in node]
    return node


def _load(uri: str) -> Resource[Any]:
    if not uri.startswith("file://"):
        raise SchemaUnavailable(f"the EIDO schema refers outside its folder: {uri}")
    path = Path(uri[len("file://"):])
    try:
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaUnavailable(f"cannot read {path}: {exc.strerror}") from exc
    return Resource.from_contents(_repair(contents), default_specification=DRAFT7)


@lru_cache(maxsize=4)
def _validator(standards_dir: Path) -> Draft7Validator:
    root = (standards_dir / "eido" / "openapi.yaml").resolve()
    if not root.is_file():
        raise SchemaUnavailable(
            f"the NENA EIDO schema is not at {root}; set GEODISPATCH_STANDARDS_DIR")
    base = root.as_uri()
    registry: Registry[Any] = Registry(retrieve=_load)  # type: ignore[call-arg]
    registry = registry.with_resource(base, _load(base))
    schema = {"$ref": f"{base}#/components/schemas/{EIDO_SCHEMA}"}
    return Draft7Validator(schema, registry=registry)


def eido_errors(doc: Any, *, standards_dir: Path) -> list[str]:
    """Every violation of the EIDO schema in ``doc``, as ``path: message`` (empty = valid).

    Raises
    ------
    SchemaUnavailable
        When the schema cannot be read from ``standards_dir``.
    """
    with _lock:  # the registry crawls lazily and is shared
        validator = _validator(standards_dir)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    out = []
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message}")
    return out
