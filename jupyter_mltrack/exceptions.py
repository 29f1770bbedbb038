"""Exceptions: one root (``MlflowException``, also ``MLTrackError``) with MLflow's error codes.

Code written for MLflow catches ``MlflowException`` and reads ``error_code``; both port as-is.
"""

from __future__ import annotations

INTERNAL_ERROR = "INTERNAL_ERROR"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
INVALID_STATE = "INVALID_STATE"
BAD_REQUEST = "BAD_REQUEST"

_HTTP_STATUS = {
    INVALID_PARAMETER_VALUE: 400,
    BAD_REQUEST: 400,
    INVALID_STATE: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    RESOURCE_ALREADY_EXISTS: 400,
    INTERNAL_ERROR: 500,
}


class MlflowException(Exception):
    """Root of every error jupyter_mltrack raises on purpose."""

    default_error_code = INTERNAL_ERROR

    def __init__(self, message: str, error_code: str | None = None, **kwargs: object) -> None:
        super().__init__(message)
        self.message = str(message)
        self.error_code = error_code or self.default_error_code
        self.json_kwargs = kwargs

    def get_http_status_code(self) -> int:
        """The HTTP status MLflow's server would answer with for this error."""
        return _HTTP_STATUS.get(self.error_code, 500)

    def serialize_as_json(self) -> str:
        """The error as MLflow's REST error body."""
        import json

        return json.dumps({"error_code": self.error_code, "message": self.message})


MLTrackError = MlflowException


class InvalidParameterValue(MlflowException):
    """A value given by the caller is not acceptable (name, metric value, argument)."""

    default_error_code = INVALID_PARAMETER_VALUE


class ResourceDoesNotExist(MlflowException):
    """An experiment, run, artifact or model named by the caller does not exist."""

    default_error_code = RESOURCE_DOES_NOT_EXIST


class ResourceAlreadyExists(MlflowException):
    """Something with that name or key already exists and may not be replaced."""

    default_error_code = RESOURCE_ALREADY_EXISTS


class InvalidState(MlflowException):
    """The operation does not fit the current state (a deleted run, an active run...)."""

    default_error_code = INVALID_STATE

    @classmethod
    def deleted_run(cls, run_id: str) -> InvalidState:
        """Logging to a soft-deleted run (every store words it the same way)."""
        return cls(
            f"Run {run_id!r} is deleted; nothing can be logged to it. Restore it with "
            "MlflowClient().restore_run(run_id) first."
        )


class InvalidModelError(InvalidParameterValue):
    """A path or URI that does not hold a model this version can load."""


class FilterSyntaxError(InvalidParameterValue):
    """A search filter or order-by clause could not be parsed."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        if position is not None and text:
            pointer = " " * position + "^"
            message = f"{message} (at position {position})\n  {text}\n  {pointer}"
        super().__init__(message)
        self.position = position
        self.text = text


class StoreError(MlflowException):
    """The store cannot be opened: unreadable, foreign, or written by a newer version."""

    default_error_code = INVALID_STATE


class PromotionRefused(InvalidState):
    """A promotion's validation gate did not pass; nothing was promoted."""

    def __init__(self, message: str, result: dict | None = None) -> None:
        super().__init__(message)
        self.result = result or {}
