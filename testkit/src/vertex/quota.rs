//! Request quotas of the Vertex AI fake: per (project number, location), over a rolling window,
//! answered with the google.rpc body the real service sends.
//!
//! # The real limits
//! <https://cloud.google.com/vertex-ai/docs/quotas> ("Request quotas"): per project and supported
//! region, 600 "Resource management (CRUD) requests" and 60 "Job or long-running operation (LRO)
//! submission requests" per minute. CopyModel is an LRO submission; GetOperation, GetModel and
//! ListModelVersions are resource management.
//!
//! # What is counted
//! Only admitted requests use up quota: Cloud Monitoring keeps separate metrics for usage
//! (`quota/…/usage`) and for "attempts to exceed the limit" (`quota/…/exceeded`), so a 429 does
//! not push the window further out. A request that is admitted and then fails (404, 409, a
//! scripted fault) was still served and counts, as on the real service, where the quota check
//! comes first.

use super::wire::Reply;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Per-(project, location) request limits over a rolling window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// LRO submissions (CopyModel) admitted per window. Vertex AI: 60 per minute.
    pub lro_submissions: usize,
    /// Resource-management requests (GetOperation, GetModel, ListModelVersions) admitted per
    /// window. Vertex AI: 600 per minute.
    pub resource_management: usize,
    /// Length of the rolling window. Vertex AI: one minute; tests shorten it (e.g. 1 s) to
    /// compress time, and the 429 bodies keep the real "per minute" wording.
    pub window: Duration,
}

impl Quotas {
    /// The defaults of a new Google Cloud project.
    pub const VERTEX_DEFAULTS: Quotas = Quotas {
        lro_submissions: 60,
        resource_management: 600,
        window: Duration::from_secs(60),
    };
}

/// The ModelService methods the fake serves, for per-method counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rpc {
    /// `POST /v1/{parent}/models:copy`: an LRO submission.
    CopyModel,
    /// `GET /ui/{operation}` or `GET /v1/{operation}`: resource management.
    GetOperation,
    /// `GET /v1/{model}`: resource management.
    GetModel,
    /// `GET /v1/{model}:listVersions`: resource management.
    ListModelVersions,
    /// `GET /v1/{parent}/models`: resource management.
    ListModels,
}

/// How often one [`Rpc`] was called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpcCount {
    /// Every request routed to the method, whatever it was answered.
    pub calls: usize,
    /// Of those, the ones answered 429 `RESOURCE_EXHAUSTED` by a quota.
    pub quota_rejections: usize,
}

/// A quota metric as the real 429 names it.
#[derive(Debug)]
struct Metric {
    /// Display names, as in the message of a real 429 (vertex-ai-samples#1000 quotes
    /// "Quota exceeded for quota metric 'Resource management (CRUD) requests' and limit
    /// 'Resource management (CRUD) requests per minute per region' of service
    /// 'aiplatform.googleapis.com' for consumer 'project_number:…'").
    name: &'static str,
    limit_name: &'static str,
    /// ErrorInfo metadata. The regional metric ids follow the `non_regional_…` ids that Cloud
    /// Monitoring lists for aiplatform; the limit ids follow the
    /// `…PerMinutePerProjectPerRegion` pattern of other regional Google quotas.
    id: &'static str,
    limit_id: &'static str,
}

const LRO_SUBMISSIONS: Metric = Metric {
    name: "Job or LRO submission requests",
    limit_name: "Job or LRO submission requests per minute per region",
    id: "aiplatform.googleapis.com/job_or_lro_submission_requests",
    limit_id: "JobOrLroSubmissionRequestsPerMinutePerProjectPerRegion",
};

const RESOURCE_MANAGEMENT: Metric = Metric {
    name: "Resource management (CRUD) requests",
    limit_name: "Resource management (CRUD) requests per minute per region",
    id: "aiplatform.googleapis.com/resource_management_requests",
    limit_id: "ResourceManagementRequestsPerMinutePerProjectPerRegion",
};

impl Rpc {
    fn metric(self) -> &'static Metric {
        match self {
            Rpc::CopyModel => &LRO_SUBMISSIONS,
            Rpc::GetOperation | Rpc::GetModel | Rpc::ListModelVersions | Rpc::ListModels => {
                &RESOURCE_MANAGEMENT
            }
        }
    }
}

/// Admissions per (project number, location, metric id), and the per-method counters.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    quotas: Option<Quotas>,
    admitted: HashMap<(String, String, &'static str), VecDeque<Instant>>,
    pub counts: BTreeMap<Rpc, RpcCount>,
}

impl Ledger {
    /// Enforces `quotas` (or none) from now on; admissions so far are forgotten.
    pub fn enforce(&mut self, quotas: Option<Quotas>) {
        self.quotas = quotas;
        self.admitted.clear();
    }

    /// Counts a request routed to `rpc`, whatever it will be answered.
    pub fn call(&mut self, rpc: Rpc) {
        self.counts.entry(rpc).or_default().calls += 1;
    }

