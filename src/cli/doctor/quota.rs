//! The quota headroom: `VERTEX_COPY_RATE` and `VERTEX_READ_RATE` against Vertex AI's default
//! quotas, which the rest of the project shares (pure: no call is made).
//!
//! The project's actual quota (raised or lowered through the Cloud Quotas API) and what its
//! other jobs spend are not read, so a line says so (`unknown`) instead of passing it.

use super::report::{Check, Status};
use crate::pipeline::budget::{Rates, VERTEX_DEFAULT_COPY_QUOTA, VERTEX_DEFAULT_READ_QUOTA};

/// One line per rate, then what doctor does not know.
pub fn headroom(rates: &Rates) -> Vec<Check> {
    let instances = rates.instances.max(1);
    let mut checks: Vec<Check> = [
        (
            "VERTEX_COPY_RATE",
            "vertex_copy_rate",
            "CopyModel calls",
            "LRO submissions",
            rates.copies_per_minute,
            VERTEX_DEFAULT_COPY_QUOTA,
        ),
        (
            "VERTEX_READ_RATE",
            "vertex_read_rate",
            "reads",
            "resource management requests",
            rates.reads_per_minute,
            VERTEX_DEFAULT_READ_QUOTA,
        ),
    ]
    .into_iter()
    .map(|(var, tf, calls, quota_name, rate, quota)| {
        let share = 100.0 * rate / quota;
        let per_instance = rate / f64::from(instances);
        let detail = format!(
            "{var} {rate}/min per region is {share:.0}% of Vertex AI's default quota of {quota} {quota_name}/min per project and region; each of WORKER_INSTANCES={instances} instances paces {per_instance:.1} {calls}/min"
        );
        let fix = format!(
            "set {var} (Terraform: {tf}) to at most {half} so that the project's other jobs keep their share, or first raise the quota (console: IAM & Admin > Quotas, service aiplatform.googleapis.com)",
            half = quota / 2.0
        );
        let subject = format!("quota {var}");
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
    checks.push(Check::new(
        "quota",
        "project quota",
        Status::Unknown("the project's own quota and its other jobs' use are not read".into()),
        "compare the rates above with the project's quota page: a raised quota leaves more room, other jobs leave less",
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::report::Status;

    fn rates(copies: f64, reads: f64, instances: u32) -> Rates {
        Rates {
            copies_per_minute: copies,
            reads_per_minute: reads,
            instances,
            time_scale: 1.0,
        }
    }

    #[test]
    fn the_defaults_leave_half_of_each_quota() {
        let checks = headroom(&Rates::default());
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
        let checks = headroom(&rates(45.0, 700.0, 3));
        assert_eq!(checks[0].status, Status::Warn);
        assert!(
            checks[0]
                .detail
                .contains("each of WORKER_INSTANCES=3 instances paces 15.0"),
            "{}",
            checks[0].detail
        );
        assert_eq!(checks[1].status, Status::Warn);
        assert!(
            checks[1].detail.contains("above the default quota"),
            "{}",
            checks[1].detail
        );
        let fix = checks[1].fix.as_deref().unwrap_or_default();
        assert!(
            fix.contains("VERTEX_READ_RATE")
                && fix.contains("vertex_read_rate")
                && fix.contains("300"),
            "{fix}"
        );
    }
}
