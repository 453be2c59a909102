//! Rule 8's lookup: the addresses a ticket's `host` names, each of which the target
//! policy then checks (a name resolving to one allowed and one forbidden address is
//! refused rather than raced).

use crate::refusal::{Code, Refusal};
use std::net::{IpAddr, SocketAddr};

/// Resolves the ticket's host; an IP literal costs no DNS query.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(Refusal::new(
                    Code::TargetUnresolved,
                    format!("console server name {host} has no address"),
                ))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(Refusal::new(
            Code::TargetUnresolved,
            format!("console server name {host} cannot be resolved: {e}"),
        )),
    }
}
