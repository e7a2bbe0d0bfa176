//! End-to-end tests live in `tests/`; this crate has no library code.
//!
//! They start real `backflow` processes (control planes, workers, `standalone`, CLI verbs)
//! built from this workspace, against the PostgreSQL server of `scripts/services.sh start`
//! (`BACKFLOW_TEST_POSTGRES_URL`, default
//! `postgres://backflow:backflow@127.0.0.1:55432/backflow`). Each test makes its own
//! databases (`bf_e2e_<time>_<random>_…`), dropped when it passes.
//!
//! - `tests/cluster.rs`: many syncs on several workers, workers and control planes killed or
//!   stopped mid-run, two replicas on one store, scheduler failover, cancellation, leases.
//! - `tests/api.rs`: idempotent and coalesced triggers, schedules, validation errors naming
//!   the field, authentication, the CLI flow, retries, rejected rows, definition changes.
//!
//! The binary is `target/<profile>/backflow` next to the test executable (or `$BACKFLOW_BIN`).
//! `cargo test --workspace` builds it; with `cargo test -p backflow-integration-tests`, build
//! it first with `cargo build -p backflow`: the tests refuse a binary older than the sources.
//!
//! `BACKFLOW_E2E_KEEP=1` keeps each test's directory (process logs, snapshots); a failing
//! test prints the tail of every process log and keeps its databases.
