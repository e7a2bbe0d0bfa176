"""Building backflow.v1 requests from plain Python values, shared by the sync and asyncio
clients so both accept exactly the same arguments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping, Optional, Sequence, Union, cast
from urllib.parse import urlsplit

from google.protobuf import struct_pb2

from backflow.v1 import connection_pb2, run_pb2, sync_pb2

#: A sync mode by name (`"upsert"`, `"insert"`, `"update"`, `"mirror"`) or enum value.
Mode = Union[str, sync_pb2.SyncMode]

#: States after which a run never changes again.
FINAL_STATES = frozenset(
    {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}
)


def target(address: str) -> "tuple[str, bool]":
    """`host:port` and whether to use TLS, from `host:port`, `http://…` or `https://…`."""
    if "://" not in address:
        return address, False
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"`{address}` is not host:port or an http(s):// URL")
    return parts.netloc, parts.scheme == "https"


def resource(collection: str, name: str) -> str:
    """`collection/{id}` from a bare id or an already full resource name."""
    return name if name.startswith(collection + "/") else f"{collection}/{name}"


def connection(type: str, config: Mapping[str, Any]) -> connection_pb2.Connection:
    """A connection of connector `type` with its config (secrets as `${env:NAME}` references)."""
    struct = struct_pb2.Struct()
    struct.update(config)
    return connection_pb2.Connection(type=type, config=struct)


def _mode(mode: Mode) -> sync_pb2.SyncMode:
    if isinstance(mode, str):
        return cast(sync_pb2.SyncMode, sync_pb2.SyncMode.Value("SYNC_MODE_" + mode.upper()))
    return mode


def sync(
    *,
    source: str,
    query: str,
    primary_key: Sequence[str],
    destination: str,
    table: str,
    mode: Mode = "upsert",
    create_table: bool = False,
    mappings: Optional[Mapping[str, str]] = None,
    every: Optional[timedelta] = None,
    cron: Optional[str] = None,
    after_sync: Optional[str] = None,
    options: Optional[sync_pb2.SyncOptions] = None,
) -> sync_pb2.Sync:
    """A sync definition; see `Client.create_sync`."""
    schedule = None
    if every is not None:
        schedule = sync_pb2.Schedule()
        schedule.every.FromTimedelta(every)
    elif cron is not None:
        schedule = sync_pb2.Schedule(cron=cron)
    elif after_sync is not None:
        schedule = sync_pb2.Schedule(after_sync=after_sync)
    return sync_pb2.Sync(
        source=sync_pb2.SyncSource(connection=source, query=query),
        primary_key=list(primary_key),
        destination=sync_pb2.SyncDestination(
            connection=destination, object=table, mode=_mode(mode), create_table=create_table
        ),
        mappings=[sync_pb2.Mapping(**{"from": f, "to": t}) for f, t in (mappings or {}).items()],
        schedule=schedule,
        options=options,
    )
