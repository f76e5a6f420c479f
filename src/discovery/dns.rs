//! The DNS resolver the SRV and MX sources share: the system's servers, one
//! attempt within the caller's timeout.

use std::time::Duration;

/// The resolver type the DNS sources take.
pub(super) type Resolver = hickory_resolver::TokioResolver;

/// A resolver from the system configuration (resolv.conf), with one attempt
/// per query so a dead server costs one timeout.
pub(super) fn build_resolver(timeout: Duration) -> Result<Resolver, String> {
    let mut builder = Resolver::builder_tokio().map_err(|e| e.to_string())?;
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    Ok(builder.build())
}

/// A DNS failure as a note fragment; "no record" rather than the resolver's
/// wording for the common empty answer.
pub(super) fn describe_dns_error(e: &hickory_resolver::ResolveError) -> String {
    if e.is_no_records_found() {
        "no record".into()
    } else {
        e.to_string()
    }
}
