//! Where a push subscription sends its pushes and how it proves who it is: the endpoint's
//! path must be the worker's route for it, and its OIDC token must carry an account in
//! `PUSH_SERVICE_ACCOUNTS` and an audience in `PUSH_AUDIENCE` (docs/DESIGN.md §11).

use google_cloud_pubsub::model::Subscription;
use google_cloud_pubsub::model::push_config::OidcToken;

use super::{OidcExpect, PushExpect};
use crate::cli::doctor::report::Check;

/// The push endpoint's path and its OIDC token.
pub(super) fn check(e: &PushExpect, sub: &Subscription) -> Vec<Check> {
    let subject = e.subject();
    let endpoint = sub
        .push_config
        .as_ref()
        .map(|p| p.push_endpoint.as_str())
        .unwrap_or_default();
    if endpoint.is_empty() {
        return vec![
            Check::fail(
                &subject,
                "push endpoint",
                "none: this is a pull subscription, so nothing reaches the worker",
            )
            .fix(e.update(&format!("--push-endpoint=https://SERVICE_URL{}", e.path))),
        ];
    }
    let mut out = vec![path(e, endpoint)];
    let Some(want) = &e.oidc else {
        out.push(Check::warn(
            &subject,
            "push auth",
            "not checked: PUSH_AUTH=none accepts every push",
        ));
        return out;
    };
    let token = sub.push_config.as_ref().and_then(|p| p.oidc_token());
    let Some(token) = token else {
        out.push(
            Check::fail(
                &subject,
                "push auth",
                "sends no OIDC token; with PUSH_AUTH=oidc the worker answers 401 to every push",
            )
            .fix(e.update(
                "--push-auth-service-account=PUSH_SA_EMAIL --push-auth-token-audience=AUDIENCE",
            )),
        );
        return out;
    };
    out.push(service_account(e, want, token));
    out.push(audience(e, want, endpoint, token));
    out
}

/// The endpoint's path is the route the worker serves this subscription at.
fn path(e: &PushExpect, endpoint: &str) -> Check {
    let path = url::Url::parse(endpoint)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    if path == e.path {
        return Check::ok(e.subject(), "push endpoint", endpoint);
    }
    Check::fail(
        e.subject(),
        "push endpoint",
        format!(
            "{endpoint} has path {path:?}; the worker serves this subscription at {}",
            e.path
        ),
    )
    .fix(e.update(&format!("--push-endpoint=https://SERVICE_URL{}", e.path)))
}

fn service_account(e: &PushExpect, want: &OidcExpect, token: &OidcToken) -> Check {
    let email = &token.service_account_email;
    if want.service_accounts.iter().any(|s| s == email) {
        return Check::ok(e.subject(), "push service account", email.as_str());
    }
    Check::fail(
        e.subject(),
        "push service account",
        format!(
            "{email:?} is not in PUSH_SERVICE_ACCOUNTS ({}); every push is refused with 403",
            want.service_accounts.join(",")
        ),
    )
    .fix(format!(
        "add {email} to PUSH_SERVICE_ACCOUNTS, or {}",
        e.update("--push-auth-service-account=ONE_OF_PUSH_SERVICE_ACCOUNTS")
    ))
}

fn audience(e: &PushExpect, want: &OidcExpect, endpoint: &str, token: &OidcToken) -> Check {
    // PushConfig.OidcToken.audience: "If not specified, the Push endpoint URL will be used."
    // (google/pubsub/v1/pubsub.proto; the generated model.rs of google-cloud-pubsub says so too.)
    let (audience, defaulted) = if token.audience.is_empty() {
        (endpoint, " (the push endpoint, since none is set)")
    } else {
        (token.audience.as_str(), "")
    };
    if want.audiences.iter().any(|a| a == audience) {
        return Check::ok(
            e.subject(),
            "push audience",
            format!("{audience}{defaulted}"),
        );
    }
    Check::fail(
        e.subject(),
        "push audience",
        format!(
            "{audience:?}{defaulted} is not in PUSH_AUDIENCE ({}); every push is refused with 401",
            want.audiences.join(",")
        ),
    )
    .fix(format!(
        "add {audience} to PUSH_AUDIENCE (Terraform: extra_accepted_audiences), or {}",
        e.update(&format!(
            "--push-auth-token-audience={}",
            want.audiences
                .first()
                .map(String::as_str)
                .unwrap_or("AUDIENCE")
        ))
    ))
}
