"""The asyncio client: the same calls as `Client`, as coroutines and async iterators."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any, AsyncGenerator, AsyncIterator, Generator, Mapping, Optional, Sequence

import grpc
import grpc.aio

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

_REWATCH_BACKOFF = (0.2, 5.0)


async def _call(method: Any, request: Any, timeout: Optional[float] = None) -> Any:
    try:
        return await method(request, timeout=timeout)
    except grpc.RpcError as e:
        raise from_rpc_error(e) from None


async def _pages(method: Any, request: Any, items: str) -> AsyncIterator[Any]:
    while True:
        response = await _call(method, request)
        for item in getattr(response, items):
            yield item
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


class AsyncPendingRun:
    """A run of `AsyncClient.trigger`: `await` it for the queued run (TriggerSync is called
    once, on first use), or `await (...).wait()` to follow the run to its end."""

    def __init__(self, client: "AsyncClient", request: sync_pb2.TriggerSyncRequest) -> None:
        self._client = client
        self._request = request
        self._triggered: Optional["asyncio.Future[None]"] = None
        #: The run as TriggerSync returned it (once awaited), later as `wait` last saw it.
        self.run = run_pb2.Run()
        #: True when the sync already had a queued or running run, which this is.
        self.coalesced = False

    @property
    def name(self) -> str:
        """The run's resource name, `runs/{run_id}` (once awaited)."""
        return self.run.name

    async def _trigger(self) -> None:
        response = await _call(self._client.syncs.TriggerSync, self._request)
        self.run = response.run
        self.coalesced = response.coalesced

    async def _queued(self) -> "AsyncPendingRun":
        if self._triggered is None:
            self._triggered = asyncio.ensure_future(self._trigger())
        await self._triggered
        return self

    def __await__(self) -> Generator[Any, None, "AsyncPendingRun"]:
        return self._queued().__await__()

    async def wait(self, timeout: Optional[float] = None, check: bool = True) -> run_pb2.Run:
        """Triggers the run if not yet done, follows it (WatchRun) until it ends and returns it
        in its final state.

        Raises `RunFailedError` when it failed or was cancelled (unless `check` is False) and
        `TimeoutError` when it has not ended after `timeout` seconds.
        """
        await self._queued()
        try:
            run = await asyncio.wait_for(self._follow(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"run {self.run.name} has not ended after {timeout} s") from None
        self.run = run
        if check and run.state != run_pb2.RUN_STATE_SUCCEEDED:
            raise RunFailedError(run)
        return run

    async def _follow(self) -> run_pb2.Run:
        run = self.run
        backoff = _REWATCH_BACKOFF[0]
        while run.state not in _messages.FINAL_STATES:
            updates = self._client.watch_run(run.name)
            try:
                async for run in updates:
                    backoff = _REWATCH_BACKOFF[0]
                    if run.state in _messages.FINAL_STATES:
                        break
            except BackflowError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _REWATCH_BACKOFF[1])
            finally:
                await updates.aclose()
        return run


