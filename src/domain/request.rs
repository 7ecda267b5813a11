//! The copy request of DESIGN.md §3: read from the wire type, into types that can only hold
//! valid values.
//!
//! The same code validates in the worker (`pipeline`), in `copy-worker publish` and in
//! `POST /v1/models/copy`, so a request accepted by one is accepted by all. Every rejection
//! names the field and the rule it broke ([`Rejection`]).

use std::collections::BTreeMap;
use std::fmt;

use super::destination::{Destination, Partial};
use super::names::{KmsKeyName, ModelName};
use super::sha256_hex;
use crate::contract::attr::MAX_VALUE_BYTES;
use crate::contract::rejection::{Rejection, clip};
use crate::contract::request::{self as wire, CopyRequestWire, RequestWire, SeedRequestWire};

/// Worker-side defaults and policy that a request is validated against (DESIGN.md §5, §7).
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `SOURCE_PROJECT`: project of bare source model ids.
    pub source_project: Option<String>,
    /// `TARGET_PROJECT`: destination project when the request names none.
    pub target_project: Option<String>,
    /// `LOCATION`: location of bare source model ids and of the seed's two-field form.
    pub location: Option<String>,
    /// `CALLBACK_ALLOWED_HOSTS`: hosts a `callback_url` may point at. Empty: no callbacks.
    pub callback_allowed_hosts: Vec<String>,
    /// `CALLBACK_ALLOW_HTTP_LOOPBACK`: also allow `http://127.0.0.1:*` (local tests only).
    pub callback_allow_http_loopback: bool,
}

