"""The configurable call classification: categories, their default priority and required crews,
unassigned-time limits per priority, and the APCO common disposition codes used on closure.

The table ships as ``classification.toml`` beside this module; ``settings.classification_file``
replaces it (same format) for a centre with its own list.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.settings import Settings

DEFAULT_FILE = Path(__file__).with_name("classification.toml")


@dataclass(frozen=True)
class Category:
    """One call category and the crews it needs."""

    code: str
    priority: int
    kinds: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    label: dict[str, str] = field(default_factory=dict)

    def accepts(self, kind: str, capabilities: tuple[str, ...] | list[str]) -> str | None:
        """None when a crew of this kind and capabilities may go, else why not."""
        if self.kinds and kind not in self.kinds:
            return f"kind {kind} not in {', '.join(self.kinds)}"
        missing = [c for c in self.capabilities if c not in capabilities]
        if missing:
            return "lacks capability " + ", ".join(missing)
        return None


@dataclass(frozen=True)
class Classification:
    """The whole table, loaded once per file."""

    categories: dict[str, Category]
    dispositions: dict[str, str]
    unassigned_limit_s: dict[int, float]

    def category(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise InvalidInput(
                f"unknown category {code!r}; known: {', '.join(sorted(self.categories))}"
            ) from None

    def check_disposition(self, code: str) -> str:
        if code not in self.dispositions:
            raise InvalidInput(f"unknown disposition code {code!r} (APCO common codes 01-23)")
        return code

    def unassigned_limit(self, priority: int) -> float:
        if priority in self.unassigned_limit_s:
            return self.unassigned_limit_s[priority]
        return max(self.unassigned_limit_s.values(), default=600.0)


@lru_cache(maxsize=8)
def _load(path: Path) -> Classification:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"classification file {path} is not readable: {exc}") from None
    cats = {
        code: Category(
            code=code, priority=int(v["priority"]), kinds=tuple(v.get("kinds", ())),
            capabilities=tuple(v.get("capabilities", ())), label=dict(v.get("label", {})),
        )
        for code, v in raw.get("categories", {}).items()
    }
    if not cats:
        raise ConfigurationError(f"classification file {path} defines no categories")
    return Classification(
        categories=cats,
        dispositions={str(k): str(v) for k, v in raw.get("dispositions", {}).items()},
        unassigned_limit_s={int(k): float(v) for k, v in raw.get("unassigned_limit_s", {}).items()},
    )


def load_classification(settings: Settings | None = None) -> Classification:
    """The classification table of ``settings`` (cached per file)."""
    path = getattr(settings, "classification_file", None) or DEFAULT_FILE
    return _load(Path(path))
