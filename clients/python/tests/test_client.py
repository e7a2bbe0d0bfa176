"""The blocking client against a running control plane."""

from __future__ import annotations

import grpc
import pytest

from backflow_client import (
    Client,
    InvalidArgumentError,
    RunFailedError,
    UnauthenticatedError,
    run_pb2,
    sync_pb2,
)


def test_creates_a_sync_triggers_it_and_follows_the_run_to_its_counts_and_rejected_rows(server, data):
    with Client(server.address, token=server.token) as bf:
        bf.create_connection(f"wh-{data.id}", "files", data.source_config)
        bf.create_connection(f"app-{data.id}", "sqlite", data.destination_config)
        created = bf.create_sync(
            f"scores-{data.id}",
            source=f"wh-{data.id}",
            query="SELECT id, name, score FROM scores",
            primary_key=["id"],
            destination=f"app-{data.id}",
            table="scores",
            mode="upsert",
        )
        assert created.name == f"syncs/scores-{data.id}"
        assert created.destination.mode == sync_pb2.SYNC_MODE_UPSERT

        pending = bf.trigger(f"scores-{data.id}")
        assert not pending.coalesced
        run = pending.wait(timeout=60)

        assert run.state == run_pb2.RUN_STATE_SUCCEEDED
        assert (run.counts.read, run.counts.added, run.counts.written, run.counts.failed) == (3, 3, 2, 1)
        assert run.rejected_rows == 1
        rejected = list(bf.rejected_rows(run.name))
        assert [(r.key, r.operation) for r in rejected] == [("id=2", "write")]
        assert "CHECK constraint failed" in rejected[0].message
        assert data.destination_rows() == [(1, "ada", 0.5), (3, "cy", 2.5)]
        assert [r.name for r in bf.list_runs(f"scores-{data.id}")] == [run.name]
        assert bf.get_run(run.name).counts == run.counts


def test_an_invalid_sync_raises_the_servers_field_violations(server, data):
    with Client(server.address, token=server.token) as bf:
        bf.create_connection(f"wh-{data.id}", "files", data.source_config)
        with pytest.raises(InvalidArgumentError) as raised:
            bf.create_sync(
                f"bad-{data.id}",
                source=f"wh-{data.id}",
                query=" ",
                primary_key=[],
                destination=f"wh-{data.id}",
                table="scores",
            )
    error = raised.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in error.field_violations]
    assert "sync.source.query" in fields
    assert "sync.primary_key" in fields
    assert error.violation("sync.primary_key").description == "must name at least one column"


def test_a_failed_run_raises_run_failed_error_with_the_run(server, data):
    with Client(server.address, token=server.token) as bf:
        bf.create_connection(f"wh-{data.id}", "files", data.source_config)
        bf.create_connection(f"app-{data.id}", "sqlite", data.destination_config)
        bf.create_sync(
            f"broken-{data.id}",
            source=f"wh-{data.id}",
            query="SELECT id, no_such_column FROM scores",
            primary_key=["id"],
            destination=f"app-{data.id}",
            table="scores",
            options=sync_pb2.SyncOptions(max_attempts=1),
        )
        with pytest.raises(RunFailedError) as raised:
            bf.trigger(f"broken-{data.id}").wait(timeout=60)
    run = raised.value.run
    assert run.state == run_pb2.RUN_STATE_FAILED
    assert run.error.code


def test_a_call_without_the_token_is_unauthenticated(server):
    with Client(server.address) as bf:
        with pytest.raises(UnauthenticatedError):
            list(bf.list_syncs())
