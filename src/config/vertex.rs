//! Vertex AI (DESIGN.md §10): where it is reached, how long one call may take, and the
//! default key of each destination region (`COPY_DEFAULT_KMS_KEYS`). How often it is called is
//! the two task queues' business (their rates), not the worker's.

use std::time::Duration;

use clap::Args;

use super::flags::{List, Parsed, duration_setting, list};
use super::{ConfigError, err};
use crate::domain::{DefaultKeys, KmsKeyName, Location};

/// The endpoint, the call timeout and the default keys.
#[derive(Debug, Clone, Args)]
pub struct VertexArgs {
    /// Base URL of the Vertex AI API (default: regional endpoint per request).
    #[arg(long, env = "VERTEX_ENDPOINT")]
    pub vertex_endpoint: Option<String>,
    /// Timeout of one attempt of one Vertex AI call.
    #[arg(long, env = "VERTEX_CALL_TIMEOUT", default_value = "30s", value_parser = duration_setting)]
    pub vertex_call_timeout: Parsed<Duration>,
    /// Default Cloud KMS key per destination region, comma-separated
    /// REGION=projects/P/locations/REGION/keyRings/R/cryptoKeys/K: it encrypts the copy of a
    /// source under a customer-managed key whose request names no kms_key_name (without one,
    /// such a copy is rejected).
    #[arg(long, env = "COPY_DEFAULT_KMS_KEYS", value_parser = List::parse)]
    pub copy_default_kms_keys: Option<List>,
}

/// The variable of the default keys, named by every error about them.
const DEFAULT_KEYS: &str = "COPY_DEFAULT_KMS_KEYS";

/// How an entry must look, for the fix of every error.
const ENTRY_FORM: &str = "write each entry as REGION=projects/P/locations/REGION/keyRings/R/cryptoKeys/K, the key in the region it is the default of, entries comma-separated";

impl VertexArgs {
    /// `VERTEX_ENDPOINT`, when set: an `http(s)://` URL.
    pub fn endpoint(&self) -> Result<Option<String>, ConfigError> {
        if let Some(e) = &self.vertex_endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return Err(err(
                "VERTEX_ENDPOINT",
                format!("{e:?} must be an http:// or https:// URL"),
            ));
        }
        Ok(self.vertex_endpoint.clone().filter(|s| !s.is_empty()))
    }

    /// `COPY_DEFAULT_KMS_KEYS`, checked: each entry is a region and a key in that region
    /// (Vertex AI encrypts a copy only with a key in the copy's location), one per region.
    pub fn default_keys(&self) -> Result<DefaultKeys, ConfigError> {
        let mut keys = DefaultKeys::default();
        for entry in list(&self.copy_default_kms_keys) {
            let Some((region, key)) = entry.split_once('=') else {
                return Err(err(
                    DEFAULT_KEYS,
                    format!("{entry:?} is not REGION=KEY; {ENTRY_FORM}"),
                ));
            };
            let (region, key) = (region.trim(), key.trim());
            let fix =
                |rule: String| err(DEFAULT_KEYS, format!("in {entry:?}: {rule}; {ENTRY_FORM}"));
            let region = Location::parse(DEFAULT_KEYS, region).map_err(|r| fix(r.rule))?;
            let key =
                KmsKeyName::parse(DEFAULT_KEYS, key, region.as_str()).map_err(|r| fix(r.rule))?;
            if keys.insert(region.clone(), key).is_some() {
                return Err(err(
                    DEFAULT_KEYS,
                    format!("{region} is given more than once; one default key per region"),
                ));
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EW4: &str =
        "projects/keys-proj/locations/europe-west4/keyRings/copies/cryptoKeys/default";
    const UC1: &str = "projects/keys-proj/locations/us-central1/keyRings/copies/cryptoKeys/default";

    fn keys(value: &str) -> Result<DefaultKeys, ConfigError> {
        let args = VertexArgs {
            vertex_endpoint: None,
            vertex_call_timeout: duration_setting("30s").unwrap(),
            copy_default_kms_keys: Some(List::parse(value).unwrap()),
        };
        args.default_keys()
    }

    #[test]
    fn default_keys_are_read_per_region() {
        let got = keys(&format!(" europe-west4={EW4}, us-central1 = {UC1} ,")).unwrap();
        assert_eq!(got.for_region("europe-west4").unwrap().as_str(), EW4);
        assert_eq!(got.for_region("us-central1").unwrap().as_str(), UC1);
        assert_eq!(got.for_region("asia-east1"), None);
        assert!(keys("").unwrap().is_empty(), "empty means none");
    }

    #[test]
    fn a_wrong_default_key_names_the_variable_and_the_fix() {
        // (value, what the message must say)
        let cases = [
            (EW4.to_owned(), "is not REGION=KEY"),
            (format!("europe-west4={UC1}"), "key is in us-central1"),
            (format!("global={EW4}"), "must be a region"),
            (format!("Europe-West4={EW4}"), "must be a region"),
            (
                "europe-west4=projects/p/keyRings/r".to_owned(),
                "must look like",
            ),
            (
                format!("europe-west4={EW4}/cryptoKeyVersions/1"),
                "must look like",
            ),
            (
                format!("europe-west4={EW4},europe-west4={EW4}"),
                "more than once",
            ),
        ];
        for (value, says) in cases {
            let e = keys(&value).unwrap_err();
            assert_eq!(e.var, DEFAULT_KEYS, "{value}");
            assert!(e.problem.contains(says), "{value}: {e}");
            if says != "more than once" {
                assert!(
                    e.problem.contains("REGION=projects/P/locations/REGION/"),
                    "{e}"
                );
            }
        }
    }
}
