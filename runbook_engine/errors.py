"""The project's one error hierarchy.

Every error says whether retrying can help (``retryable``) and, for user input, where the mistake
is (``Location``: file, line, column) and how to fix it (``hint``). Lower layers raise these; only
the CLI turns them into messages and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A position in a user's file; line and column are 1-based as editors show them."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"


class RunbookError(Exception):
    """Base of every error this project raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class UserInputError(RunbookError):
    """A mistake in a playbook, role, inventory, scenario or command line; nothing was applied."""

    def __init__(self, message: str, location: Location | None = None, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        tail = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}{self.message}{tail}"


class UserInputErrors(UserInputError):
    """Several user-input errors found in one pass, reported together."""

    def __init__(self, errors: list[UserInputError]) -> None:
        first = errors[0]
        super().__init__(first.message, first.location, hint=first.hint)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class ClusterError(RunbookError):
    """The cluster's API refused or failed a request."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class TransientClusterError(ClusterError):
    """A fault that may pass (5xx, 429, timeouts, connection resets): safe to retry with backoff."""

    retryable = True

    def __init__(
        self, message: str, *, status: int = 0, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class NotFoundError(ClusterError):
    """The object or kind does not exist."""


class ConflictError(ClusterError):
    """A resourceVersion or server-side-apply field conflict (HTTP 409)."""


class InvalidObjectError(ClusterError):
    """The API server rejected an object as invalid (HTTP 422)."""


class RunStateError(RunbookError):
    """A run cannot be resumed, rolled back or started in its current state."""
