//! Small text helpers every resource uses, once: one-line rendering of messages and error
//! chains, `Link` header paging, SHA-256 in hex. (ring is linked already as the TLS provider.)

/// Whitespace runs (newlines included) as single spaces: a server's message on one log line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its sources on one line (`a: b: c`), skipping a source whose text its parent
/// already carries (reqwest and hyper repeat themselves). `{:#}` does this for `anyhow`; this is
/// for the `std::error::Error` of a library.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The `rel="next"` URL of a `Link` header (`<URL>; rel="next", <URL>; rel="last"`), as
/// registries and GitHub page their lists.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            Some(l.get(start..end)?.to_owned())
        })
}

/// SHA-256 of `bytes` in lowercase hex (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_do_what_they_say() {
        assert_eq!(one_line(" a\n  b\tc "), "a b c");
        assert_eq!(
            next_link(r#"</v2/x/tags/list?n=2&last=b>; rel="next", </x>; rel="last""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="last""#), None);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let io = std::io::Error::other("inner");
        assert_eq!(error_chain(&io), "inner");
    }
}
