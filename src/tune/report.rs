//! The result of one check and the two renderings of a report: a table for people
//! and JSON for scripts (`--json`).

use serde::Serialize;

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    /// Could not tell (file missing, not applicable); `note` says why.
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable name, e.g. `cpu.governor`; tuning/README.md lists them.
    pub check: &'static str,
    pub status: Status,
    pub current: String,
    pub recommended: String,
    /// The command or tuning/ script that fixes it, when one exists.
    pub fix: Option<String>,
    /// Why it matters, or why the status is unknown.
    pub note: String,
}

impl Finding {
    pub fn ok(check: &'static str, current: impl Into<String>, recommended: &str) -> Self {
        Finding {
            check,
            status: Status::Ok,
            current: current.into(),
            recommended: recommended.to_string(),
            fix: None,
            note: String::new(),
        }
    }

    pub fn warn(check: &'static str, current: impl Into<String>, recommended: &str) -> Self {
        Finding {
            status: Status::Warn,
            ..Finding::ok(check, current, recommended)
        }
    }

    pub fn unknown(check: &'static str, recommended: &str, reason: impl Into<String>) -> Self {
        Finding {
            status: Status::Unknown,
            note: reason.into(),
            ..Finding::ok(check, "?", recommended)
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Sets why it matters, keeping an unknown's reason if there is one.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        if self.note.is_empty() {
            self.note = note.into();
        }
        self
    }
}

/// What the checks were run against.
#[derive(Serialize, Debug, Clone)]
pub struct Context {
    pub root: String,
    pub cores: String,
    pub nic: Option<String>,
    pub data_dir: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub unknown: usize,
}

#[derive(Serialize, Debug, Clone)]
pub struct Report {
    pub context: Context,
    pub summary: Summary,
    pub checks: Vec<Finding>,
}

impl Report {
    pub fn new(context: Context, checks: Vec<Finding>) -> Self {
        let count = |s| checks.iter().filter(|f| f.status == s).count();
        let summary = Summary {
            ok: count(Status::Ok),
            warn: count(Status::Warn),
            unknown: count(Status::Unknown),
        };
        Report {
            context,
            summary,
            checks,
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// One row per check; warn and unknown rows get their fix and reason underneath.
    pub fn to_table(&self) -> String {
        let c = &self.context;
        let mut out = format!(
            "shard cores: {}   nic: {}   data dir: {}\n\n",
            c.cores,
            c.nic.as_deref().unwrap_or("?"),
            c.data_dir
        );
        let width = |f: fn(&Finding) -> &str, min: usize| {
            self.checks
                .iter()
                .map(|x| f(x).chars().count().min(COLUMN_CHARS_MAX))
                .fold(min, usize::max)
        };
        let wc = width(|f| f.check, 5);
        let wv = width(|f| &f.current, 7);
        out += &format!(
            "{:<8} {:<wc$}  {:<wv$}  RECOMMENDED\n",
            "STATUS", "CHECK", "CURRENT"
        );
        for f in &self.checks {
            let current = clip(&f.current);
            out += &format!(
                "{:<8} {:<wc$}  {current:<wv$}  {}\n",
                f.status.label(),
                f.check,
                f.recommended
            );
            if f.status != Status::Ok {
                if !f.note.is_empty() {
                    out += &format!("{:8}   {}\n", "", f.note);
                }
                if let Some(fix) = &f.fix {
                    out += &format!("{:8}   fix: {fix}\n", "");
                }
            }
        }
        let s = &self.summary;
        out += &format!(
            "\n{} ok, {} to change, {} unknown. Scripts and guide: tuning/README.md\n",
            s.ok, s.warn, s.unknown
        );
        out
    }
}

/// Widest CURRENT/CHECK column; longer values are clipped in the table (JSON has all).
const COLUMN_CHARS_MAX: usize = 36;

fn clip(s: &str) -> String {
    if s.chars().count() <= COLUMN_CHARS_MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(COLUMN_CHARS_MAX - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let ctx = Context {
            root: "/".into(),
            cores: "0-3".into(),
            nic: Some("eth0".into()),
            data_dir: "./data".into(),
        };
        Report::new(
            ctx,
            vec![
                Finding::ok("a.ok", "performance", "performance"),
                Finding::warn("b.warn", "always", "madvise or never")
                    .fix("tuning/thp.sh madvise")
                    .note("compaction stalls"),
                Finding::unknown("c.unknown", "x", "no such file"),
            ],
        )
    }

    #[test]
    fn table_shows_fix_under_a_warning() {
        let t = report().to_table();
        assert!(t.contains("WARN"), "{t}");
        assert!(t.contains("fix: tuning/thp.sh madvise"), "{t}");
        assert!(t.contains("no such file"), "{t}");
        assert!(t.contains("1 ok, 1 to change, 1 unknown"), "{t}");
    }

    #[test]
    fn json_carries_status_and_fix() {
        let json = report().to_json().expect("json");
        let v: serde_json::Value = serde_json::from_str(&json).expect("parse");
        assert_eq!(v["checks"][1]["status"], "warn");
        assert_eq!(v["checks"][1]["fix"], "tuning/thp.sh madvise");
        assert_eq!(v["checks"][2]["fix"], serde_json::Value::Null);
        assert_eq!(v["summary"]["warn"], 1);
    }
}
