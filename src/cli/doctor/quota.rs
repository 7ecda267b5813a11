//! The quota headroom: the two queues' rates, read from Cloud Tasks (GetQueue), against Vertex
//! AI's default quotas, which the rest of the project shares. The queues are the only pacers of
//! Vertex AI calls (docs/DESIGN.md §10): CopyModel comes from `copy-starts`, reads from
//! `copy-polls` and from the starts themselves (at most `READS_PER_START` each).
//!
//! The project's actual quota (raised or lowered through the Cloud Quotas API) and what its
//! other jobs spend are not read, so a line says so (`unknown`) instead of passing it.

use super::report::{Check, Status};
use crate::clients::tasks::QueueRates;
use crate::retry::Failure;
use crate::topology::{READS_PER_START, VERTEX_DEFAULT_COPY_QUOTA, VERTEX_DEFAULT_READ_QUOTA};

/// The check for queues whose rates cannot be read: a missing queue fails, anything else is
/// unknown.
fn unreadable(f: &Failure) -> Check {
    if f.code == google_cloud_gax::error::rpc::Code::NotFound {
        return Check::fail("queues", "exist", format!("a queue does not exist: {f}"))
            .fix("create both queues: terraform apply (the module's tasks.tf), or gcloud tasks queues create copy-starts / copy-polls --location=REGION, and set COPY_START_QUEUE and COPY_POLL_QUEUE to their full names");
    }
    Check::new(
        "quota",
        "headroom",
        Status::Unknown(format!("the queues' rates cannot be read: {f}")),
        "check COPY_START_QUEUE and COPY_POLL_QUEUE, and that this account may read them (cloudtasks.queues.get)",
    )
}

/// One line per kind of call, then what doctor does not know.
pub fn headroom(rates: Result<QueueRates, Failure>) -> Vec<Check> {
    let unknown_quota = Check::new(
        "quota",
        "project quota",
        Status::Unknown("the project's own quota and its other jobs' use are not read".into()),
        "compare the rates above with the project's quota page: a raised quota leaves more room, other jobs leave less",
    );
    let rates = match rates {
        Ok(r) => r,
        Err(f) => return vec![unreadable(&f), unknown_quota],
    };
    let copies = rates.starts_per_minute;
    let reads = rates.polls_per_minute + READS_PER_START * copies;
    let mut checks: Vec<Check> = [
        ("copy-starts", "CopyModel calls", "LRO submissions", copies, VERTEX_DEFAULT_COPY_QUOTA,
         format!("the copy-starts queue dispatches {copies}/min"), "vertex_copy_rate"),
        ("copy-polls", "reads", "resource management requests", reads, VERTEX_DEFAULT_READ_QUOTA,
         format!("copy-polls dispatches {}/min, plus at most {READS_PER_START} reads per start", rates.polls_per_minute), "vertex_read_rate"),
    ]
    .into_iter()
    .map(|(queue, calls, quota_name, rate, quota, how, tf)| {
        let share = 100.0 * rate / quota;
        let detail = format!(
            "{how}: {rate}/min {calls} is {share:.0}% of Vertex AI's default quota of {quota} {quota_name}/min per project and region"
        );
        let fix = format!(
            "lower Terraform's {tf} (it sets the queues' rates) so that at most {half}/min {calls} are made and the project's other jobs keep their share, or first raise the quota (console: IAM & Admin > Quotas, service aiplatform.googleapis.com)",
            half = quota / 2.0
        );
        let subject = format!("quota {queue}");
        // Above the default is a warning, not a failure: a raised quota, which doctor cannot
        // read, makes it right.
        if rate > quota {
            Check::warn(subject, "headroom", format!("{detail}: above the default quota, so Vertex AI answers 429 unless the project's quota was raised")).fix(fix)
        } else if rate > quota / 2.0 {
            Check::warn(subject, "headroom", format!("{detail}: less than half is left for the project's training and batch jobs")).fix(fix)
        } else {
            Check::ok(subject, "headroom", detail)
        }
    })
    .collect();
    checks.push(unknown_quota);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::report::Status;
    use google_cloud_gax::error::rpc::Code;

    fn rates(starts: f64, polls: f64) -> Result<QueueRates, Failure> {
        Ok(QueueRates {
            starts_per_minute: starts,
            polls_per_minute: polls,
        })
    }

    #[test]
    fn the_defaults_leave_half_of_each_quota() {
        let checks = headroom(rates(30.0, 210.0));
        assert_eq!(checks[0].status, Status::Ok);
        assert!(
            checks[0]
                .detail
                .contains("50% of Vertex AI's default quota of 60"),
            "{}",
            checks[0].detail
        );
        assert_eq!(checks[1].status, Status::Ok);
        assert!(checks[1].detail.contains("300/min"), "{}", checks[1].detail);
        assert!(matches!(checks[2].status, Status::Unknown(_)), "never ok");
    }

    #[test]
    fn more_than_half_or_more_than_the_quota_warns_naming_the_variable_and_the_fix() {
        let checks = headroom(rates(45.0, 600.0));
        assert_eq!(checks[0].status, Status::Warn);
        assert_eq!(checks[1].status, Status::Warn);
        assert!(
            checks[1].detail.contains("above the default quota"),
            "{}",
            checks[1].detail
        );
        let fix = checks[1].fix.as_deref().unwrap_or_default();
        assert!(
            fix.contains("vertex_read_rate") && fix.contains("300"),
            "{fix}"
        );
    }

    #[test]
    fn a_missing_queue_fails_and_says_how_to_create_it() {
        let checks = headroom(Err(Failure::new(Code::NotFound, "Queue does not exist.")));
        assert_eq!(checks[0].status, Status::Fail);
        assert!(
            checks[0]
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("copy-polls")
        );
    }

    #[test]
    fn unreadable_queues_are_unknown_never_ok() {
        let checks = headroom(Err(Failure::new(Code::PermissionDenied, "no")));
        assert!(
            checks
                .iter()
                .all(|c| matches!(c.status, Status::Unknown(_)))
        );
    }
}
