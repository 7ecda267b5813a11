//! The doctor's findings: one line per check, a fix where there is one, and the exit code.

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but not as the deployment is meant to run.
    Warn,
    /// Will break copies: fix before sending traffic.
    Fail,
    /// Could not be checked; the reason says why (a missing permission, an API the
    /// endpoint does not have). Never counted as `ok`.
    Unknown(String),
}

impl Status {
    /// `ok`, `warn`, `fail`, or `unknown (reason)`.
    pub fn label(&self) -> String {
        match self {
            Status::Ok => "ok".into(),
            Status::Warn => "warn".into(),
            Status::Fail => "fail".into(),
            Status::Unknown(why) => format!("unknown ({why})"),
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Unknown(_) => "unknown",
        }
    }
}

/// One check: what was looked at, what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `topic copy-requests`, `subscription copy-callbacks-push`.
    pub subject: String,
    /// The property: `exists`, `ack deadline`, `push audience`.
    pub what: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// A gcloud command or a Terraform variable that fixes it.
    pub fix: Option<String>,
}

impl Check {
    pub fn new(
        subject: impl Into<String>,
        what: &'static str,
        status: Status,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            subject: subject.into(),
            what,
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn ok(subject: impl Into<String>, what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(subject, what, Status::Ok, detail)
    }

    pub fn fail(subject: impl Into<String>, what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(subject, what, Status::Fail, detail)
    }

    pub fn warn(subject: impl Into<String>, what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(subject, what, Status::Warn, detail)
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every check, in the order they ran.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub unknown: usize,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    subject: &'a str,
    check: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<&'a str>,
}

impl Report {
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    pub fn extend(&mut self, cs: impl IntoIterator<Item = Check>) {
        self.checks.extend(cs);
    }

    pub fn counts(&self) -> Counts {
        let mut n = Counts::default();
        for c in &self.checks {
            match c.status {
                Status::Ok => n.ok += 1,
                Status::Warn => n.warn += 1,
                Status::Fail => n.fail += 1,
                Status::Unknown(_) => n.unknown += 1,
            }
        }
        n
    }

    /// Nothing failed (warnings and unknowns do not fail the run).
    pub fn passed(&self) -> bool {
        self.counts().fail == 0
    }

    /// One line per check (`status  subject: what: detail`), an indented `fix:` line under
    /// anything that is not ok, and a count at the end.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<7} {}: {}: {}\n",
                c.status.label(),
                c.subject,
                c.what,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("        fix: {fix}\n"));
            }
        }
        let n = self.counts();
        out.push_str(&format!(
            "doctor: {} ok, {} warn, {} unknown, {} fail\n",
            n.ok, n.warn, n.unknown, n.fail
        ));
        out
    }

    /// `{"checks":[…],"counts":{…},"passed":bool}`.
    pub fn json(&self) -> serde_json::Value {
        let checks: Vec<JsonCheck> = self
            .checks
            .iter()
            .map(|c| JsonCheck {
                subject: &c.subject,
                check: c.what,
                status: c.status.word(),
                reason: match &c.status {
                    Status::Unknown(why) => Some(why),
                    _ => None,
                },
                detail: &c.detail,
                fix: c.fix.as_deref(),
            })
            .collect();
        serde_json::json!({
            "checks": checks,
            "counts": self.counts(),
            "passed": self.passed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_never_ok_and_only_fail_fails_the_run() {
        let mut r = Report::default();
        r.push(Check::ok("topic t", "exists", "found"));
        r.push(Check::new(
            "topic t",
            "publish permission",
            Status::Unknown("lacks pubsub.topics.getIamPolicy".into()),
            "not checked",
        ));
        r.push(Check::warn("config", "push auth", "PUSH_AUTH=none"));
        assert!(r.passed());
        let text = r.text();
        assert!(
            text.contains("unknown (lacks pubsub.topics.getIamPolicy) topic t: publish permission"),
            "{text}"
        );
        assert!(
            text.ends_with("doctor: 1 ok, 1 warn, 1 unknown, 0 fail\n"),
            "{text}"
        );
        r.push(Check::fail("subscription s", "ack deadline", "10 s").fix("gcloud …"));
        assert!(!r.passed());
        let j = r.json();
        assert_eq!(j["passed"], false);
        assert_eq!(j["counts"]["fail"], 1);
        assert_eq!(j["checks"][1]["status"], "unknown");
        assert_eq!(j["checks"][1]["reason"], "lacks pubsub.topics.getIamPolicy");
        assert_eq!(j["checks"][3]["fix"], "gcloud …");
        assert!(r.text().contains("        fix: gcloud …\n"));
    }
}
