"""The compiled fast path of EIDO validation agrees with jsonschema (the authority) on every
document the project builds and on mutated invalid ones: wrong types, missing required members,
values outside an enumeration, unknown members, nulls."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from geodispatch.federation.eido import build_eido
from geodispatch.federation.schema import (
    eido_errors,
    eido_errors_slow,
    eido_valid_fast,
    fast_validator,
)
from geodispatch.settings import Settings
from tests.federation.test_eido import CREW, EVENTS, FOREIGN, T1, _incident

VARIANTS: list[dict[str, Any]] = [
    {},
    {"incident": _incident(status="closed", disposition="03", closed_at=T1)},
    {"incident": _incident(lat=None, lng=None, sector_code=None, district_code=None)},
    {"incident": _incident(address=None, description="")},
    {"incident": _incident(status="merged"), "merged_into": "KV-2026-000041"},
    {"resources": []},
    {"events": EVENTS + [{"kind": "reopened", "actor": "s1", "at": T1, "data": {}}]},
]


def _documents(settings: Settings) -> list[dict[str, Any]]:
    docs = []
    for v in VARIANTS:
        args: dict[str, Any] = {"incident": _incident(), "events": EVENTS, "resources": CREW,
                                "centre": "KV", "standards_dir": settings.standards_dir, **v}
        docs.append(json.loads(json.dumps(build_eido(**args))))
    return [*docs, copy.deepcopy(FOREIGN)]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _wrong(value: Any) -> list[Any]:
    """Values of other JSON types than ``value``'s (and a value no enumeration holds)."""
    if isinstance(value, bool):
        return ["true", 1, None]
    if isinstance(value, (int, float)):
        return [str(value), True, [value], None]
    if isinstance(value, str):
        return [12345, "NOT-A-CODE-\u00e9", {"x": value}, [value], None, False]
    if isinstance(value, list):
        return [{}, "x", 1, [None], [1, 2], None]
    if isinstance(value, dict):
        return ["x", 1, [value], None, {}]
    return [1, "x"]


def _mutants(doc: dict[str, Any], rng: random.Random, n: int
             ) -> Iterator[tuple[str, dict[str, Any]]]:
    paths = [p for p in _paths(doc) if p]
    for path in rng.sample(paths, min(n, len(paths))):
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        original = parent[path[-1]]
        for value in _wrong(original):
            m = copy.deepcopy(doc)
            target = m
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            yield f"{path} = {value!r}", m
        if isinstance(parent, dict):  # a member removed (required ones are refused)
            m = copy.deepcopy(doc)
            target = m
            for step in path[:-1]:
                target = target[step]
            del target[path[-1]]
            yield f"{path} removed", m
        if isinstance(original, dict):  # an unknown member added
            m = copy.deepcopy(doc)
            target = m
            for step in path:
                target = target[step]
            target["unknownMember"] = {"x": 1}
            yield f"{path} + unknownMember", m


@pytest.fixture(scope="module")
def fast(settings: Settings) -> Callable[[Any], Any]:
    return fast_validator(settings.standards_dir)


def test_built_documents_accepted_by_both(settings: Settings, fast: Callable[[Any], Any]
                                          ) -> None:
    """Every EIDO the project builds is valid for both, and the fast path answers for it."""
    for doc in _documents(settings):
        assert eido_errors_slow(doc, standards_dir=settings.standards_dir) == []
        fast(doc)  # raises if the compiled schema refuses it
        assert eido_valid_fast(doc, standards_dir=settings.standards_dir)


def test_mutants_agree(settings: Settings, fast: Callable[[Any], Any]) -> None:
    """On mutated documents, the fast path accepts exactly what jsonschema accepts."""
    rng = random.Random(18)
    seen = refused = 0
    disagree = []
    for doc in _documents(settings):
        for what, m in _mutants(doc, rng, 40):
            slow_ok = eido_errors_slow(m, standards_dir=settings.standards_dir) == []
            fast_ok = eido_valid_fast(m, standards_dir=settings.standards_dir)
            seen += 1
            refused += not slow_ok
            if slow_ok != fast_ok:
                disagree.append(f"{what}: jsonschema {'accepts' if slow_ok else 'refuses'}")
    assert disagree == []
    print(f"{seen} mutants, {refused} refused by jsonschema")
    assert seen > 500 and refused > 100, (seen, refused)  # the mutations do produce refusals


def test_refusal_keeps_jsonschema_errors(settings: Settings, fast: Callable[[Any], Any]
                                         ) -> None:
    """What the fast path refuses is reported with jsonschema's own error list."""
    doc = _documents(settings)[0]
    del doc["incidentComponent"]["lastUpdateTimeStamp"]
    doc["notesComponent"] = "x"
    assert not eido_valid_fast(doc, standards_dir=settings.standards_dir)
    errors = eido_errors(doc, standards_dir=settings.standards_dir)
    assert errors == eido_errors_slow(doc, standards_dir=settings.standards_dir)
    assert len(errors) >= 2
