"""Python client for Backflow's backflow.v1 gRPC API.

    from backflow_client import Client

    with Client("127.0.0.1:7070", token="...") as bf:
        run = bf.trigger("customer_scores").wait()
        print(run.counts.written, run.rejected_rows)

`Client` blocks; `AsyncClient` is the same API for asyncio. Messages are the generated
`backflow.v1` protobuf classes, re-exported here as `connection_pb2`, `sync_pb2` and `run_pb2`.
"""

from backflow.v1 import connection_pb2, run_pb2, sync_pb2

from ._aio import AsyncClient, AsyncPendingRun
from ._client import Client, PendingRun
from ._errors import (
    AlreadyExistsError,
    BackflowError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    RunFailedError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AsyncPendingRun",
    "BackflowError",
    "Client",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PendingRun",
    "RunFailedError",
    "UnauthenticatedError",
    "UnavailableError",
    "connection_pb2",
    "run_pb2",
    "sync_pb2",
]
