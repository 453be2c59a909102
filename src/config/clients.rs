//! `[clients]`: the balancers believed about the client's address and scheme.

use super::value::{parse_list, pick_list};
use super::{ConfigError, ServeArgs};
use crate::clientaddr::ClientsConfig;
use serde::Deserialize;

/// `[clients]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClientsFile {
    trusted_proxies: Option<Vec<String>>,
    proxy_protocol: Option<bool>,
    balancer_only: Option<bool>,
}

/// None trusted and no PROXY protocol by default: the TCP peer is the client.
pub(super) fn merge(f: ClientsFile, a: &ServeArgs) -> Result<ClientsConfig, ConfigError> {
    let list = pick_list(&a.trusted_proxy, f.trusted_proxies).unwrap_or_default();
    let clients = ClientsConfig {
        trusted_proxies: parse_list("clients.trusted_proxies", &list)?,
        proxy_protocol: a.proxy_protocol || f.proxy_protocol.unwrap_or(false),
        balancer_only: a.balancer_only || f.balancer_only.unwrap_or(false),
    };
    if clients.proxy_protocol && clients.trusted_proxies.is_empty() {
        return Err(ConfigError::ProxyProtocolWithoutTrust);
    }
    if clients.balancer_only && clients.trusted_proxies.is_empty() {
        return Err(ConfigError::BalancerOnlyWithoutTrust);
    }
    Ok(clients)
}
