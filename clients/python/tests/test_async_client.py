"""The asyncio client against a running control plane."""

from __future__ import annotations

import asyncio

import pytest

from backflow_client import AsyncClient, InvalidArgumentError, run_pb2


def test_creates_a_sync_triggers_it_and_awaits_the_run(server, data):
    async def scenario():
        async with AsyncClient(server.address, token=server.token) as bf:
            await bf.create_connection(f"wh-{data.id}", "files", data.source_config)
            await bf.create_connection(f"app-{data.id}", "sqlite", data.destination_config)
            await bf.create_sync(
                f"scores-{data.id}",
                source=f"wh-{data.id}",
                query="SELECT id, name, score FROM scores",
                primary_key=["id"],
                destination=f"app-{data.id}",
                table="scores",
            )
            pending = await bf.trigger(f"scores-{data.id}")
            assert pending.run.state == run_pb2.RUN_STATE_QUEUED and not pending.coalesced
            run = await pending.wait(timeout=60)
            rejected = [r async for r in bf.rejected_rows(run.name)]
            # Only the rejected row is retried: the others are unchanged since the snapshot.
            again = await bf.trigger(f"scores-{data.id}").wait(timeout=60)
            return run, rejected, again

    run, rejected, again = asyncio.run(scenario())
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED
    assert (run.counts.read, run.counts.written, run.counts.failed) == (3, 2, 1)
    assert [r.key for r in rejected] == ["id=2"]
    assert data.destination_rows() == [(1, "ada", 0.5), (3, "cy", 2.5)]
    assert (again.counts.unchanged, again.counts.failed, again.counts.written) == (2, 1, 0)


def test_an_invalid_connection_raises_the_servers_field_violation(server, data):
    async def scenario():
        async with AsyncClient(server.address, token=server.token) as bf:
            await bf.create_connection(f"app-{data.id}", "sqlite", {"path": ""})

    with pytest.raises(InvalidArgumentError) as raised:
        asyncio.run(scenario())
    assert [v.field for v in raised.value.field_violations] == ["connection.config.path"]