/// `request_id`: `[A-Za-z0-9._:-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Rejection::new(
                "request_id",
                format!("must match [A-Za-z0-9._:-]{{1,128}}, got {:?}", clip(s)),
            ))
        }
    }

    /// A stable id for bytes that could not be parsed: same bytes, same id, so a redelivered
    /// rejection carries the same `ce-id`.
    pub fn for_bytes(bytes: &[u8]) -> Self {
        Self(format!("invalid-{}", &sha256_hex(bytes)[..32]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The source of a copy: a model, optionally pinned to a version.
pub type SourceModel = ModelName;

/// A validated, normalised copy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub request_id: RequestId,
    pub source_model: SourceModel,
    pub destination: Destination,
    pub kms_key_name: Option<KmsKeyName>,
    pub context: BTreeMap<String, String>,
    pub callback_url: Option<String>,
}

impl CopyRequest {
    /// Parses request bytes as received on the wire (UTF-8 JSON, at most 64 KiB).
    pub fn parse(bytes: &[u8], defaults: &Defaults) -> Result<Self, Rejection> {
        match wire::parse(bytes)? {
            RequestWire::Full(w) => Self::from_wire(w, defaults),
            RequestWire::Seed(w) => Self::from_seed_wire(w, defaults),
        }
    }

    /// The seed's two query parameters (`POST /v1/models/copy?source_model_id=…`).
    pub fn from_seed(
        source_model_id: &str,
        destination_model_id: &str,
        defaults: &Defaults,
    ) -> Result<Self, Rejection> {
        Self::from_seed_wire(
            SeedRequestWire {
                source_model_id: Some(source_model_id.to_owned()),
                destination_model_id: Some(destination_model_id.to_owned()),
            },
            defaults,
        )
    }

    /// Validates the full form, applying the worker's defaults.
    pub fn from_wire(w: CopyRequestWire, d: &Defaults) -> Result<Self, Rejection> {
        let source = match &w.source_model {
            Some(s) => ModelName::parse_or_bare(
                "source_model",
                s,
                d.source_project.as_deref(),
                d.location.as_deref(),
            )?,
            None => return Err(Rejection::new("source_model", "is required")),
        };
        let partial = Partial::from_wire(
            w.destination.unwrap_or_default(),
            &source,
            d.target_project.as_deref(),
        )?;
        let request_id = match &w.request_id {
            Some(s) => RequestId::parse(s)?,
            None => RequestId(
                sha256_hex(format!("{source}\n{}", partial.id_basis()).as_bytes())[..32].to_owned(),
            ),
        };
        let destination = partial.complete(&request_id);
        let kms_key_name = w
            .kms_key_name
            .map(|s| KmsKeyName::parse("kms_key_name", &s, &destination.location))
            .transpose()?;
        let callback_url = w
            .callback_url
            .map(|s| validate_callback_url(&s, d))
            .transpose()?;
        Ok(CopyRequest {
            request_id,
            source_model: source,
            destination,
            kms_key_name,
            context: w.context,
            callback_url,
        })
    }

    /// The seed's two-field form, normalised with `TARGET_PROJECT` and `LOCATION`.
    fn from_seed_wire(w: SeedRequestWire, d: &Defaults) -> Result<Self, Rejection> {
        let src = w.source_model_id.ok_or_else(|| {
            Rejection::new("source_model_id", "is required in the two-field form")
        })?;
        let dst = w.destination_model_id.ok_or_else(|| {
            Rejection::new("destination_model_id", "is required in the two-field form")
        })?;
        let location = d.location.clone().ok_or_else(|| {
            Rejection::new(
                "source_model_id",
                "the two-field form needs LOCATION configured on the worker",
            )
        })?;
        let target = d.target_project.clone().ok_or_else(|| {
            Rejection::new(
                "destination_model_id",
                "the two-field form needs TARGET_PROJECT configured on the worker",
            )
        })?;
        let full = CopyRequestWire {
            source_model: Some(src),
            destination: Some(wire::DestinationWire {
                project: Some(target),
                location: Some(location),
                model_id: Some(dst),
                ..wire::DestinationWire::default()
            }),
            ..CopyRequestWire::default()
        };
        Self::from_wire(full, d).map_err(|r| match r.field.as_str() {
            "source_model" => Rejection::new("source_model_id", r.rule),
            "destination.model_id" => Rejection::new("destination_model_id", r.rule),
            _ => r,
        })
    }

    /// The normalised wire form: every default applied, so that a later parse of it (the
    /// watch stage, a replay) needs no worker defaults and yields the same request.
    pub fn to_wire(&self) -> CopyRequestWire {
        CopyRequestWire {
            request_id: Some(self.request_id.to_string()),
            source_model: Some(self.source_model.to_string()),
            destination: Some(self.destination.to_wire()),
            kms_key_name: self.kms_key_name.as_ref().map(|k| k.as_str().to_owned()),
            context: self.context.clone(),
            callback_url: self.callback_url.clone(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_wire().to_bytes()
    }
}

/// Checks a callback URL against DESIGN.md §7: https only, allowed hosts only, and at most
/// 1024 bytes as normalised, since it travels as an attribute of the callback message
/// (Pub/Sub's value limit, DESIGN.md §10). `CALLBACK_ALLOW_HTTP_LOOPBACK` admits
/// `http://127.0.0.1` only: `localhost` is a name, which the resolver may send elsewhere.
pub fn validate_callback_url(s: &str, d: &Defaults) -> Result<String, Rejection> {
    let field = "callback_url";
    let too_long = |n: usize| {
        Rejection::new(
            field,
            format!(
                "is {n} bytes; at most {MAX_VALUE_BYTES} fit in the callback message's attribute"
            ),
        )
    };
    if s.len() > MAX_VALUE_BYTES {
        return Err(too_long(s.len()));
    }
    let url = url::Url::parse(s)
        .map_err(|e| Rejection::new(field, format!("is not a URL ({e}): {:?}", clip(s))))?;
    if url.as_str().len() > MAX_VALUE_BYTES {
        return Err(too_long(url.as_str().len()));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let loopback_http =
        d.callback_allow_http_loopback && url.scheme() == "http" && host == "127.0.0.1";
    if url.scheme() != "https" && !loopback_http {
        return Err(Rejection::new(
            field,
            format!("must use https, got {}://", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Rejection::new(field, "must not carry credentials"));
    }
    if !loopback_http
        && !d
            .callback_allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
    {
        return Err(Rejection::new(
            field,
            format!("host {host:?} is not allowed; add it to CALLBACK_ALLOWED_HOSTS on the worker"),
        ));
    }
    Ok(url.to_string())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "request_probe_tests.rs"]
mod probe_tests;