class AsyncClient:
    """An asyncio client of the Backflow API; see `Client` for the arguments.

    Use it as an async context manager, or `await close()`. Create it inside the event loop
    that uses it.
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
        interceptors = (
            [_channel.AioUnaryTokenInterceptor(token), _channel.AioStreamTokenInterceptor(token)]
            if token
            else None
        )
        if creds is None:
            channel = grpc.aio.insecure_channel(
                host, options=_channel.OPTIONS, interceptors=interceptors
            )
        else:
            channel = grpc.aio.secure_channel(
                host, creds, options=_channel.OPTIONS, interceptors=interceptors
            )
        self._channel = channel
        self.connections = connection_pb2_grpc.ConnectionServiceStub(channel)
        self.syncs = sync_pb2_grpc.SyncServiceStub(channel)
        self.runs = run_pb2_grpc.RunServiceStub(channel)

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Connections

    async def create_connection(
        self, connection_id: str, type: str, config: Mapping[str, Any]
    ) -> connection_pb2.Connection:
        """Adds a connection of connector `type`; secrets in `config` as `${env:NAME}` references."""
        request = connection_pb2.CreateConnectionRequest(
            connection_id=connection_id, connection=_messages.connection(type, config)
        )
        return (await _call(self.connections.CreateConnection, request)).connection

    async def get_connection(self, name: str) -> connection_pb2.Connection:
        """One connection, by id or `connections/{id}`."""
        request = connection_pb2.GetConnectionRequest(name=_messages.resource("connections", name))
        return (await _call(self.connections.GetConnection, request)).connection

    def list_connections(self) -> AsyncIterator[connection_pb2.Connection]:
        """Every connection, in name order, fetched page by page."""
        return _pages(
            self.connections.ListConnections, connection_pb2.ListConnectionsRequest(), "connections"
        )

    async def delete_connection(self, name: str) -> None:
        """Deletes a connection that no sync uses."""
        request = connection_pb2.DeleteConnectionRequest(name=_messages.resource("connections", name))
        await _call(self.connections.DeleteConnection, request)

    async def test_connection(self, name: str) -> connection_pb2.TestConnectionResponse:
        """Runs the connector's checks: config, reachability, credentials."""
        request = connection_pb2.TestConnectionRequest(name=_messages.resource("connections", name))
        return await _call(self.connections.TestConnection, request)

    # Syncs

    async def create_sync(
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
        """Adds a sync; see `Client.create_sync`."""
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
        return (await _call(self.syncs.CreateSync, request)).sync

    async def get_sync(self, name: str) -> sync_pb2.Sync:
        """One sync, by id or `syncs/{id}`."""
        request = sync_pb2.GetSyncRequest(name=_messages.resource("syncs", name))
        return (await _call(self.syncs.GetSync, request)).sync

    def list_syncs(self) -> AsyncIterator[sync_pb2.Sync]:
        """Every sync, in name order, fetched page by page."""
        return _pages(self.syncs.ListSyncs, sync_pb2.ListSyncsRequest(), "syncs")

    async def delete_sync(self, name: str) -> None:
        """Deletes a sync and its run history."""
        request = sync_pb2.DeleteSyncRequest(name=_messages.resource("syncs", name))
        await _call(self.syncs.DeleteSync, request)

    async def pause_sync(self, name: str) -> sync_pb2.Sync:
        """Stops the scheduler from starting runs of the sync; triggers are refused."""
        request = sync_pb2.PauseSyncRequest(name=_messages.resource("syncs", name))
        return (await _call(self.syncs.PauseSync, request)).sync

    async def resume_sync(self, name: str) -> sync_pb2.Sync:
        """Undoes `pause_sync`."""
        request = sync_pb2.ResumeSyncRequest(name=_messages.resource("syncs", name))
        return (await _call(self.syncs.ResumeSync, request)).sync

    async def plan(self, name: str, sample_size: int = 0) -> sync_pb2.PlanSyncResponse:
        """What a run would change now, writing nothing."""
        request = sync_pb2.PlanSyncRequest(
            name=_messages.resource("syncs", name), sample_size=sample_size
        )
        return await _call(self.syncs.PlanSync, request)

    def trigger(
        self, name: str, *, full_resync: bool = False, request_id: str = ""
    ) -> AsyncPendingRun:
        """Queues a run of the sync now: `await bf.trigger(name)` returns it as queued (raising
        when the trigger is refused, such as `NotFoundError` for an unknown sync), and
        `await bf.trigger(name).wait()` follows it to its end. The same `request_id` returns
        the run it created the first time; without one a random id is sent, so gRPC's retry of
        a call whose answer was lost never queues a second run."""
        request = sync_pb2.TriggerSyncRequest(
            name=_messages.resource("syncs", name),
            full_resync=full_resync,
            request_id=request_id or str(uuid.uuid4()),
        )
        return AsyncPendingRun(self, request)

    # Runs

    async def get_run(self, name: str) -> run_pb2.Run:
        """One run, by id or `runs/{id}`."""
        request = run_pb2.GetRunRequest(name=_messages.resource("runs", name))
        return (await _call(self.runs.GetRun, request)).run

    def list_runs(
        self, sync: str = "", state: run_pb2.RunState = run_pb2.RUN_STATE_UNSPECIFIED
    ) -> AsyncIterator[run_pb2.Run]:
        """Runs newest first, optionally of one sync and in one state, fetched page by page."""
        request = run_pb2.ListRunsRequest(
            sync=_messages.resource("syncs", sync) if sync else "", state=state
        )
        return _pages(self.runs.ListRuns, request, "runs")

    async def watch_run(self, name: str) -> AsyncGenerator[run_pb2.Run, None]:
        """The run each time its state or counts change, until it ends."""
        call = self.runs.WatchRun(run_pb2.WatchRunRequest(name=_messages.resource("runs", name)))
        try:
            async for response in call:
                yield response.run
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    async def cancel_run(self, name: str) -> run_pb2.Run:
        """Cancels a queued run, or asks the worker of a running one to stop."""
        request = run_pb2.CancelRunRequest(name=_messages.resource("runs", name))
        return (await _call(self.runs.CancelRun, request)).run

    def rejected_rows(self, run: str) -> AsyncIterator[run_pb2.RejectedRow]:
        """The rows the destination refused in a run, fetched page by page."""
        request = run_pb2.ListRejectedRowsRequest(run=_messages.resource("runs", run))
        return _pages(self.runs.ListRejectedRows, request, "rejected_rows")
