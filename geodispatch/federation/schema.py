"""Validation of EIDO documents against the official NENA schema, read where it is installed.

The schema is NENA-STA-021's OpenAPI document (``<standards_dir>/eido/openapi.yaml``) whose
``components.schemas.EmergencyIncidentDataObjectType`` is the EIDO, with ``$ref``s into the NIEM
files beside it. They are loaded from ``Settings.standards_dir`` at run time (never copied into
the repository) and resolved with :mod:`referencing`: each file is one resource under its
``file:`` URI, so relative references such as ``NIEMComponents/nc.yaml#/...`` resolve as the
authors wrote them.

One defect of that published schema is repaired on load: ``minItems: '1,'`` under ``AgentType``
(a string where JSON Schema wants a number) is read as 1.

Two validators, one verdict. :mod:`jsonschema`'s ``Draft7Validator`` is the authority (it gives
the error list), but walking the referenced NIEM schemas costs ~4 ms a document. The fast path
bundles every schema the EIDO reaches into one document (each referenced fragment under
``definitions``, its ``$ref`` rewritten to point there; siblings of a ``$ref`` dropped, as Draft 7
ignores them) and compiles it with :mod:`fastjsonschema`, with format checks and defaults off as
in jsonschema's default. A document the fast path accepts is valid; one it refuses (or that makes
it fail) is handed to jsonschema, whose errors decide. So the fast path can only be wrong by
accepting what jsonschema refuses, and ``tests/federation/test_schema_fast.py`` shows both agree on
every EIDO the project builds and on mutated invalid ones.
"""

from __future__ import annotations

import importlib
import logging
import marshal
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

EIDO_SCHEMA = "EmergencyIncidentDataObjectType"
log = logging.getLogger(__name__)
_lock = threading.Lock()
_fast_lock = threading.Lock()
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
        contents = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        raise SchemaUnavailable(f"cannot read {path}: {exc.strerror}") from exc
    return Resource.from_contents(_repair(contents), default_specification=DRAFT7)


@lru_cache(maxsize=4)
def _validator(standards_dir: Path) -> Draft7Validator:
    base = _root(standards_dir)
    registry: Registry[Any] = Registry(retrieve=_load)  # type: ignore[call-arg]
    registry = registry.with_resource(base, _load(base))
    schema = {"$ref": f"{base}#/components/schemas/{EIDO_SCHEMA}"}
    return Draft7Validator(schema, registry=registry)


def _root(standards_dir: Path) -> str:
    root = (standards_dir / "eido" / "openapi.yaml").resolve()
    if not root.is_file():
        raise SchemaUnavailable(
            f"the NENA EIDO schema is not at {root}; set GEODISPATCH_STANDARDS_DIR")
    return root.as_uri()


def _pointer(node: Any, fragment: str, where: str) -> Any:
    for token in (fragment.split("/")[1:] if fragment else []):
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise SchemaUnavailable(f"the EIDO schema refers to {where}, which is not there")
    return node


def bundle(standards_dir: Path) -> dict[str, Any]:
    """The EIDO schema as one self-contained document (every ``$ref`` into ``definitions``)."""
    base = _root(standards_dir)
    documents: dict[str, Any] = {}
    names: dict[str, str] = {}
    pending: list[str] = []

    def name_of(ref: str) -> str:
        if ref not in names:
            names[ref] = f"s{len(names)}"
            pending.append(ref)
        return names[ref]

    def rewrite(node: Any, uri: str) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):  # Draft 7: a $ref's siblings are ignored
                return {"$ref": f"#/definitions/{name_of(urljoin(uri, ref.strip()))}"}
            return {k: rewrite(v, uri) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(v, uri) for v in node]
        return node

    top = name_of(f"{base}#/components/schemas/{EIDO_SCHEMA}")
    definitions: dict[str, Any] = {}
    while pending:
        ref = pending.pop()
        uri, fragment = urldefrag(ref)
        if uri not in documents:
            documents[uri] = _load(uri).contents
        definitions[names[ref]] = rewrite(_pointer(documents[uri], fragment, ref), uri)
    return {"$ref": f"#/definitions/{top}", "definitions": definitions}


