"""A `backflow standalone` server for the whole test session, and per-test source and
destination files.

The server listens on a free loopback port (it binds port 0 and prints the address) and
requires an API token, so every test also exercises the client's authentication."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from backflow_client import BackflowError, Client

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "client-test-token"
LISTENING = re.compile(r"listening on (https?://\S+)")


@dataclass
class Server:
    address: str
    token: str


@dataclass
class Fixture:
    """One test's data: a CSV source with three rows and a SQLite destination whose CHECK
    constraint refuses the row with id 2."""

    id: str
    source_config: dict
    destination_config: dict
    database: Path

    def destination_rows(self) -> list:
        with sqlite3.connect(self.database) as db:
            return db.execute("SELECT id, name, score FROM scores ORDER BY id").fetchall()


def backflow_bin() -> Path:
    explicit = os.environ.get("BACKFLOW_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "backflow"


@contextmanager
def standalone(directory: Path, env: Mapping[str, str] = {}) -> Iterator[str]:
    """Runs `backflow standalone` with its data in `directory` and `env` added to ours, and
    yields the address it prints (`http://…`, or `https://…` when `env` configures TLS)."""
    binary = backflow_bin()
    if not binary.is_file():
        pytest.fail(
            f"the backflow binary is missing at {binary}: build it with "
            "`cargo build -p backflow --bin backflow` or set BACKFLOW_BIN"
        )
    log_path = directory / "standalone.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary), "standalone", "--listen", "127.0.0.1:0", "--data-dir", str(directory / "state")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, **env),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            match = LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"backflow standalone did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "BACKFLOW__CONTROL_PLANE__API_TOKENS": TOKEN,
        "BACKFLOW__CONTROL_PLANE__WORKER_TOKEN": "client-test-worker-token",
    }
    with standalone(tmp_path_factory.mktemp("standalone"), env) as address:
        with Client(address, token=TOKEN) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    list(client.list_syncs())
                    break
                except BackflowError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        yield Server(address, TOKEN)


@pytest.fixture
def data(tmp_path: Path) -> Fixture:
    csv = tmp_path / "scores.csv"
    csv.write_text("id,name,score\n1,ada,0.5\n2,bob,-1.0\n3,cy,2.5\n")
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TABLE scores (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " score REAL CHECK (score >= 0))"
        )
    return Fixture(
        id=uuid.uuid4().hex[:12],
        source_config={"tables": {"scores": str(csv)}},
        destination_config={"path": str(database)},
        database=database,
    )
