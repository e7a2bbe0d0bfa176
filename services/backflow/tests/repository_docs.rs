//! The repository's documentation stays self-contained and navigable:
//!
//! - no text file in the repository points at documents that live outside it (the old design
//!   notes, or a sibling directory of the clone);
//! - every relative link in `README.md` and `docs/**/*.md` resolves to a file inside the
//!   repository (anchors are not checked, only the file they are on);
//! - `README.md` stays short (at most [`README_MAX_LINES`] lines); the details live in `docs/`.
//!
//! Plain `std`, no server: it walks the source tree once and reads only small text files.

use std::fs;
use std::path::{Path, PathBuf};

/// The README is the front page; everything longer belongs in `docs/`.
const README_MAX_LINES: usize = 250;

/// Strings no file may contain. Built with `concat!` so that this file, which is scanned like
/// every other, does not contain them itself.
const FORBIDDEN: [&str; 2] = [concat!("DESIGN", ".md"), concat!("..", "/shared")];

/// Directories never scanned: version control, build output, installed dependencies and other
/// generated or local-state directories that are not part of the repository's sources.
const SKIPPED_DIRS: [&str; 9] = [
    ".git",
    "target",
    "node_modules",
    "dist",
    "__pycache__",
    ".venv",
    "venv",
    ".pytest_cache",
    ".backflow",
];

/// Files larger than this are data, not documentation or source; they are skipped.
const MAX_SCANNED_BYTES: u64 = 4 << 20;

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("cannot resolve the repository root {}: {e}", root.display()))
}

fn skipped_dir(name: &str) -> bool {
    SKIPPED_DIRS.contains(&name) || name.ends_with(".egg-info")
}

/// Every regular file under `dir`, skipping [`SKIPPED_DIRS`] and never following symlinks.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            if !skipped_dir(&entry.file_name().to_string_lossy()) {
                walk(&path, files);
            }
        } else if kind.is_file() {
            files.push(path);
        }
    }
}

/// The file's bytes when it is a text file: not too large, and without NUL bytes.
fn text_of(path: &Path) -> Option<Vec<u8>> {
    let size = fs::metadata(path).ok()?.len();
    if size > MAX_SCANNED_BYTES {
        return None;
    }
    // A file removed between listing and reading (another process's temporary file) is skipped.
    let bytes = fs::read(path).ok()?;
    (!bytes.contains(&0)).then_some(bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn no_file_points_outside_the_repository() {
    let root = repo_root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "the walk found no README.md under {}",
        root.display()
    );
    let mut offenders = Vec::new();
    for file in &files {
        let Some(text) = text_of(file) else { continue };
        for needle in FORBIDDEN {
            if contains(&text, needle) {
                offenders.push(format!("{} mentions {needle}", relative(&root, file)));
            }
        }
    }
    offenders.sort();
    assert!(
        offenders.is_empty(),
        "files refer to documents outside the repository (point at docs/ instead):\n  {}",
        offenders.join("\n  ")
    );
}

/// `README.md` and every `.md` file under `docs/`.
fn markdown_pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    let docs = root.join("docs");
    if docs.is_dir() {
        let mut files = Vec::new();
        walk(&docs, &mut files);
        files.retain(|f| f.extension().is_some_and(|e| e == "md"));
        files.sort();
        pages.extend(files);
    }
    pages
}

/// `text` without its inline code spans, so `` `[a](b)` `` is not read as a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the markdown links of `text`, with their 1-based line: inline links
/// `[text](target)` / `[text](target "title")` / `[text](<target>)`, and reference
/// definitions `[label]: target`. Fenced code blocks are skipped.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut in_fence = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = raw_line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let line = without_code_spans(raw_line);
        // Reference definitions: `[label]: target`.
        let stripped = line.trim_start();
        if stripped.starts_with('[') {
            if let Some(end) = stripped.find("]:") {
                let target = stripped[end + 2..].split_whitespace().next().unwrap_or("");
                if !target.is_empty() {
                    targets.push((line_number, target.to_string()));
                }
            }
        }
        // Inline links: `](target)`.
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let inner = after[..end].trim();
            let target = if let Some(angled) = inner.strip_prefix('<') {
                angled.split('>').next().unwrap_or("")
            } else {
                inner.split_whitespace().next().unwrap_or("")
            };
            if !target.is_empty() {
                targets.push((line_number, target.to_string()));
            }
            rest = &after[end + 1..];
        }
    }
    targets
}

/// Whether a link target leaves the repository's files alone: a URL, a mail address, or an
/// anchor on the same page.
fn is_external_or_anchor(target: &str) -> bool {
    target.starts_with('#') || target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn relative_links_in_the_docs_resolve() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0usize;
    for page in markdown_pages(&root) {
        let text = fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", page.display()));
        let dir = page.parent().expect("a page is in a directory");
        for (line, target) in link_targets(&text) {
            if is_external_or_anchor(&target) {
                continue;
            }
            checked += 1;
            let path = target.split(['#', '?']).next().unwrap_or("");
            let resolved = if let Some(from_root) = path.strip_prefix('/') {
                root.join(from_root)
            } else {
                dir.join(path)
            };
            let inside = resolved
                .canonicalize()
                .ok()
                .filter(|p| p.is_file() && p.starts_with(&root));
            if inside.is_none() {
                broken.push(format!("{}:{line}: ({target})", relative(&root, &page)));
            }
        }
    }
    assert!(
        checked > 0,
        "no relative link found: is the link parser broken?"
    );
    assert!(
        broken.is_empty(),
        "links that do not resolve to a file inside the repository:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn readme_stays_short() {
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md exists");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move details into docs/ and link them"
    );
}

#[test]
fn the_link_parser_finds_what_markdown_renders() {
    let text = "\
See [a](docs/a.md), [b](../b.md#part \"title\") and [c](<with space.md>).
`[not](a-link.md)` and [web](https://example.com)
```
[in](a-fence.md)
```
[ref]: docs/ref.md
";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        [
            "docs/a.md",
            "../b.md#part",
            "with space.md",
            "https://example.com",
            "docs/ref.md"
        ]
    );
    assert!(is_external_or_anchor("https://example.com"));
    assert!(is_external_or_anchor("#concepts"));
    assert!(!is_external_or_anchor("docs/a.md"));
}
