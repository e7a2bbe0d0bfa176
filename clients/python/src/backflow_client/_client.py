"""The blocking client."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any, Iterator, Mapping, Optional, Sequence, TypeVar

import grpc

from backflow.v1 import (
    connection_pb2,
    connection_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
)

from . import _channel, _messages
from ._errors import BackflowError, RunFailedError, from_rpc_error

T = TypeVar("T")

#: Pause before watching a run again after the control plane was unreachable.
_REWATCH_BACKOFF = (0.2, 5.0)


def _call(method: Any, request: Any, timeout: Optional[float] = None) -> Any:
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


def _pages(method: Any, request: Any, items: str) -> Iterator[Any]:
    while True:
        response = _call(method, request)
        yield from getattr(response, items)
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


class PendingRun:
    """A run that TriggerSync queued (or an active one it coalesced with)."""

    def __init__(self, client: "Client", run: run_pb2.Run, coalesced: bool) -> None:
        self._client = client
        #: The run as TriggerSync returned it.
        self.run = run
        #: True when the sync already had a queued or running run, which this is.
        self.coalesced = coalesced

    @property
    def name(self) -> str:
        """The run's resource name, `runs/{run_id}`."""
        return self.run.name

    def wait(self, timeout: Optional[float] = None, check: bool = True) -> run_pb2.Run:
        """Follows the run (WatchRun) until it ends and returns it in its final state.

        Raises `RunFailedError` when it failed or was cancelled (unless `check` is False) and
        `TimeoutError` when it has not ended after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self.run
        backoff = _REWATCH_BACKOFF[0]
        while run.state not in _messages.FINAL_STATES:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"run {run.name} has not ended after {timeout} s")
            try:
                for run in self._client.watch_run(run.name, timeout=remaining):
                    backoff = _REWATCH_BACKOFF[0]
                    if run.state in _messages.FINAL_STATES:
                        break
            except BackflowError as e:
                if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError(f"run {run.name} has not ended after {timeout} s") from None
                if e.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, _REWATCH_BACKOFF[1])
        self.run = run
        if check and run.state != run_pb2.RUN_STATE_SUCCEEDED:
            raise RunFailedError(run)
        return run


class Client:
    """A blocking client of the Backflow API.

    `address` is `host:port`, `http://host:port` or `https://host:port`; `token` is sent as
    `authorization: Bearer TOKEN`. Use it as a context manager, or call `close()`.
    The generated stubs are at `connections`, `syncs` and `runs` for anything not wrapped here.
    """

    def __init__(
        self,
        address: str,
        token: Optional[str] = None,
        *,
        root_certificates: Optional[bytes] = None,
    ) -> None:
        host, tls = _messages.target(address)
        creds = _channel.credentials(tls, root_certificates)
        if creds is None:
            channel = grpc.insecure_channel(host, options=_channel.OPTIONS)
        else:
            channel = grpc.secure_channel(host, creds, options=_channel.OPTIONS)
        self._channel = channel
        if token:
            channel = grpc.intercept_channel(channel, _channel.TokenInterceptor(token))
        self.connections = connection_pb2_grpc.ConnectionServiceStub(channel)
        self.syncs = sync_pb2_grpc.SyncServiceStub(channel)
        self.runs = run_pb2_grpc.RunServiceStub(channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Connections

    def create_connection(
        self, connection_id: str, type: str, config: Mapping[str, Any]
    ) -> connection_pb2.Connection:
        """Adds a connection of connector `type`; secrets in `config` as `${env:NAME}` references."""
        request = connection_pb2.CreateConnectionRequest(
            connection_id=connection_id, connection=_messages.connection(type, config)
        )
        return _call(self.connections.CreateConnection, request).connection

    def get_connection(self, name: str) -> connection_pb2.Connection:
        """One connection, by id or `connections/{id}`."""
        request = connection_pb2.GetConnectionRequest(name=_messages.resource("connections", name))
        return _call(self.connections.GetConnection, request).connection

    def list_connections(self) -> Iterator[connection_pb2.Connection]:
        """Every connection, in name order, fetched page by page."""
        return _pages(
            self.connections.ListConnections, connection_pb2.ListConnectionsRequest(), "connections"
        )

    def delete_connection(self, name: str) -> None:
        """Deletes a connection that no sync uses."""
        request = connection_pb2.DeleteConnectionRequest(name=_messages.resource("connections", name))
        _call(self.connections.DeleteConnection, request)

    def test_connection(self, name: str) -> connection_pb2.TestConnectionResponse:
        """Runs the connector's checks: config, reachability, credentials."""
        request = connection_pb2.TestConnectionRequest(name=_messages.resource("connections", name))
        return _call(self.connections.TestConnection, request)

    # Syncs

    def create_sync(
        self,
        sync_id: str,
        *,
        source: str,
        query: str,
        primary_key: Sequence[str],
        destination: str,
        table: str,
        mode: _messages.Mode = "upsert",
        create_table: bool = False,
        mappings: Optional[Mapping[str, str]] = None,
        every: Optional[timedelta] = None,
        cron: Optional[str] = None,
        after_sync: Optional[str] = None,
        options: Optional[sync_pb2.SyncOptions] = None,
    ) -> sync_pb2.Sync:
        """Adds a sync copying `query` on connection `source` into `table` (or collection) on
        connection `destination`, keyed by `primary_key`. `mappings` renames query columns;
        at most one of `every`, `cron` and `after_sync` schedules it (none: triggered only).
        An invalid definition raises `InvalidArgumentError` listing every wrong field."""
        definition = _messages.sync(
            source=source,
            query=query,
            primary_key=primary_key,
            destination=destination,
            table=table,
            mode=mode,
            create_table=create_table,
            mappings=mappings,
            every=every,
            cron=cron,
            after_sync=after_sync,
            options=options,
        )
        request = sync_pb2.CreateSyncRequest(sync_id=sync_id, sync=definition)
        return _call(self.syncs.CreateSync, request).sync

    def get_sync(self, name: str) -> sync_pb2.Sync:
        """One sync, by id or `syncs/{id}`."""
        request = sync_pb2.GetSyncRequest(name=_messages.resource("syncs", name))
        return _call(self.syncs.GetSync, request).sync

    def list_syncs(self) -> Iterator[sync_pb2.Sync]:
        """Every sync, in name order, fetched page by page."""
        return _pages(self.syncs.ListSyncs, sync_pb2.ListSyncsRequest(), "syncs")

    def delete_sync(self, name: str) -> None:
        """Deletes a sync and its run history."""
        _call(self.syncs.DeleteSync, sync_pb2.DeleteSyncRequest(name=_messages.resource("syncs", name)))

    def pause_sync(self, name: str) -> sync_pb2.Sync:
        """Stops the scheduler from starting runs of the sync; triggers are refused."""
        request = sync_pb2.PauseSyncRequest(name=_messages.resource("syncs", name))
        return _call(self.syncs.PauseSync, request).sync

    def resume_sync(self, name: str) -> sync_pb2.Sync:
        """Undoes `pause_sync`."""
        request = sync_pb2.ResumeSyncRequest(name=_messages.resource("syncs", name))
        return _call(self.syncs.ResumeSync, request).sync

    def plan(self, name: str, sample_size: int = 0) -> sync_pb2.PlanSyncResponse:
        """What a run would change now, writing nothing."""
        request = sync_pb2.PlanSyncRequest(
            name=_messages.resource("syncs", name), sample_size=sample_size
        )
        return _call(self.syncs.PlanSync, request)

    def trigger(
        self, name: str, *, full_resync: bool = False, request_id: str = ""
    ) -> PendingRun:
        """Queues a run of the sync now; `.wait()` on the result follows it to its end.
        Raises at once when the trigger is refused (`NotFoundError` for an unknown sync), as
        the Rust, Go and TypeScript clients do. The same `request_id` returns the run it created
        the first time; without one a random id is sent, so gRPC's retry of a call whose answer
        was lost never queues a second run."""
        request = sync_pb2.TriggerSyncRequest(
            name=_messages.resource("syncs", name),
            full_resync=full_resync,
            request_id=request_id or str(uuid.uuid4()),
        )
        response = _call(self.syncs.TriggerSync, request)
        return PendingRun(self, response.run, response.coalesced)

    # Runs

    def get_run(self, name: str) -> run_pb2.Run:
        """One run, by id or `runs/{id}`."""
        request = run_pb2.GetRunRequest(name=_messages.resource("runs", name))
        return _call(self.runs.GetRun, request).run

    def list_runs(
        self, sync: str = "", state: run_pb2.RunState = run_pb2.RUN_STATE_UNSPECIFIED
    ) -> Iterator[run_pb2.Run]:
        """Runs newest first, optionally of one sync and in one state, fetched page by page."""
        request = run_pb2.ListRunsRequest(
            sync=_messages.resource("syncs", sync) if sync else "", state=state
        )
        return _pages(self.runs.ListRuns, request, "runs")

    def watch_run(self, name: str, timeout: Optional[float] = None) -> Iterator[run_pb2.Run]:
        """The run each time its state or counts change, until it ends."""
        call = self.runs.WatchRun(
            run_pb2.WatchRunRequest(name=_messages.resource("runs", name)), timeout=timeout
        )
        try:
            for response in call:
                yield response.run
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def cancel_run(self, name: str) -> run_pb2.Run:
        """Cancels a queued run, or asks the worker of a running one to stop."""
        request = run_pb2.CancelRunRequest(name=_messages.resource("runs", name))
        return _call(self.runs.CancelRun, request).run

    def rejected_rows(self, run: str) -> Iterator[run_pb2.RejectedRow]:
        """The rows the destination refused in a run, fetched page by page."""
        request = run_pb2.ListRejectedRowsRequest(run=_messages.resource("runs", run))
        return _pages(self.runs.ListRejectedRows, request, "rejected_rows")
