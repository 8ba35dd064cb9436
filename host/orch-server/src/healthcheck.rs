//! `healthcheck`: one HTTP GET of the gateway's liveness endpoint, so a
//! container's `HEALTHCHECK` needs no curl in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hyper::StatusCode;
use hyper_util::rt::TokioIo;

/// Probed when neither a URL nor a readable configuration is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/livez";

/// The whole probe (connect, request, response head) must fit in this.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The URL to probe: `url` when given; else `/livez` on the listen address
/// of `config` (file plus `ORCH_*` variables, as `serve` reads it; an
/// unspecified address such as `0.0.0.0` is reached on loopback); else
/// [`DEFAULT_URL`].
pub fn target(url: Option<&str>, config: Option<&Path>) -> String {
    if let Some(url) = url {
        return url.to_string();
    }
    match config.and_then(orch_core::config::Config::listen_address) {
        Some(listen) => format!("http://{}/livez", reachable(listen)),
        None => DEFAULT_URL.to_string(),
    }
}

/// Where a client on the same host reaches a listener on `listen`.
fn reachable(mut listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => listen.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => listen.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    listen
}

/// `GET url` (plain `http://` only) within `timeout`: the response status,
/// or why there was none.
pub async fn probe(url: &str, timeout: Duration) -> Result<StatusCode, String> {
    tokio::time::timeout(timeout, get(url))
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

async fn get(url: &str) -> Result<StatusCode, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be probed".into());
    }
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err("the URL has no host".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let connection = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONNECTION, "close")
        .body(String::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"));
    connection.abort();
    Ok(response?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        let at = |s: &str| reachable(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(at("[::]:9000"), "[::1]:9000");
        assert_eq!(at("10.1.2.3:80"), "10.1.2.3:80");
        assert_eq!(target(Some("http://x:1/y"), None), "http://x:1/y");
        assert_eq!(target(None, None), DEFAULT_URL);
    }
}
