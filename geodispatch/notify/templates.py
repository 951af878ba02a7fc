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
        "assigned.no_eta": "Поліція 102 ({reference}): до вас прямує екіпаж {call_sign}.",
        "closed": "Поліція 102: виклик {reference} закрито. Дякуємо.",
        "cancelled": "Поліція 102: виклик {reference} скасовано. Якщо допомога потрібна, "
                     "телефонуйте 102.",
        "merged": "Поліція 102: ваш виклик {reference} об'єднано з викликом {master_reference} "
                  "про ту саму подію; ми вже працюємо.",
        "missed_call": "Поліція 102: ми пропустили ваш дзвінок; ми вам передзвонимо.",
    },
    "en": {
        "registered": "Police 102: your call is registered, reference {reference}.",
        "assigned": "Police 102 ({reference}): crew {call_sign} is on the way, "
                    "about {eta_min} min.",
        "arrived": "Police 102 ({reference}): crew {call_sign} has arrived.",
        "assigned.no_eta": "Police 102 ({reference}): crew {call_sign} is on the way.",
        "closed": "Police 102: call {reference} is closed. Thank you.",
        "cancelled": "Police 102: call {reference} is cancelled. If you still need help, "
                     "call 102.",
        "merged": "Police 102: your call {reference} is joined to call {master_reference} about "
                  "the same incident; we are already on it.",
        "missed_call": "Police 102: we missed your call; we will call you back.",
    },
}


def render(template: str, lang: str, **fields: Any) -> tuple[str, str]:
    """The text and the language actually used.

    A field the text needs and the caller did not give is an error, never a placeholder: an
    "assigned" message without ``eta_min`` (a crew without an ETA) is the variant without one.
    """
    use = lang if lang in TEMPLATES else "en"
    key = template
    if template == "assigned" and fields.get("eta_min") in (None, "", "?"):
        key = "assigned.no_eta"
    try:
        pattern = TEMPLATES[use][key]
    except KeyError:
        raise InvalidInput(f"unknown SMS template {template!r}") from None
    try:
        return pattern.format(**{"reference": "", **fields}), use
    except KeyError as exc:
        raise InvalidInput(f"SMS template {template!r} needs {exc.args[0]!r}") from None
