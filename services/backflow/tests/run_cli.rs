//! `backflow run` end to end: the real binary, a definition file, Parquet files and a SQLite
//! database, with state kept between invocations.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn backflow(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_backflow"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the backflow binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DEFINITIONS: &str = r#"
connections:
  - name: warehouse
    type: files
    config: { tables: { customers: ./warehouse/customers.parquet } }
  - name: app_db
    type: sqlite
    config: { path: ./app.db }
syncs:
  - name: customer_scores
    source: { connection: warehouse, query: "SELECT customer_id, plan, churn_risk FROM customers" }
    primary_key: [customer_id]
    destination: { connection: app_db, table: customer_scores, mode: mirror, create_table: true }
    mappings: [ { from: churn_risk, to: churn_risk_score } ]
"#;

fn counts(stdout: &str) -> Value {
    let outcomes: Value = serde_json::from_str(stdout).expect("JSON output");
    assert_eq!(outcomes[0]["sync"], "customer_scores");
    assert!(outcomes[0]["error"].is_null(), "{stdout}");
    outcomes[0]["counts"].clone()
}

#[test]
fn runs_a_definition_file_and_keeps_state_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("backflow.yaml"), DEFINITIONS).unwrap();
    let data = |revision: &str| {
        let (ok, _, err) = backflow(
            dir.path(),
            &[
                "demo-data",
                "--customers",
                "2000",
                "--revision",
                revision,
                "--out",
                "warehouse/customers.parquet",
            ],
        );
        assert!(ok, "{err}");
    };
    let run = || {
        backflow(
            dir.path(),
            &["run", "-f", "backflow.yaml", "--output", "json"],
        )
    };

    data("1");
    let (ok, out, err) = run();
    assert!(ok, "{err}");
    let c = counts(&out);
    assert_eq!(
        (c["read"].as_u64(), c["written"].as_u64()),
        (Some(2000), Some(2000))
    );

    // Revision 2 rescores every 100th customer: exactly those rows move.
    data("2");
    let (ok, out, err) = run();
    assert!(ok, "{err}");
    let c = counts(&out);
    assert_eq!(
        (c["changed"].as_u64(), c["written"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(c["unchanged"].as_u64(), Some(1980));

    let state = std::fs::read_to_string(dir.path().join(".backflow/state.json")).unwrap();
    assert!(state.contains("customer_scores"), "{state}");
}

#[test]
fn a_bad_definition_file_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("backflow.yaml"),
        DEFINITIONS.replace("primary_key:", "primary_keys:"),
    )
    .unwrap();
    let (ok, _, err) = backflow(dir.path(), &["run", "-f", "backflow.yaml"]);
    assert!(!ok);
    assert!(err.contains("primary_keys"), "{err}");
    assert!(err.contains("line 12"), "{err}");
}

#[test]
fn a_failing_sync_exits_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("backflow.yaml"), DEFINITIONS).unwrap();
    // No warehouse file: the source cannot be read.
    let (ok, out, err) = backflow(dir.path(), &["run", "-f", "backflow.yaml"]);
    assert!(!ok);
    assert!(
        out.contains("customer_scores") && out.contains("failed"),
        "{out}"
    );
    assert!(out.contains("customers.parquet"), "{out}");
    assert!(err.contains("1 of 1 syncs failed"), "{err}");
}