    /// Admits a call to `rpc` in `project` (a number) and `location`, or returns the 429 the
    /// real service answers.
    pub fn admit(
        &mut self,
        rpc: Rpc,
        project: &str,
        location: &str,
        now: Instant,
    ) -> Option<Reply> {
        let quotas = self.quotas.as_ref()?;
        let metric = rpc.metric();
        let limit = match rpc {
            Rpc::CopyModel => quotas.lro_submissions,
            _ => quotas.resource_management,
        };
        let key = (project.to_string(), location.to_string(), metric.id);
        let admitted = self.admitted.entry(key).or_default();
        while admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= quotas.window)
        {
            admitted.pop_front();
        }
        if admitted.len() >= limit {
            self.counts.entry(rpc).or_default().quota_rejections += 1;
            return Some(quota_exceeded(metric, limit, project, location));
        }
        admitted.push_back(now);
        None
    }
}

/// The HTTP/JSON form of google.rpc.Status for a rate quota, with the ErrorInfo (reason
/// `RATE_LIMIT_EXCEEDED`, domain `googleapis.com`, quota metadata) and Help details that Google
/// APIs attach; shape as quoted in GoogleCloudPlatform/marketing-analytics-jumpstart#163 and
/// google-gemini/deprecated-generative-ai-python#206 (regional `quota_location`).
fn quota_exceeded(metric: &Metric, limit: usize, project: &str, location: &str) -> Reply {
    const SERVICE: &str = "aiplatform.googleapis.com";
    let message = format!(
        "Quota exceeded for quota metric '{}' and limit '{}' of service '{SERVICE}' for consumer \
         'project_number:{project}'.",
        metric.name, metric.limit_name
    );
    let mut reply = Reply::error(429, "RESOURCE_EXHAUSTED", message);
    reply.body["error"]["details"] = json!([
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "consumer": format!("projects/{project}"),
                "quota_limit": metric.limit_id,
                "quota_limit_value": limit.to_string(),
                "quota_location": location,
                "quota_metric": metric.id,
                "service": SERVICE,
            },
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{
                "description": "Request a higher quota limit.",
                "url": "https://cloud.google.com/docs/quotas/help/request_increase",
            }],
        },
    ]);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> Ledger {
        Ledger {
            quotas: Some(Quotas {
                lro_submissions: 1,
                resource_management: 2,
                window: Duration::from_secs(1),
            }),
            ..Ledger::default()
        }
    }

    #[test]
    fn limits_are_per_metric_project_and_location_over_a_rolling_window() {
        let mut ledger = tight();
        let t0 = Instant::now();
        assert!(ledger.admit(Rpc::CopyModel, "1", "eu", t0).is_none());
        assert!(ledger.admit(Rpc::CopyModel, "1", "eu", t0).is_some());
        assert!(ledger.admit(Rpc::CopyModel, "1", "us", t0).is_none());
        assert!(ledger.admit(Rpc::CopyModel, "2", "eu", t0).is_none());
        assert!(ledger.admit(Rpc::GetModel, "1", "eu", t0).is_none());
        assert!(ledger.admit(Rpc::GetOperation, "1", "eu", t0).is_none());
        assert!(
            ledger
                .admit(Rpc::ListModelVersions, "1", "eu", t0)
                .is_some()
        );
        let later = t0 + Duration::from_secs(1);
        assert!(ledger.admit(Rpc::CopyModel, "1", "eu", later).is_none());
        assert_eq!(ledger.counts[&Rpc::CopyModel].quota_rejections, 1);
        assert_eq!(ledger.counts[&Rpc::ListModelVersions].quota_rejections, 1);
    }

    #[test]
    fn rejections_do_not_use_up_quota() {
        let mut ledger = tight();
        let t0 = Instant::now();
        ledger.admit(Rpc::CopyModel, "1", "eu", t0);
        let half = t0 + Duration::from_millis(900);
        assert!(ledger.admit(Rpc::CopyModel, "1", "eu", half).is_some());
        // Only the admitted call at t0 occupies the window.
        let after = t0 + Duration::from_millis(1000);
        assert!(ledger.admit(Rpc::CopyModel, "1", "eu", after).is_none());
    }

    #[test]
    fn no_quotas_admits_everything() {
        let mut ledger = Ledger::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(ledger.admit(Rpc::GetModel, "1", "eu", t0).is_none());
        }
        assert!(ledger.counts.is_empty());
    }

    #[test]
    fn the_429_body_names_metric_limit_and_consumer_number() {
        let reply = quota_exceeded(&RESOURCE_MANAGEMENT, 600, "123456789012", "us-central1");
        assert_eq!(reply.status, 429);
        let error = &reply.body["error"];
        assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            error["message"],
            "Quota exceeded for quota metric 'Resource management (CRUD) requests' and limit \
             'Resource management (CRUD) requests per minute per region' of service \
             'aiplatform.googleapis.com' for consumer 'project_number:123456789012'."
        );
        let info = &error["details"][0];
        assert_eq!(info["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(info["metadata"]["quota_limit_value"], "600");
        assert_eq!(info["metadata"]["consumer"], "projects/123456789012");
    }
}
