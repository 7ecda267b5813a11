//! A Cloud Run front: the IAM invoker check that Google's front end runs before a request
//! reaches a Cloud Run container, and the token that Pub/Sub attaches to a push, which the
//! emulator does not send (DESIGN.md §9). Tests put it between callers (or the emulator's
//! push subscriptions) and a worker with `PUSH_AUTH=cloud-run`.
//!
//! # What Cloud Run does, and so this front
//! Sources: cloud.google.com/run/docs/authenticating/service-to-service (the token, the
//! audience, `X-Serverless-Authorization`), cloud.google.com/run/docs/troubleshooting
//! ("401 … not authenticated", "403 … does not have permission", and "signature removed").
//! 1. The caller's ID token is read from `X-Serverless-Authorization` when that header is
//!    present, else from `Authorization` (`Bearer <token>`). The other header is forwarded
//!    untouched.
//! 2. No token at all: 403, as for a caller without permission.
//! 3. A token that is not a valid Google-signed ID token (signature, expiry) or whose `aud`
//!    is neither the service URL (with or without a path, as Cloud Scheduler's default
//!    audience is the full target URL) nor a custom audience of the service: 401.
//! 4. A valid token whose `email` does not hold `roles/run.invoker`: 403.
//! 5. Otherwise the request is forwarded with that token's signature replaced by
//!    `SIGNATURE_REMOVED_BY_GOOGLE` ("Cloud Run removes the signature … so the token cannot
//!    be reused"): the container sees the header and claims, never a replayable token.
//!
//! Refusals are Google's HTML error pages, not the worker's answers, so a test can tell which
//! layer refused. [`CloudRunFront::push_url`] adds step 0, Pub/Sub's side of a push
//! subscription with `oidcToken` (cloud.google.com/pubsub/docs/authenticate-push-subscriptions):
//! a request without `Authorization` gets `Bearer <token for the push account and audience>`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::front::{Target, Upstream, send};
use crate::oidc::IssuerKeys;

/// What replaces the signature of a token that the front verified.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";
const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

/// The service's IAM and audiences, as Cloud Run knows them.
#[derive(Clone)]
pub struct CloudRunIam {
    /// Google's keys: tokens must be signed by this issuer.
    pub keys: IssuerKeys,
    /// Custom audiences of the service, beside its URL ([`CloudRunFront::url`]).
    pub custom_audiences: Vec<String>,
    /// Principals (emails) that hold `roles/run.invoker` on the service.
    pub invokers: Vec<String>,
    /// The push subscriptions' `oidcToken`: the account and audience of the token that
    /// [`CloudRunFront::push_url`] attaches. `None` audience means the service URL.
    pub push_account: String,
    pub push_audience: Option<String>,
}

/// A running front; both listeners stop when it is dropped.
pub struct CloudRunFront {
    public: SocketAddr,
    push: SocketAddr,
    shared: Arc<Shared>,
    tasks: [JoinHandle<()>; 2],
}

struct Shared {
    iam: CloudRunIam,
    target: Target,
    /// The service URL: the audience Cloud Run accepts without configuration.
    service_url: String,
    /// Every token forwarded to the container, in the header Cloud Run checked.
    forwarded: Mutex<Vec<String>>,
}

impl CloudRunFront {
    /// Serves the front on two free ports of 127.0.0.1, forwarding to `target` (`http://…`).
    pub async fn start(target: &str, iam: CloudRunIam) -> anyhow::Result<CloudRunFront> {
        let public = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Cloud Run front")?;
        let push = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Cloud Run front's push side")?;
        let addr = public.local_addr()?;
        let shared = Arc::new(Shared {
            iam,
            target: Target::parse(target)?,
            service_url: format!("http://{addr}"),
            forwarded: Mutex::default(),
        });
        let serve = |listener: TcpListener, signs: bool| {
            let router = axum::Router::new()
                .fallback(handle)
                .with_state((shared.clone(), signs));
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            })
        };
        let push_addr = push.local_addr()?;
        let tasks = [serve(public, false), serve(push, true)];
        Ok(CloudRunFront {
            public: addr,
            push: push_addr,
            shared,
            tasks,
        })
    }

    /// The service URL (`http://127.0.0.1:PORT`): direct callers' base, and the audience
    /// Cloud Run accepts without configuration.
    pub fn url(&self) -> String {
        format!("http://{}", self.public)
    }

    /// The push endpoints' base for the emulator's push subscriptions: each push gets the
    /// push account's token first, as Pub/Sub attaches it, then the same check.
    pub fn push_url(&self) -> String {
        format!("http://{}", self.push)
    }

    /// The tokens forwarded to the container so far, as it received them.
    pub fn forwarded_tokens(&self) -> Vec<String> {
        lock(&self.shared.forwarded).clone()
    }
}

impl Drop for CloudRunFront {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Google's refusal page (the body is HTML, like the real front end's).
fn refuse(status: StatusCode, why: &str) -> Response {
    let title = if status == StatusCode::UNAUTHORIZED {
        "401 Unauthorized"
    } else {
        "403 Forbidden"
    };
    let body = format!(
        "<html><head><title>{title}</title></head><body><h1>Error: {title}</h1>\
         <h2>Your client does not have permission to the requested URL.</h2>\
         <!-- cloud-run-front: {why} --></body></html>"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

async fn handle(State((shared, signs)): State<(Arc<Shared>, bool)>, mut req: Request) -> Response {
    let service_url = &shared.service_url;
    let headers = req.headers_mut();
    if signs && !headers.contains_key(header::AUTHORIZATION) {
        let aud = shared.iam.push_audience.as_deref().unwrap_or(service_url);
        let token = shared.iam.keys.mint_for(&shared.iam.push_account, aud);
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("token is ASCII");
        headers.insert(header::AUTHORIZATION, value);
    }
    let name = if headers.contains_key(SERVERLESS_AUTHORIZATION) {
        HeaderName::from_static(SERVERLESS_AUTHORIZATION)
    } else {
        header::AUTHORIZATION
    };
    let token = headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        return refuse(StatusCode::FORBIDDEN, "no identity token");
    };
    let claims = match shared.iam.keys.verify(&token) {
        Ok(c) => c,
        Err(why) => return refuse(StatusCode::UNAUTHORIZED, &why),
    };
    let aud = claims.get("aud").and_then(|a| a.as_str()).unwrap_or("");
    let aud_ok = aud == *service_url
        || aud.starts_with(&format!("{service_url}/"))
        || shared.iam.custom_audiences.iter().any(|c| c == aud);
    if !aud_ok {
        return refuse(StatusCode::UNAUTHORIZED, "audience is not this service");
    }
    let email = claims.get("email").and_then(|e| e.as_str()).unwrap_or("");
    if !shared
        .iam
        .invokers
        .iter()
        .any(|i| i.eq_ignore_ascii_case(email))
    {
        return refuse(StatusCode::FORBIDDEN, "caller lacks run.routes.invoke");
    }
    let (signed, _) = token
        .rsplit_once('.')
        .expect("a verified token has three parts");
    let stripped = format!("{signed}.{SIGNATURE_REMOVED}");
    let value = HeaderValue::from_str(&format!("Bearer {stripped}")).expect("ASCII");
    headers.insert(name, value);
    lock(&shared.forwarded).push(stripped);
    match send(&shared.target, Duration::from_secs(15), req).await {
        Ok(response) => response,
        Err(Upstream::Down) => (StatusCode::SERVICE_UNAVAILABLE, "no instance").into_response(),
        Err(Upstream::Failed(e)) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}
