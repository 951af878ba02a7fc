"""Phone numbers: the one rule for what a caller's number is (E.164), shared by intake, calls
and the SMS outbox. A base module: it imports no domain."""

from __future__ import annotations

import phonenumbers

from geodispatch.errors import InvalidInput


def normalise_phone(phone: str, region: str | None = None) -> str:
    """The number in E.164, or InvalidInput.

    A number without ``+`` is read as a national number of ``region`` (an ISO country code such
    as ``UA``); without a region it must carry its country code.
    """
    raw = phone.strip()
    if not raw.startswith("+") and not region:
        raise InvalidInput(f"caller phone {phone[:32]!r} is not E.164 "
                           "(start with + and country code)")
    try:
        parsed = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"caller phone {phone[:32]!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"caller phone {phone[:32]!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(phone: str | None) -> bool:
    """Whether ``phone`` is a valid number already in E.164 (one an SMS can go to)."""
    if not phone:
        return False
    try:
        return normalise_phone(phone) == phone
    except InvalidInput:
        return False
