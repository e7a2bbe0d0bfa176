"""The scenario every Backflow client runs: a PostgreSQL source mirrored into PostgreSQL, the
counts of a first and an incremental run, NOT_FOUND and INVALID_ARGUMENT as typed errors, and
concurrent triggers coalescing into the active run. Needs the PostgreSQL server of
`scripts/services.sh start` (BACKFLOW_TEST_POSTGRES_URL); fails without it."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from backflow_client import Client, InvalidArgumentError, NotFoundError, run_pb2

ROWS = 20_000


def _psql_binary() -> str:
    found = shutil.which("psql") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"), reverse=True)), None
    )
    if found is None:
        pytest.fail("psql is missing: run scripts/services.sh start, which installs PostgreSQL")
    return found


class Postgres:
    """SQL through psql against the test server."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.binary = _psql_binary()

    def run(self, sql: str) -> str:
        done = subprocess.run(
            [self.binary, self.url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql failed on {sql!r}: {done.stderr}")
        return done.stdout.strip()

    def digest(self, table: str) -> str:
        """A checksum of every row, in key order."""
        return self.run(
            f"SELECT count(*) || ' ' || md5(string_agg(id || ':' || name || ':' || score, ',' ORDER BY id)) FROM {table}"
        )


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    url = os.environ.get("BACKFLOW_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "BACKFLOW_TEST_POSTGRES_URL is not set: run scripts/services.sh start and "
            'eval "$(scripts/services.sh env)"'
        )
    yield Postgres(url)


def test_a_postgres_mirror_counts_changes_types_errors_and_coalesces_triggers(server, postgres):
    id = uuid.uuid4().hex[:10]
    source, destination, sync = f"py_src_{id}", f"py_dst_{id}", f"pg-mirror-{id}"
    postgres.run(
        f"CREATE TABLE {source} (id bigint PRIMARY KEY, name text NOT NULL, score int NOT NULL);"
        f"INSERT INTO {source} SELECT g, 'name ' || g, g % 97 FROM generate_series(1, {ROWS}) g"
    )
    try:
        with Client(server.address, token=server.token) as bf:
            bf.create_connection(f"pg-src-{id}", "postgres", {"url": postgres.url})
            bf.create_connection(f"pg-dst-{id}", "postgres", {"url": postgres.url})
            bf.create_sync(
                sync,
                source=f"pg-src-{id}",
                query=f"SELECT id, name, score FROM {source}",
                primary_key=["id"],
                destination=f"pg-dst-{id}",
                table=destination,
                mode="mirror",
                create_table=True,
            )

            first = bf.trigger(sync).wait(timeout=120)
            assert (first.counts.added, first.counts.changed, first.counts.removed) == (ROWS, 0, 0)
            assert postgres.digest(destination) == postgres.digest(source)

            postgres.run(
                f"UPDATE {source} SET score = score + 1000 WHERE id <= 100;"
                f"DELETE FROM {source} WHERE id > {ROWS - 50};"
                f"INSERT INTO {source} SELECT g, 'new ' || g, 1 FROM generate_series({ROWS + 1}, {ROWS + 50}) g"
            )
            second = bf.trigger(sync).wait(timeout=120)
            assert (second.counts.added, second.counts.changed, second.counts.removed) == (50, 100, 50)
            assert postgres.digest(destination) == postgres.digest(source)

            with pytest.raises(NotFoundError):
                bf.get_sync(f"no-such-sync-{id}")
            # A refused trigger raises from trigger() itself, before any wait().
            with pytest.raises(NotFoundError):
                bf.trigger(f"no-such-sync-{id}")
            with pytest.raises(InvalidArgumentError) as invalid:
                bf.create_sync(
                    f"no-key-{id}",
                    source=f"pg-src-{id}",
                    query=f"SELECT id FROM {source}",
                    primary_key=[],
                    destination=f"pg-dst-{id}",
                    table=f"{destination}_b",
                )
            assert "sync.primary_key" in [v.field for v in invalid.value.field_violations]

            with ThreadPoolExecutor(max_workers=10) as pool:
                pending = list(pool.map(lambda _: bf.trigger(sync), range(10)))
            runs = {p.name for p in pending}
            assert len(runs) < 10, "ten concurrent triggers of one sync queued ten runs"
            assert sum(not p.coalesced for p in pending) == len(runs)
            finished = [p.wait(timeout=120) for p in pending]
            assert all(r.state == run_pb2.RUN_STATE_SUCCEEDED for r in finished)
            # Nothing changed since the second run.
            assert {(r.counts.added, r.counts.changed, r.counts.removed) for r in finished} == {(0, 0, 0)}
            assert postgres.digest(destination) == postgres.digest(source)
    finally:
        postgres.run(f"DROP TABLE IF EXISTS {source}; DROP TABLE IF EXISTS {destination}")
