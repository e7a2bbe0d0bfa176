//! The connector documentation cannot drift from the connectors: the README's connector table
//! and each `docs/connectors/TYPE.md` config table are checked against the [`Connector`]
//! descriptions of this build (the same ones `ListConnectorTypes` serves):
//!
//! - the README lists exactly the registered types, with "yes" under source and destination
//!   exactly where the type plays that role;
//! - each type's page documents every config field (a parent object may be documented through
//!   its fields) and no field the config does not have; a required top-level field is
//!   documented as required; a secret field says how to write a reference; a default is
//!   stated.

use std::fs;
use std::path::{Path, PathBuf};

use backflow_connector_core::{config_fields, ConfigField, Connector, Role};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The cells of a Markdown table row, trimmed; `None` for a line that is not a row.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// Every `code span` in `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows of the first table after `## Config` on a connector page: (field paths, required
/// cell, meaning cell). Paths spell a map's entries `<name>`, as `*` here.
fn config_rows(page: &str) -> Vec<(Vec<String>, String, String)> {
    let section = page
        .split("\n## ")
        .find(|s| s.starts_with("Config"))
        .unwrap_or_default();
    section
        .lines()
        .filter_map(cells)
        .skip_while(|row| row.first().map(String::as_str) != Some("field"))
        .skip(2) // the header and its separator
        .take_while(|row| row.len() >= 3)
        .map(|row| {
            let paths = code_spans(&row[0])
                .into_iter()
                .map(|p| p.replace("<name>", "*"))
                .collect();
            (paths, row[1].clone(), row[2].clone())
        })
        .collect()
}

/// How a default reads in prose: strings bare, numbers and booleans as JSON.
fn spelled(default: &Value) -> String {
    match default {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_page(connector: &dyn Connector, problems: &mut Vec<String>) {
    let kind = connector.type_name();
    let path = repo_root().join(format!("docs/connectors/{kind}.md"));
    let Ok(page) = fs::read_to_string(&path) else {
        problems.push(format!("{kind}: no page {}", path.display()));
        return;
    };
    let rows = config_rows(&page);
    if rows.is_empty() {
        problems.push(format!(
            "{kind}: no `| field | required | meaning |` table under ## Config"
        ));
        return;
    }
    let fields: Vec<ConfigField> = config_fields(&connector.config_schema());
    let is_parent = |f: &ConfigField| {
        let prefix = format!("{}.", f.path);
        fields.iter().any(|g| g.path.starts_with(&prefix))
    };
    for (paths, _, _) in &rows {
        for p in paths {
            if !fields.iter().any(|f| &f.path == p) {
                problems.push(format!(
                    "{kind}: the page documents `{p}`, which the config lacks"
                ));
            }
        }
    }
    for f in &fields {
        let row = rows.iter().find(|(paths, _, _)| paths.contains(&f.path));
        let Some((_, required, meaning)) = row else {
            if !is_parent(f) {
                problems.push(format!("{kind}: `{}` is not documented", f.path));
            }
            continue;
        };
        if f.required && !f.path.contains('.') && !required.starts_with("yes") {
            problems.push(format!(
                "{kind}: `{}` is required, the page says {required:?}",
                f.path
            ));
        }
        if !f.required && required == "yes" {
            problems.push(format!(
                "{kind}: `{}` is optional, the page says yes",
                f.path
            ));
        }
        if f.secret && !meaning.contains("reference") {
            problems.push(format!(
                "{kind}: secret `{}` does not mention references",
                f.path
            ));
        }
        if let Some(default) = &f.default {
            if !meaning.contains(&spelled(default)) {
                problems.push(format!(
                    "{kind}: `{}` defaults to {default}, unstated",
                    f.path
                ));
            }
        }
    }
}

#[test]
fn each_connector_page_documents_exactly_its_config() {
    let mut problems = Vec::new();
    for connector in backflow_connectors::connectors() {
        check_page(*connector, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "connector docs drifted:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_readme_lists_each_type_with_its_roles() {
    let readme = fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter_map(cells)
        .skip_while(|row| row.first().map(String::as_str) != Some("type"))
        .skip(2)
        .take_while(|row| row.len() >= 3)
        .collect();
    let listed: Vec<String> = rows.iter().flat_map(|r| code_spans(&r[0])).collect();
    let registered: Vec<String> = backflow_connectors::connectors()
        .iter()
        .map(|c| c.type_name().to_owned())
        .collect();
    let mut sorted = (listed.clone(), registered.clone());
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(
        sorted.0, sorted.1,
        "the README's connector table and the registry differ"
    );
    for c in backflow_connectors::connectors() {
        let row = &rows[listed.iter().position(|t| t == c.type_name()).unwrap()];
        for (column, role) in [(1, Role::Source), (2, Role::Destination)] {
            assert_eq!(
                row[column].starts_with("yes"),
                c.roles().contains(&role),
                "README: `{}` as {}: {:?}",
                c.type_name(),
                role.as_str(),
                row[column]
            );
        }
    }
}

#[test]
fn the_table_parser_reads_paths_cells_and_spans() {
    let page = "# X\n\n## Config\n\n| field | required | meaning |\n|---|---|---|\n\
                | `a`, `b.<name>.c` | yes | default `7` |\n\n## Reading\n| field | x | y |\n";
    let rows = config_rows(page);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, ["a", "b.*.c"]);
    assert_eq!(rows[0].1, "yes");
    assert!(rows[0].2.contains(&spelled(&serde_json::json!(7))));
}
