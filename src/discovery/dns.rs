//! The DNS resolver the SRV and MX sources share: the system's servers, one
//! attempt within the caller's timeout.

use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::time::Duration;

/// The resolver type the DNS sources take.
pub(crate) type Resolver = hickory_resolver::TokioResolver;

/// A resolver from the system configuration (resolv.conf), with one attempt
/// per query so a dead server costs one timeout.
pub(super) fn build_resolver(timeout: Duration) -> Result<Resolver, String> {
    let mut builder = Resolver::builder_tokio().map_err(|e| e.to_string())?;
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    builder.build().map_err(|e| e.to_string())
}

/// A resolver that asks `server` (an `ip:port`, `HERALD_DNS_SERVER`) when one
/// is configured, else the system's; EDNS0, so a long TXT record (an
/// RSA-2048 DKIM key) fits in one UDP answer.
pub(crate) fn resolver_at(server: Option<std::net::SocketAddr>, timeout: Duration) -> Result<Resolver, String> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let Some(server) = server else {
        let mut builder = Resolver::builder_tokio().map_err(|e| e.to_string())?;
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.edns0 = true;
        return builder.build().map_err(|e| e.to_string());
    };
    let mut ns = NameServerConfig::udp_and_tcp(server.ip());
    for c in &mut ns.connections {
        c.port = server.port();
    }
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.edns0 = true;
    // A check must see a record just published, not one cached a minute ago.
    opts.cache_size = 0;
    builder.build().map_err(|e| e.to_string())
}

/// The answers of type `record_type` for `name`; the error is a note fragment
/// ("no record", "no answer within 5s", the resolver's own words).
pub(crate) async fn lookup(
    resolver: &Resolver,
    name: &str,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Vec<RData>, String> {
    // Fully qualified, so the search domains of resolv.conf are not tried.
    let lookup = tokio::time::timeout(timeout, resolver.lookup(format!("{name}."), record_type))
        .await
        .map_err(|_| format!("no answer within {}s", timeout.as_secs_f32()))?
        .map_err(|e| describe_dns_error(&e))?;
    Ok(lookup.answers().iter().map(|record| record.data.clone()).collect())
}

fn describe_dns_error(e: &NetError) -> String {
    if e.is_no_records_found() {
        "no record".into()
    } else {
        e.to_string()
    }
}

/// A resolver that asks a loopback DNS server answering every query with
/// those of `records` whose type was asked: the lookups are tested without a
/// network.
#[cfg(test)]
pub(super) async fn loopback_resolver(records: Vec<hickory_resolver::proto::rr::Record>) -> Resolver {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::op::{Message, OpCode};

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let query = Message::from_vec(&buf[..n]).unwrap();
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            for q in &query.queries {
                reply.add_query(q.clone());
                for r in records.iter().filter(|r| r.record_type() == q.query_type()) {
                    reply.add_answer(r.clone());
                }
            }
            socket.send_to(&reply.to_vec().unwrap(), peer).await.unwrap();
        }
    });
    let mut server = NameServerConfig::udp([127, 0, 0, 1].into());
    server.connections[0].port = port;
    let config = ResolverConfig::from_name_servers(vec![server]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().attempts = 1;
    builder.build().unwrap()
}
