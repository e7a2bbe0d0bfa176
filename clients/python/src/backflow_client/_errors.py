"""Errors of the Backflow client: one class per gRPC status code the API uses, each carrying the
server's field violations (google.rpc.BadRequest in `grpc-status-details-bin`) when it sent any,
so a caller can point at the wrong field of its definition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import grpc
from google.rpc import error_details_pb2, status_pb2

from backflow.v1 import run_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One wrong field of a request, named by its path (`sync.primary_key`)."""

    field: str
    description: str


class BackflowError(Exception):
    """A failed call to the Backflow API."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations: Tuple[FieldViolation, ...] = tuple(field_violations)

    def violation(self, field: str) -> Optional[FieldViolation]:
        """The violation of `field`, if the server reported one."""
        return next((v for v in self.field_violations if v.field == field), None)


class InvalidArgumentError(BackflowError):
    """The request is malformed; `field_violations` lists every wrong field."""


class NotFoundError(BackflowError):
    """The named connection, sync or run does not exist."""


class AlreadyExistsError(BackflowError):
    """A connection or sync with that id exists already."""


class FailedPreconditionError(BackflowError):
    """The call is not allowed now (a paused sync, a connection still in use)."""


class UnauthenticatedError(BackflowError):
    """The token is missing or not accepted."""


class UnavailableError(BackflowError):
    """The control plane or its store cannot be reached; the call may be retried."""


class RunFailedError(Exception):
    """A run waited for ended in a state other than succeeded (failed or cancelled)."""

    def __init__(self, run: run_pb2.Run) -> None:
        state = run_pb2.RunState.Name(run.state)
        detail = f": {run.error.code}: {run.error.message}" if run.HasField("error") else ""
        super().__init__(f"run {run.name} ended {state}{detail}")
        self.run = run


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def _field_violations(trailing_metadata: Optional[Iterable[Any]]) -> Tuple[FieldViolation, ...]:
    # Blocking calls give (key, value) named tuples, asyncio ones plain tuples.
    for key, value in trailing_metadata or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        violations: List[FieldViolation] = []
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
        return tuple(violations)
    return ()


def from_rpc_error(error: grpc.RpcError) -> BackflowError:
    """The typed error for a failed call (sync `grpc.RpcError` or asyncio `AioRpcError`)."""
    code = error.code()
    cls = _BY_CODE.get(code, BackflowError)
    return cls(code, error.details() or "", _field_violations(error.trailing_metadata()))
