"""SMS texts to the caller, per language (Ukrainian and English; others fall back to English)."""

from __future__ import annotations

from typing import Any

from geodispatch.errors import InvalidInput

TEMPLATES: dict[str, dict[str, str]] = {
    "uk": {
        "registered": "Поліція 102: ваш виклик зареєстровано, номер {reference}.",
        "assigned": "Поліція 102 ({reference}): до вас прямує екіпаж {call_sign}, "
                    "орієнтовно {eta_min} хв.",
        "arrived": "Поліція 102 ({reference}): екіпаж {call_sign} прибув на місце.",
        "closed": "Поліція 102: виклик {reference} закрито. Дякуємо.",
        "missed_call": "Поліція 102: ми пропустили ваш дзвінок; ми вам передзвонимо.",
    },
    "en": {
        "registered": "Police 102: your call is registered, reference {reference}.",
        "assigned": "Police 102 ({reference}): crew {call_sign} is on the way, "
                    "about {eta_min} min.",
        "arrived": "Police 102 ({reference}): crew {call_sign} has arrived.",
        "closed": "Police 102: call {reference} is closed. Thank you.",
        "missed_call": "Police 102: we missed your call; we will call you back.",
    },
}


def render(template: str, lang: str, **fields: Any) -> tuple[str, str]:
    """The text and the language actually used."""
    use = lang if lang in TEMPLATES else "en"
    try:
        pattern = TEMPLATES[use][template]
    except KeyError:
        raise InvalidInput(f"unknown SMS template {template!r}") from None
    defaults = {"call_sign": "", "eta_min": "?", "reference": ""}
    return pattern.format(**{**defaults, **fields}), use
