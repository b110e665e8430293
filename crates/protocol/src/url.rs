//! The little URL knowledge every resource needs to refuse cleartext credentials: whether a
//! URL's host is this machine (plain HTTP is fine there, and only there).

use std::net::IpAddr;

/// The host of an `http(s)://` URL, without port, user info or brackets; `None` if the URL has
/// no authority.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `url` names a loopback host.
pub fn is_loopback_url(url: &str) -> bool {
    host_of(url).is_some_and(|h| is_loopback_host(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised_and_lookalikes_are_not() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/",
            "http://[::1]:6443",
            "http://127.9.9.9",
            "http://user:pw@127.0.0.1:1/",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example",
            "http://evil.example/127.0.0.1",
            "http://127.0.0.1@evil.example/",
            "http://10.0.0.1",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
