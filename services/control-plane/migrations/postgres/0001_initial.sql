-- The control plane's state on PostgreSQL (shared by every control-plane replica).
-- Times are milliseconds since the Unix epoch taken from the control plane's clock; JSON
-- columns are TEXT; booleans are BOOLEAN.

CREATE TABLE connections (
    id         TEXT    NOT NULL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

CREATE TABLE syncs (
    id                     TEXT    NOT NULL PRIMARY KEY,
    definition             TEXT    NOT NULL,
    -- Denormalised from the definition so "which syncs use this connection" is a query and
    -- the database refuses to drop a connection in use.
    source_connection      TEXT    NOT NULL REFERENCES connections (id),
    destination_connection TEXT    NOT NULL REFERENCES connections (id),
    paused                 BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    last_run_id            TEXT,
    snapshot_path          TEXT,
    snapshot_rows          BIGINT,
    next_schedule_at       BIGINT
);

CREATE INDEX syncs_source_connection ON syncs (source_connection);
CREATE INDEX syncs_destination_connection ON syncs (destination_connection);
CREATE INDEX syncs_next_schedule_at ON syncs (next_schedule_at) WHERE next_schedule_at IS NOT NULL;

CREATE TABLE runs (
    id               TEXT    NOT NULL PRIMARY KEY,
    sync_id          TEXT    NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    state            TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    trigger_kind     TEXT    NOT NULL,
    attempt          BIGINT  NOT NULL,
    max_attempts     BIGINT  NOT NULL,
    full_resync      BOOLEAN NOT NULL,
    counts           TEXT    NOT NULL,
    timings          TEXT,
    error            TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_count   BIGINT  NOT NULL DEFAULT 0,
    request_id       TEXT,
    traceparent      TEXT,
    created_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    ended_at         BIGINT,
    not_before       BIGINT  NOT NULL,
    lease_id         TEXT,
    lease_deadline   BIGINT,
    worker_id        TEXT,
    UNIQUE (sync_id, request_id)
);

-- The database itself guarantees that a sync never has two active runs.
CREATE UNIQUE INDEX runs_one_active_per_sync ON runs (sync_id) WHERE state IN ('queued', 'running');
CREATE INDEX runs_lease_order ON runs (state, not_before, id);
CREATE INDEX runs_by_sync ON runs (sync_id, id);
CREATE INDEX runs_lease_deadline ON runs (state, lease_deadline);

CREATE TABLE rejected_rows (
    run_id      TEXT   NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    key         TEXT   NOT NULL,
    column_name TEXT,
    message     TEXT   NOT NULL,
    operation   TEXT   NOT NULL,
    PRIMARY KEY (run_id, seq)
);
