//! Finding a source's test server, shared by the harnesses: the suite never skips, so a
//! missing variable is a panic naming the script that starts the servers.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::HarnessResult;

/// The test server URL in the environment variable `var`; panics with how to set it.
pub fn server_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set; run scripts/services.sh start and \
             eval \"$(scripts/services.sh env)\""
        )
    })
}

/// The address `url`'s host and port (or `default_port`) resolve to: what a
/// [`FaultProxy`](super::FaultProxy) forwards to.
pub fn upstream_of(url: &str, default_port: u16) -> SocketAddr {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("`{url}` is not a URL: {e}"));
    (
        parsed.host_str().expect("the test URL names a host"),
        parsed.port().unwrap_or(default_port),
    )
        .to_socket_addrs()
        .expect("resolve the test server")
        .next()
        .expect("the test server has an address")
}

/// `url` with its host and port replaced by `proxy`'s, so a source connects through the
/// fault proxy.
pub fn through_proxy(url: &str, proxy: SocketAddr) -> HarnessResult<String> {
    let mut url = url::Url::parse(url)?;
    url.set_host(Some(&proxy.ip().to_string()))?;
    url.set_port(Some(proxy.port()))
        .map_err(|()| "the test URL takes a port")?;
    Ok(url.into())
}
