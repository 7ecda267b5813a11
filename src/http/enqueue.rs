//! `POST /v1/models/copy` (DESIGN.md §7): the seed's REST flow, made durable.
//!
//! Direct callers (EC2 scripts with a Google ID token) get the same validation as every other
//! entry point; the request is published to `copy-requests` and answered 202 at once. The
//! connection is never held open for the copy: the result arrives as a completion event (and
//! a callback, when the request names one).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::HttpError;
use crate::clients::pubsub::{OutMessage, Topic};
use crate::contract::request::MAX_REQUEST_BYTES;
use crate::contract::{Rejection, attr};
use crate::domain::CopyRequest;

/// The seed's query parameters.
#[derive(Debug, Deserialize)]
pub struct SeedQuery {
    source_model_id: Option<String>,
    destination_model_id: Option<String>,
}

/// Handles `POST /v1/models/copy` (the caller is authenticated by the middleware):
/// validate, publish, answer 202. Refusals are JSON with the field and the rule.
pub async fn enqueue(
    State(s): State<AppState>,
    Query(q): Query<SeedQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match accept(s, q, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_json_response(),
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
        .map_err(|_| HttpError::TooLarge {
            what: "request: body",
            limit: MAX_REQUEST_BYTES,
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
    if let Some(tp) = headers.get(attr::TRACEPARENT).and_then(|v| v.to_str().ok()) {
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
    use super::invoker_audiences;

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
