//! `POST /v1/models/copy` (DESIGN.md §7): the seed's REST flow, made durable.
//!
//! Direct callers (EC2 scripts with a Google ID token) get the same validation as every other
//! entry point; the request is published to `copy-requests` and answered 202 at once. The
//! connection is never held open for the copy: the result arrives as a completion event (and
//! a callback, when the request names one).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::HttpError;
use crate::clients::pubsub::{OutMessage, Topic};
use crate::contract::rejection::clip;
use crate::contract::request::MAX_REQUEST_BYTES;
use crate::contract::{Rejection, attr};
use crate::domain::CopyRequest;

/// The seed's query parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedQuery {
    source_model_id: Option<String>,
    destination_model_id: Option<String>,
}

/// The query parameters `POST /v1/models/copy` knows.
const QUERY_PARAMETERS: [&str; 2] = ["source_model_id", "destination_model_id"];

impl SeedQuery {
    /// Reads the query string: each known parameter at most once, and no other. A parameter
    /// given twice would leave the caller guessing which one counted, and an unknown one
    /// (a typo, `source_model`) would be dropped in silence.
    pub fn parse(query: Option<&str>) -> Result<Self, Rejection> {
        let mut q = SeedQuery::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match k.as_ref() {
                "source_model_id" => &mut q.source_model_id,
                "destination_model_id" => &mut q.destination_model_id,
                other => {
                    return Err(Rejection::new(
                        clip(other),
                        format!(
                            "is not a known query parameter (known: {})",
                            QUERY_PARAMETERS.join(", ")
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(Rejection::new(
                    k.as_ref(),
                    "is given more than once; send it once",
                ));
            }
            *slot = Some(v.into_owned());
        }
        Ok(q)
    }
}

/// Handles `POST /v1/models/copy` (the caller is authenticated by the middleware):
/// validate, publish, answer 202. Refusals are JSON with the field and the rule, a bad query
/// string's included.
pub async fn enqueue(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let answer = match SeedQuery::parse(query.as_deref()) {
        Ok(q) => accept(s, q, headers, body).await,
        Err(r) => Err(HttpError::Invalid(r)),
    };
    match answer {
        Ok(r) => r,
        Err(e) => e.into_json_response(),
    }
}

/// The caller's `traceparent` header, when there is exactly one and it has W3C's shape. An
/// invalid one is ignored, as W3C Trace Context asks of a receiver (§3.2.2.3), so it never
/// reaches an attribute.
fn traceparent(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(attr::TRACEPARENT).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().ok().filter(|t| attr::is_traceparent(t)),
        _ => None,
    }
}

async fn accept(
    s: AppState,
    q: SeedQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, HttpError> {
    let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                HttpError::TooLarge {
                    what: "request: body",
                    limit: MAX_REQUEST_BYTES,
                }
            } else {
                // A body that stalled past the server's body read timeout, or broke off.
                HttpError::BadBody(format!("cannot read body: {e}"))
            }
        })?;
    let defaults = &s.pipeline.settings.defaults;
    let req = match (&q.source_model_id, &q.destination_model_id, body.is_empty()) {
        (None, None, false) => CopyRequest::parse(&body, defaults),
        (None, None, true) => Err(Rejection::new(
            "request",
            "send the request JSON as the body, or the query parameters source_model_id and destination_model_id",
        )),
        (_, _, false) => Err(Rejection::new(
            "request",
            "send either a JSON body or the seed's query parameters, not both",
        )),
        (src, dst, true) => CopyRequest::from_seed(
            src.as_deref().unwrap_or_default(),
            dst.as_deref().unwrap_or_default(),
            defaults,
        ),
    }
    .map_err(HttpError::Invalid)?;

    let mut attributes =
        BTreeMap::from([(attr::REQUEST_ID.to_owned(), req.request_id.to_string())]);
    if let Some(tp) = traceparent(&headers) {
        attributes.insert(attr::TRACEPARENT.into(), tp.to_owned());
    }
    let msg = OutMessage {
        data: req.to_bytes(),
        attributes,
    };
    let message_id = s
        .pipeline
        .topics
        .publish(Topic::Requests, msg)
        .await
        .map_err(|e| HttpError::Unavailable(e.to_string()))?;
    tracing::info!(request_id = %req.request_id, %message_id, "request enqueued");
    let answer = json!({"request_id": req.request_id.as_str(), "message_id": message_id, "status": "accepted"});
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// The audiences a direct caller's token may carry: each configured audience, and the same
/// with `/v1/models/copy` appended (the seed's clients mint tokens for the full endpoint URL).
pub fn invoker_audiences(push_audiences: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in push_audiences {
        let base = a.trim_end_matches('/');
        let base = base.strip_suffix("/v1/models/copy").unwrap_or(base);
        for v in [base.to_owned(), format!("{base}/v1/models/copy")] {
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe: `/v1/models/copy` answered a duplicated query parameter in plain text, not
    /// JSON, and silently dropped unknown parameters.
    #[test]
    fn the_query_string_takes_each_known_parameter_once_and_nothing_else() {
        let q = SeedQuery::parse(Some("source_model_id=1&destination_model_id=a%2Db")).unwrap();
        assert_eq!(q.source_model_id.as_deref(), Some("1"));
        assert_eq!(q.destination_model_id.as_deref(), Some("a-b"));
        assert_eq!(SeedQuery::parse(None).unwrap(), SeedQuery::default());
        let twice = SeedQuery::parse(Some("source_model_id=1&source_model_id=2")).unwrap_err();
        assert_eq!(twice.field, "source_model_id");
        assert!(twice.rule.contains("more than once"), "{}", twice.rule);
        let unknown = SeedQuery::parse(Some("source_model=1")).unwrap_err();
        assert_eq!(unknown.field, "source_model");
        assert!(unknown.rule.contains("source_model_id"), "{}", unknown.rule);
    }

    /// The probe: a `traceparent` header of any length was carried onto the request message.
    #[test]
    fn only_one_w3c_traceparent_header_reaches_an_attribute() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = HeaderMap::new();
        assert_eq!(traceparent(&h), None);
        h.insert("traceparent", tp.parse().unwrap());
        assert_eq!(traceparent(&h), Some(tp));
        h.append("traceparent", tp.parse().unwrap());
        assert_eq!(traceparent(&h), None, "two headers: neither counts");
        let mut long = HeaderMap::new();
        long.insert("traceparent", "0".repeat(8000).parse().unwrap());
        assert_eq!(traceparent(&long), None);
    }

    #[test]
    fn invoker_audiences_accept_the_service_url_and_the_endpoint_url() {
        let got = invoker_audiences(&[
            "https://w-1.a.run.app/".into(),
            "https://w-1.a.run.app/v1/models/copy".into(),
        ]);
        assert_eq!(
            got,
            vec![
                "https://w-1.a.run.app",
                "https://w-1.a.run.app/v1/models/copy"
            ]
        );
    }
}
