//! What a short-form request is completed with (DESIGN.md §3, §5): the default source and
//! destination projects and location, and the callback policy it is checked against.

use clap::Args;

use super::callers::CallerArgs;
use super::{ConfigError, err};
use crate::domain::Defaults;
use crate::domain::names::{is_location, is_project};

/// `SOURCE_PROJECT`, `TARGET_PROJECT`, `LOCATION`.
#[derive(Debug, Clone, Args)]
pub struct DefaultsArgs {
    /// Project of bare source model ids.
    #[arg(long, env = "SOURCE_PROJECT")]
    pub source_project: Option<String>,
    /// Destination project when a request names none.
    #[arg(long, env = "TARGET_PROJECT")]
    pub target_project: Option<String>,
    /// Location of bare source model ids and the two-field form.
    #[arg(long, env = "LOCATION")]
    pub location: Option<String>,
}

/// The defaults, checked: the callback hosts, then the location, then the projects.
pub fn defaults(d: &DefaultsArgs, callers: &CallerArgs) -> Result<Defaults, ConfigError> {
    let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let defaults = Defaults {
        callback_allowed_hosts: callers.allowed_hosts()?,
        source_project: set(&d.source_project),
        target_project: set(&d.target_project),
        location: set(&d.location),
        callback_allow_http_loopback: callers.callback_allow_http_loopback,
    };
    if let Some(l) = &defaults.location
        && !is_location(l)
    {
        return Err(err(
            "LOCATION",
            format!("{l:?} is not a region such as us-central1"),
        ));
    }
    for (var, p) in [
        ("SOURCE_PROJECT", &defaults.source_project),
        ("TARGET_PROJECT", &defaults.target_project),
    ] {
        if let Some(p) = p
            && !is_project(p)
        {
            return Err(err(var, format!("{p:?} is not a project id")));
        }
    }
    Ok(defaults)
}
