//! `[origins]`: the web pages allowed to open sessions (cross-site WebSocket
//! hijacking).

use super::value::{parse_list, pick_list};
use super::{ConfigError, ServeArgs};
use crate::policy::OriginPolicy;
use serde::Deserialize;

/// `[origins]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OriginsFile {
    allow: Option<Vec<String>>,
}

/// None listed (the default): the Origin must be the proxy's own address.
pub(super) fn merge(f: OriginsFile, a: &ServeArgs) -> Result<OriginPolicy, ConfigError> {
    let list = pick_list(&a.allow_origin, f.allow).unwrap_or_default();
    Ok(OriginPolicy {
        allow: parse_list("origins.allow", &list)?,
    })
}
