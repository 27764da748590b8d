//! The append-only audit log: one JSON object per line.
//!
//! Every load, publish, rollback and refusal is written (and flushed to the
//! file system with `fsync`) *before* it takes effect, so nothing serves
//! that the log does not show; if the record cannot be written the action
//! is not taken. Fields: `time` (RFC 3339, UTC, ms), `unix_ms`, `action`
//! (`load`, `publish`, `rollback`), `outcome` (`ok`, `refused`), `model`,
//! `version`, `sha256`, `from_version` (the version serving before),
//! `step` and `error` (for refusals), `actor`. If writing `CURRENT` fails
//! after an `ok` record, a `refused` record for the same action follows it
//! (step `publish`) and nothing changes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

/// One audit record.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditEvent<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    pub model: &'a str,
    pub version: Option<u64>,
    pub sha256: Option<&'a str>,
    pub from_version: Option<u64>,
    pub step: Option<&'a str>,
    pub error: Option<String>,
    pub actor: &'a str,
}

/// The log file, shared by one registry.
#[derive(Debug)]
pub(crate) struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record and make it durable.
    pub fn record(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let unix_ms = now.as_millis() as u64;
        let mut obj = Map::new();
        obj.insert("time".into(), json!(rfc3339(unix_ms)));
        obj.insert("unix_ms".into(), json!(unix_ms));
        obj.insert("action".into(), json!(event.action));
        obj.insert("outcome".into(), json!(event.outcome));
        obj.insert("model".into(), json!(event.model));
        let optional = [
            ("version", event.version.map(Value::from)),
            ("sha256", event.sha256.map(Value::from)),
            ("from_version", event.from_version.map(Value::from)),
            ("step", event.step.map(Value::from)),
            ("error", event.error.clone().map(Value::from)),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                obj.insert(k.into(), v);
            }
        }
        obj.insert("actor".into(), json!(event.actor));
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        let mut file = self.file.lock();
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }
}

/// `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day) 12:34:56.789
        assert_eq!(rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_796_428_800_000), "2026-12-05T00:00:00.000Z");
    }
}
