//! Which addresses a tenant's configuration may make Herald connect to.
//!
//! A tenant names hosts (an SMTP server, an OAuth2 token endpoint, a webhook
//! URL); Herald connects to them from inside the platform's network. Without
//! a guard a tenant could point an account at `127.0.0.1:22` or
//! `169.254.169.254` and read internal banners from the test email's
//! transcript. So a tenant's connections go only to public addresses, unless
//! the platform lists networks or hosts it allows (`HERALD_ALLOW_NETWORKS`).
//! The check is made on the address actually connected to, after resolving,
//! so a name that resolves to a public address when checked and to an
//! internal one when used (DNS rebinding) gains nothing. The platform's own
//! accounts are not restricted: the platform admin may use internal relays.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// A network in CIDR form, e.g. `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Network> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What the platform allows tenants to reach beyond the public internet:
/// networks (CIDR) and host names, from `HERALD_ALLOW_NETWORKS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
    hosts: Vec<String>,
}

impl AllowList {
    /// Parses a comma-separated list such as `10.1.0.0/16, relay.internal, ::1`.
    /// An entry that is neither a network nor a host name is an error naming it.
    pub fn parse(s: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(net) = Network::parse(entry) {
                list.networks.push(net);
            } else if entry.contains('/') || entry.contains(char::is_whitespace) || entry.contains(':') {
                return Err(format!(
                    "{entry:?} is neither a network (such as 10.0.0.0/8) nor a host name"
                ));
            } else {
                list.hosts.push(entry.trim_end_matches('.').to_ascii_lowercase());
            }
        }
        Ok(list)
    }

    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host) || self.networks.iter().any(|n| n.contains(ip))
    }
}

/// The rule for one connection: unrestricted (the platform's own
/// configuration) or public addresses plus the allow list (a tenant's).
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    restricted: Option<Arc<AllowList>>,
}

/// A connection the policy does not permit, with a message that says why and
/// what the platform admin can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} resolves to {ip}, {kind}: a tenant's servers must be on public addresses \
     (the platform admin can allow this network or host with HERALD_ALLOW_NETWORKS)"
)]
pub struct Refused {
    /// The host as configured.
    pub host: String,
    /// The address it resolved to.
    pub ip: IpAddr,
    /// What kind of address it is ("a loopback address", …).
    pub kind: &'static str,
}

impl NetPolicy {
    /// Any address: the platform's own accounts and channels.
    pub fn unrestricted() -> NetPolicy {
        NetPolicy { restricted: None }
    }

    /// Public addresses, and whatever `allow` lists: a tenant's.
    pub fn restricted(allow: Arc<AllowList>) -> NetPolicy {
        NetPolicy {
            restricted: Some(allow),
        }
    }

    /// Permits connecting to `ip` for the configured `host`, or says why not.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        let Some(allow) = &self.restricted else { return Ok(()) };
        match internal_kind(ip) {
            None => Ok(()),
            Some(_) if allow.allows(host, ip) => Ok(()),
            Some(kind) => Err(Refused {
                host: host.to_string(),
                ip: canonical(ip),
                kind,
            }),
        }
    }

    /// The addresses of `resolved` the policy permits; when none is, the
    /// refusal of the first.
    pub fn filter(&self, host: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let mut first_refusal = None;
        let mut permitted = Vec::with_capacity(resolved.len());
        for addr in resolved {
            match self.check(host, addr.ip()) {
                Ok(()) => permitted.push(addr),
                Err(r) => {
                    first_refusal.get_or_insert(r);
                }
            }
        }
        match first_refusal {
            Some(r) if permitted.is_empty() => Err(r),
            _ => Ok(permitted),
        }
    }
}

/// Resolves host names for an HTTP client (OAuth2 token endpoints, webhook
/// URLs) and hands it only the addresses the policy permits, so the check is
/// on the address the client then connects to. A URL whose host is an IP
/// literal is not resolved: check it with [`NetPolicy::check_url`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: NetPolicy,
}

impl GuardedResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: NetPolicy) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

