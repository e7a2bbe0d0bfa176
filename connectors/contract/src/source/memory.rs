//! Peak-memory measurement for the memory case: a child process per measurement, its peak
//! RSS reset through `/proc/self/clear_refs` and read from `/proc/self/status`.

use std::path::Path;

/// The variable that tells the probe test it runs as the memory case's child, and where to
/// write its [`MemoryReport`].
const PROBE_ENV: &str = "BACKFLOW_SOURCE_CONTRACT_MEMORY_PROBE";

/// The variable that tells the probe how many times `large_result_rows` to read.
const SCALE_ENV: &str = "BACKFLOW_SOURCE_CONTRACT_MEMORY_SCALE";

/// Whether this process is the memory case's child (the probe test does nothing otherwise).
pub fn memory_probe_requested() -> bool {
    std::env::var_os(PROBE_ENV).is_some()
}

/// What the memory probe measured while reading the large result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Rows read.
    pub rows: u64,
    /// The result's Arrow size in bytes (see `SeriesSpec::arrow_bytes`).
    pub arrow_bytes: u64,
    /// Resident memory when the read started, in bytes.
    pub baseline_bytes: u64,
    /// Peak resident memory during the read, in bytes.
    pub peak_bytes: u64,
    /// Milliseconds the read took.
    pub millis: u64,
}

impl MemoryReport {
    /// How much the peak exceeded the memory held when the read started.
    pub fn growth_bytes(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.baseline_bytes)
    }

    fn to_json(self) -> String {
        serde_json::json!({
            "rows": self.rows,
            "arrow_bytes": self.arrow_bytes,
            "baseline_bytes": self.baseline_bytes,
            "peak_bytes": self.peak_bytes,
            "millis": self.millis,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let n = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("report field {k} missing in {text}"))
        };
        Ok(Self {
            rows: n("rows")?,
            arrow_bytes: n("arrow_bytes")?,
            baseline_bytes: n("baseline_bytes")?,
            peak_bytes: n("peak_bytes")?,
            millis: n("millis")?,
        })
    }
}

/// A line of `/proc/self/status` (`VmRSS`, `VmHWM`) in bytes.
pub(crate) fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("the memory case needs Linux /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

/// Resets the peak RSS (`VmHWM`) to the current RSS and returns it.
pub(crate) fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("the memory case resets the peak RSS through /proc/self/clear_refs");
    status_bytes("VmHWM")
}

/// In the child: how many times `large_result_rows` to read (1 unless the parent said).
pub(crate) fn requested_scale() -> u64 {
    std::env::var(SCALE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// In the child: writes the report where the parent asked.
pub(crate) fn write_report(report: MemoryReport) {
    let path = std::env::var_os(PROBE_ENV).expect("probe runs only when requested");
    std::fs::write(&path, report.to_json()).expect("write the memory report");
}

/// In the parent: runs this test binary again with only `probe` (an ignored test at
/// `module_path`, the caller's `module_path!()`) reading `scale` times the large result, and
/// returns what it reported.
pub(crate) async fn run_child(module_path: &str, probe: &str, scale: u64) -> MemoryReport {
    let filter = match module_path.split_once("::") {
        Some((_, inner)) => format!("{inner}::{probe}"),
        None => probe.to_string(),
    };
    let dir = std::env::temp_dir();
    let report_path = dir.join(crate::unique_name("backflow_memory_probe"));
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = report_path.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                filter.as_str(),
                "--exact",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(PROBE_ENV, &path)
            .env(SCALE_ENV, scale.to_string())
            .output()
    })
    .await
    .expect("child runner")
    .expect("run the test binary as the memory probe");
    let report = read_report(&report_path);
    let _ = std::fs::remove_file(&report_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the memory probe failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    report.unwrap_or_else(|e| {
        panic!("the memory probe wrote no report ({e}); did it run?\n{stdout}\n{stderr}")
    })
}

fn read_report(path: &Path) -> Result<MemoryReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    MemoryReport::from_json(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_resets_the_peak() {
        let rss = status_bytes("VmRSS");
        assert!(rss > 0);
        let peak = reset_peak();
        assert!(peak > 0);
        let report = MemoryReport {
            rows: 1,
            arrow_bytes: 2,
            baseline_bytes: 3,
            peak_bytes: 5,
            millis: 6,
        };
        assert_eq!(MemoryReport::from_json(&report.to_json()).unwrap(), report);
        assert_eq!(report.growth_bytes(), 2);
    }
}
