"""Domain failures shared by every app.

Services raise these; ``bursar.api.exception_handler`` and ``bursar.views.domain_error_response``
turn them into responses, so no view decides a status code for a business rule.
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule refused the operation. ``field`` names the input at fault."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, object]:
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message, "code": self.code}


class InvalidInput(DomainError):
    code = "invalid"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"
