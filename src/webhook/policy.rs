//! Which addresses a channel's requests may go to. A stand-in with the
//! interface of `netguard` (the platform-wide guard), until it is merged:
//! a tenant's requests go to public addresses only, the platform's anywhere.
//! The check runs on the addresses resolved for the connection (a reqwest
//! resolver), so DNS rebinding gains nothing, and on IP-literal URLs.

use std::net::{IpAddr, SocketAddr};

/// The rule for one connection: unrestricted, or public addresses only.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    restricted: bool,
}

/// A connection the policy does not permit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} resolves to {ip}, {kind}: a tenant's servers must be on public addresses \
     (the platform admin can allow this network or host with HERALD_ALLOW_NETWORKS)"
)]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub kind: &'static str,
}

impl NetPolicy {
    pub fn unrestricted() -> NetPolicy {
        NetPolicy { restricted: false }
    }

    pub fn public_only() -> NetPolicy {
        NetPolicy { restricted: true }
    }

    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if !self.restricted {
            return Ok(());
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let kind = match ip {
            IpAddr::V4(v4) if v4.is_loopback() => Some("a loopback address"),
            IpAddr::V4(v4) if v4.is_private() => Some("a private address"),
            IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address (cloud metadata lives there)"),
            IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() => {
                Some("a reserved address")
            }
            IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => Some("a loopback address"),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => Some("a private address"),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
            _ => None,
        };
        match kind {
            None => Ok(()),
            Some(kind) => Err(Refused {
                host: host.to_string(),
                ip,
                kind,
            }),
        }
    }

    pub fn filter(&self, host: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let mut first = None;
        let mut permitted = Vec::new();
        for addr in resolved {
            match self.check(host, addr.ip()) {
                Ok(()) => permitted.push(addr),
                Err(r) => {
                    first.get_or_insert(r);
                }
            }
        }
        match first {
            Some(r) if permitted.is_empty() => Err(r),
            _ => Ok(permitted),
        }
    }
}
