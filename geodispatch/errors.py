"""Domain errors. They know nothing about HTTP; ``geodispatch.api.errors`` maps them to statuses."""

from __future__ import annotations

from typing import Any, Self


class GeodispatchError(Exception):
    """Base of every error the domain raises on purpose.

    ``extra`` holds JSON members the API adds to the problem document beside ``detail`` (the
    accepted values of a field, say), set with :meth:`with_extra`.
    """

    extra: dict[str, Any] = {}

    def with_extra(self, **members: Any) -> Self:
        """This error, carrying ``members`` into the problem document."""
        self.extra = {**self.extra, **members}
        return self


class NotFound(GeodispatchError):
    """The named object does not exist (or is outside the caller's region)."""


class Conflict(GeodispatchError):
    """The request contradicts the current state (wrong lifecycle step, duplicate key...)."""


class InvalidInput(GeodispatchError):
    """The input is well-formed but not acceptable (impossible coordinates, unknown category...)."""


class PermissionDenied(GeodispatchError):
    """The actor's role or region does not allow this."""


class Unauthenticated(GeodispatchError):
    """No valid credentials were presented."""


class ConfigurationError(GeodispatchError):
    """The environment is not usable; the message says what is wrong and how to fix it."""
