"""The configurable call classification: categories, their default priority and required crews,
unassigned-time limits per priority, and the dispositions an incident closes with.

The table ships as ``classification.toml`` beside this module; ``settings.classification_file``
replaces it (same format) for a centre with its own list.

Dispositions are the APCO ANS 1.111.2 common disposition codes (01-45), read at run time from
``settings.standards_dir/apco_disposition_codes.csv`` (the standard is never copied into the
repository), plus the centre's local codes from the TOML, each mapped onto one APCO code. An
incident keeps the APCO code (federation sends it to other centres); the local code, when one was
chosen, stays in the ``closed`` event.
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from geodispatch.errors import ConfigurationError, InvalidInput
from geodispatch.settings import Settings, get_settings

DEFAULT_FILE = Path(__file__).with_name("classification.toml")
APCO_FILE = "apco_disposition_codes.csv"
_APCO_CODE = re.compile(r"^\d{2}$")
_LOCAL_CODE = re.compile(r"^[A-Z][A-Z0-9_-]{0,7}$")
#: The steps of an incident at which its caller may be told by SMS (one message per step).
SMS_STAGES = ("registered", "assigned", "arrived", "closed", "cancelled", "merged")


@dataclass(frozen=True)
class Category:
    """One call category and the crews it needs."""

    code: str
    priority: int
    kinds: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    label: dict[str, str] = field(default_factory=dict)
    #: The SMS stages of this category; None: the file's ``[sms] stages``.
    sms: tuple[str, ...] | None = None

    def accepts(self, kind: str, capabilities: tuple[str, ...] | list[str]) -> str | None:
        """None when a crew of this kind and capabilities may go, else why not."""
        if self.kinds and kind not in self.kinds:
            return f"kind {kind} not in {', '.join(self.kinds)}"
        missing = [c for c in self.capabilities if c not in capabilities]
        if missing:
            return "lacks capability " + ", ".join(missing)
        return None


@dataclass(frozen=True)
class LocalDisposition:
    """One of the centre's own closing codes and the APCO common code it stands for."""

    code: str
    apco: str
    label: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    """The whole table, loaded once per file."""

    categories: dict[str, Category]
    local_dispositions: dict[str, LocalDisposition]
    unassigned_limit_s: dict[int, float]
    sms_stages: tuple[str, ...] = SMS_STAGES

    def notifies(self, category: str, stage: str) -> bool:
        """Whether a caller of ``category`` is told by SMS at ``stage`` (unknown category: the
        default stages)."""
        cat = self.categories.get(category)
        stages = cat.sms if cat is not None and cat.sms is not None else self.sms_stages
        return stage in stages

    def category(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise InvalidInput(
                f"unknown category {code!r}; known: {', '.join(sorted(self.categories))}"
            ) from None

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
    def stages(where: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ConfigurationError(f"classification file {path}: {where} must be a list of "
                                     f"SMS stages ({', '.join(SMS_STAGES)}); [] for none")
        wrong = [x for x in value if x not in SMS_STAGES]
        if wrong:
            raise ConfigurationError(f"classification file {path}: {where} names unknown SMS "
                                     f"stages {wrong}; known: {', '.join(SMS_STAGES)}")
        return tuple(value)

    cats = {
        code: Category(
            code=code, priority=int(v["priority"]), kinds=tuple(v.get("kinds", ())),
            capabilities=tuple(v.get("capabilities", ())), label=dict(v.get("label", {})),
            sms=stages(f"categories.{code}.sms", v["sms"]) if "sms" in v else None,
        )
        for code, v in raw.get("categories", {}).items()
    }
    if not cats:
        raise ConfigurationError(f"classification file {path} defines no categories")
    local: dict[str, LocalDisposition] = {}
    for code, v in raw.get("local_dispositions", {}).items():
        if not _LOCAL_CODE.match(str(code)) or not isinstance(v, dict) \
                or not _APCO_CODE.match(str(v.get("apco", ""))):
            raise ConfigurationError(
                f"classification file {path}: local disposition {code!r} needs a code of 1-8 "
                "capital letters/digits starting with a letter and apco = \"NN\" (two digits)")
        local[str(code)] = LocalDisposition(code=str(code), apco=str(v["apco"]),
                                            label=dict(v.get("label", {})))
    return Classification(
        categories=cats,
        local_dispositions=local,
        unassigned_limit_s={int(k): float(v) for k, v in raw.get("unassigned_limit_s", {}).items()},
        sms_stages=stages("[sms] stages", raw.get("sms", {}).get("stages", list(SMS_STAGES))),
    )


def load_classification(settings: Settings | None = None) -> Classification:
    """The classification table of ``settings`` (cached per file)."""
    path = getattr(settings, "classification_file", None) or DEFAULT_FILE
    return _load(Path(path))


@lru_cache(maxsize=4)
def apco_dispositions(standards_dir: Path) -> dict[str, str]:
    """APCO ANS 1.111.2 common disposition codes -> names, read from the standards folder."""
    path = Path(standards_dir) / APCO_FILE
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ConfigurationError(
            f"the APCO disposition list {path} is not readable ({exc.strerror}): set "
            "GEODISPATCH_STANDARDS_DIR to the folder of the official standards") from None
    codes: dict[str, str] = {}
    for n, row in enumerate(rows, 2):
        code, name = (row.get("code") or "").strip(), (row.get("name") or "").strip()
        if not _APCO_CODE.match(code) or not name:
            raise ConfigurationError(f"{path} line {n}: expected a two-digit code and a name")
        codes[code] = name
    if not codes:
        raise ConfigurationError(f"{path} holds no disposition codes")
    return codes


@dataclass(frozen=True)
class Disposition:
    """A closing disposition as chosen: the APCO code it is, and the local code it came from."""

    apco: str
    name: str
    local: str | None = None


@dataclass(frozen=True)
class Dispositions:
    """Everything an incident may close with: the APCO list and the local codes onto it."""

    apco: dict[str, str]
    local: dict[str, LocalDisposition]

    def resolve(self, code: str) -> Disposition:
        """The disposition ``code`` names (an APCO code or a local one), or InvalidInput with
        the accepted codes (also as ``accepted`` in the problem document)."""
        key = code.strip()
        if key in self.apco:
            return Disposition(apco=key, name=self.apco[key])
        loc = self.local.get(key.upper())
        if loc is not None:
            return Disposition(apco=loc.apco, name=self.apco[loc.apco], local=loc.code)
        listed = ", ".join(f"{c} (= {d.apco})" for c, d in self.local.items())
        raise InvalidInput(
            f"unknown disposition code {code!r}; accepted: the local codes {listed or '(none)'}"
            f" and the APCO ANS 1.111.2 common codes {min(self.apco)}-{max(self.apco)}"
        ).with_extra(accepted=self.as_list())

    def as_list(self) -> list[dict[str, object]]:
        """Local codes first (what the console offers), then every APCO code."""
        out: list[dict[str, object]] = [
            {"code": d.code, "apco": d.apco, "apco_name": self.apco[d.apco], "local": True,
             "label": d.label} for d in self.local.values()]
        out += [{"code": c, "apco": c, "apco_name": n, "local": False, "label": {"en": n}}
                for c, n in self.apco.items()]
        return out


def load_dispositions(settings: Settings | None = None) -> Dispositions:
    """The dispositions of ``settings``: the APCO list from its standards folder and the local
    codes of its classification file (ConfigurationError if a local code maps to no APCO code)."""
    settings = settings or get_settings()
    apco = apco_dispositions(Path(settings.standards_dir))
    local = load_classification(settings).local_dispositions
    wrong = [f"{d.code} -> {d.apco}" for d in local.values() if d.apco not in apco]
    if wrong:
        raise ConfigurationError(
            f"local dispositions map onto codes that are not APCO common codes: {', '.join(wrong)}")
    clash = [c for c in local if c in apco]
    if clash:
        raise ConfigurationError(f"local disposition codes {clash} are APCO codes themselves")
    return Dispositions(apco=apco, local=local)