/// The host did not resolve at all (a `dns` stage, unlike a [`Refused`] one).
#[derive(Debug, thiserror::Error)]
#[error("{host} does not resolve: {reason}")]
pub struct Unresolved {
    /// The host as configured.
    pub host: String,
    /// The resolver's words.
    pub reason: String,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let looked_up = tokio::net::lookup_host((host.as_str(), 0)).await;
            let resolved: Vec<SocketAddr> = match looked_up {
                Ok(addrs) => addrs.collect(),
                Err(e) => {
                    let unresolved = Unresolved {
                        host: host.clone(),
                        reason: e.to_string(),
                    };
                    return Err(Box::new(unresolved) as Box<dyn std::error::Error + Send + Sync>);
                }
            };
            let permitted = policy.filter(&host, resolved)?;
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl NetPolicy {
    /// Checks a URL whose host is an IP literal (a resolver never sees those);
    /// a URL with a host name passes here and is checked when resolved.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let host = parsed.host_str().unwrap_or("");
        let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
            return Ok(());
        };
        self.check(&ip.to_string(), ip)
    }
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        // 169.254.169.254 is where clouds answer with instance credentials.
        Some("a link-local address (cloud metadata lives there)")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a carrier-grade NAT address")
    } else if o[0] == 0
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] >= 240
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        Some("a reserved address")
    } else {
        None
    }
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() || ip.is_multicast() {
        Some("a reserved address")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if (first & 0xfe00) == 0xfc00 {
        // fd00:ec2::254 is a cloud metadata address too.
        Some("a private address (unique local)")
    } else if let Some(v4) = nat64_or_compat(ip) {
        v4_kind(v4)
    } else {
        None
    }
}

/// The IPv4 address inside a NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn nat64_or_compat(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(internal_kind(ip(s)).is_some(), "{s} must count as internal");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(internal_kind(ip(s)), None, "{s} is public");
        }
    }

    #[test]
    fn a_tenant_is_refused_internal_addresses_unless_allowed() {
        let tenant = NetPolicy::restricted(Arc::new(AllowList::default()));
        let refused = tenant.check("metadata.internal", ip("169.254.169.254")).unwrap_err();
        assert!(refused.to_string().contains("169.254.169.254"), "{refused}");
        assert!(refused.to_string().contains("HERALD_ALLOW_NETWORKS"), "{refused}");
        assert!(tenant.check("smtp.qq.com", ip("93.184.216.34")).is_ok());
        assert!(NetPolicy::unrestricted().check("localhost", ip("127.0.0.1")).is_ok());

        let allow = AllowList::parse("10.1.0.0/16, relay.corp.example, ::1").unwrap();
        let tenant = NetPolicy::restricted(Arc::new(allow));
        assert!(tenant.check("x", ip("10.1.200.3")).is_ok());
        assert!(tenant.check("x", ip("10.2.0.1")).is_err());
        assert!(tenant.check("Relay.Corp.Example.", ip("192.168.0.9")).is_ok());
        assert!(tenant.check("x", ip("::1")).is_ok());
        assert!(tenant.check("x", ip("127.0.0.1")).is_err());
    }

    #[test]
    fn filter_keeps_the_permitted_addresses() {
        let tenant = NetPolicy::restricted(Arc::new(AllowList::default()));
        let mixed = vec!["127.0.0.1:25".parse().unwrap(), "93.184.216.34:25".parse().unwrap()];
        assert_eq!(
            tenant.filter("h", mixed).unwrap(),
            vec!["93.184.216.34:25".parse().unwrap()]
        );
        let internal = vec!["10.0.0.1:25".parse().unwrap()];
        assert_eq!(tenant.filter("h", internal).unwrap_err().kind, "a private address");
    }

    #[test]
    fn url_literals_are_checked() {
        let tenant = NetPolicy::restricted(Arc::new(AllowList::default()));
        assert!(tenant.check_url("http://169.254.169.254/latest/meta-data").is_err());
        assert!(tenant.check_url("http://[::1]:8080/token").is_err());
        assert!(tenant.check_url("https://oauth2.googleapis.com/token").is_ok());
        assert!(tenant.check_url("https://93.184.216.34/token").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_hands_out_only_permitted_addresses() {
        use reqwest::dns::Resolve;
        let tenant = GuardedResolver::new(NetPolicy::restricted(Arc::new(AllowList::default())));
        let err = tenant
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        let platform = GuardedResolver::new(NetPolicy::unrestricted());
        let addrs: Vec<_> = platform.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn allow_list_entries_are_checked() {
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(AllowList::parse("not a host").is_err());
        assert!(AllowList::parse("").unwrap() == AllowList::default());
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    }
}