def compiled_code(standards_dir: Path) -> bytes:
    """The bundled schema compiled to a Python code object, marshalled (see :func:`warm`).

    Runs in the child process only, so a centre whose environment lacks ``fastjsonschema``
    still imports this module and validates with jsonschema alone (the child fails, logged)."""
    fastjsonschema = importlib.import_module("fastjsonschema")
    source: str = fastjsonschema.compile_to_code(bundle(standards_dir), use_default=False,
                                            use_formats=False, detailed_exceptions=False)
    return marshal.dumps(compile(source, f"<EIDO schema {standards_dir}>", "exec"))


def _compile_elsewhere(standards_dir: Path) -> Callable[[Any], Any]:
    # Bundling and compiling 8 MB of generated code takes ~10 s, nearly all of it holding the
    # GIL: done in a child process, so a serving centre is not stalled; the code object comes
    # back marshalled (same interpreter) and only its definitions run here.
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from geodispatch.federation.schema import compiled_code; "
         "sys.stdout.buffer.write(compiled_code(Path(sys.argv[1])))", str(standards_dir)],
        capture_output=True, check=True, timeout=600)
    namespace: dict[str, Any] = {}
    exec(marshal.loads(out.stdout), namespace)  # our own compiled schema, from our child
    validate: Callable[[Any], Any] = namespace["validate"]
    return validate


class _Fast:
    """The compiled validator of one standards folder, built once in the background."""

    def __init__(self, standards_dir: Path) -> None:
        self.standards_dir = standards_dir
        self.validate: Callable[[Any], Any] | None = None
        self.failed: str | None = None
        self.done = threading.Event()
        threading.Thread(target=self._build, name="eido-schema-compile", daemon=True).start()

    def _build(self) -> None:
        try:
            self.validate = _compile_elsewhere(self.standards_dir)
            log.info("EIDO fast validation ready")
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.failed = f"{exc} {detail[-500:].decode(errors='replace')}".strip()
            log.warning("EIDO fast validation off (jsonschema alone validates): %s", self.failed)
        finally:
            self.done.set()


_FAST: dict[Path, _Fast] = {}


def warm(standards_dir: Path) -> _Fast:
    """Start compiling the fast validator of ``standards_dir`` (once); until it is ready every
    document goes to jsonschema, so nothing waits for it."""
    with _fast_lock:
        fast = _FAST.get(standards_dir)
        if fast is None:
            fast = _FAST[standards_dir] = _Fast(standards_dir)
        return fast


def fast_validator(standards_dir: Path, *, timeout: float = 600.0) -> Callable[[Any], Any]:
    """The compiled validator, waiting for it (tests, benchmarks)."""
    fast = warm(standards_dir)
    if not fast.done.wait(timeout) or fast.validate is None:
        raise SchemaUnavailable(f"the fast EIDO validator was not built: {fast.failed}")
    return fast.validate


def eido_valid_fast(doc: Any, *, standards_dir: Path) -> bool:
    """True if the compiled (bundled) schema accepts ``doc``; False is only a "don't know"
    (refused, or not compiled yet)."""
    validate = warm(standards_dir).validate
    if validate is None:
        return False
    try:
        validate(doc)
    except Exception:  # a refusal, or generated code that could not handle the value
        return False
    return True


def eido_errors(doc: Any, *, standards_dir: Path) -> list[str]:
    """Every violation of the EIDO schema in ``doc``, as ``path: message`` (empty = valid).

    The compiled fast path answers for a valid document; anything it refuses is checked by
    jsonschema, whose errors are returned (see the module doc).

    Raises
    ------
    SchemaUnavailable
        When the schema cannot be read from ``standards_dir``.
    """
    if eido_valid_fast(doc, standards_dir=standards_dir):
        return []
    return eido_errors_slow(doc, standards_dir=standards_dir)


def eido_errors_slow(doc: Any, *, standards_dir: Path) -> list[str]:
    """:func:`eido_errors` by jsonschema alone (the authority)."""
    with _lock:  # the registry crawls lazily and is shared
        validator = _validator(standards_dir)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    out = []
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        out.append(f"{where}: {e.message}")
    return out
