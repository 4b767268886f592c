//! `results/<run-id>/`: results.json (the stable contract in shared/results.schema.json)
//! and results.csv (one row per case, stable column names). Both are rewritten after
//! every case, atomically (temporary file, then rename), so nothing finished is lost.

mod churn;
mod csv_file;
mod schema;

use std::path::{Path, PathBuf};

pub use churn::*;
pub use csv_file::CSV_COLUMNS;
pub use schema::*;

/// Errors writing or reading result files; every one names its path.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a kpbench results file: {message}")]
    Format { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory
/// (`.<name>.tmp-XXXXXX`), fsync, then rename over the target. Every error names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        // As `File::create` would: readable by all, less the umask (tempfile's default
        // is owner-only).
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

impl Results {
    /// Writes results.json and results.csv into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ResultsError> {
        let json = serde_json::to_vec_pretty(self).expect("results serialize");
        write_atomic(&dir.join("results.json"), &json)?;
        write_atomic(&dir.join("results.csv"), self.to_csv().as_bytes())
    }

    /// Reads a results.json (or the one inside a directory).
    pub fn read(path: &Path) -> Result<Results, ResultsError> {
        // A run directory, or the file itself (anything not ending in .json is taken
        // as a directory, so a missing run names the file it looked for).
        let file =
            if path.is_dir() || (!path.exists() && path.extension().is_none_or(|e| e != "json")) {
                path.join("results.json")
            } else {
                path.to_path_buf()
            };
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        let r: Results = serde_json::from_slice(&bytes).map_err(|e| ResultsError::Format {
            path: file.clone(),
            message: e.to_string(),
        })?;
        if r.schema_version != SCHEMA_VERSION {
            return Err(ResultsError::Format {
                path: file,
                message: format!(
                    "schema_version {:?}, expected {SCHEMA_VERSION:?}",
                    r.schema_version
                ),
            });
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        Results {
            schema_version: SCHEMA_VERSION.into(),
            run: RunInfo {
                id: "t".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: "2026-01-01T00:00:01Z".into(),
                tool_version: "0".into(),
                git_rev: None,
                git_dirty: None,
                scenario: ScenarioInfo {
                    name: "q".into(),
                    file: None,
                    resolved: serde_json::json!({}),
                },
                incomplete: None,
            },
            environments: vec![],
            cases: vec![Case {
                environment: "host".into(),
                mode: "iptables".into(),
                ipvs_scheduler: None,
                profile: None,
                kube_proxy_version: None,
                services: 10,
                endpoints_per_service: 2,
                status: Status::Skipped,
                reason: Some("needs \"x\", y".into()),
                rules: None,
                sync: None,
                datapath: None,
                churn: None,
                churn_sweep: vec![],
                notes: vec![],
                elapsed_s: None,
                programmed_by: None,
                sync_over_limit_s: None,
            }],
        }
    }

    #[test]
    fn csv_has_stable_columns_and_quotes_reasons() {
        let csv = sample().to_csv();
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("host,iptables,,10,2,skipped,\"needs \"\"x\"\", y\""),
            "{row}"
        );
    }

    #[test]
    fn write_then_read_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let r = sample();
        r.write(dir.path()).unwrap();
        assert_eq!(Results::read(dir.path()).unwrap(), r);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn atomic_writes_get_the_mode_a_plain_create_would() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let atomic = dir.path().join("atomic");
        write_atomic(&atomic, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
        assert_eq!(std::fs::read(&atomic).unwrap(), b"x");
    }

    #[test]
    fn a_failed_atomic_write_names_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the final rename fails.
        let target = dir.path().join("results.json");
        std::fs::create_dir(&target).unwrap();
        let err = write_atomic(&target, b"x").unwrap_err().to_string();
        assert!(err.starts_with(&target.display().to_string()), "{err}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["results.json"]);
    }

    #[test]
    fn reading_a_missing_file_names_the_path() {
        let err = Results::read(Path::new("/nonexistent/kpbench"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/kpbench/results.json"), "{err}");
    }
}
