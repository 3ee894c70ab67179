//! Percent-encoding as GCS V4 canonical requests want it: only RFC 3986 unreserved characters
//! stay as they are, bytes are written as `%XX` with upper-case hex.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::fmt::Write;

/// Everything but `A-Z a-z 0-9 - . _ ~` is encoded: query names and values.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`QUERY`], but `/` separates path segments and stays.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// Appends `s` encoded for a query name or value.
pub(crate) fn push_query(out: &mut String, s: &str) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", utf8_percent_encode(s, QUERY));
}

/// `s` encoded for a query name or value.
pub(crate) fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_query(&mut out, s);
    out
}

/// Appends `s` encoded for a URL path, keeping `/`.
pub(crate) fn push_path(out: &mut String, s: &str) {
    let _ = write!(out, "{}", utf8_percent_encode(s, PATH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding_matches_the_conformance_example() {
        assert_eq!(query("aA0é/=%-_.~"), "aA0%C3%A9%2F%3D%25-_.~");
        assert_eq!(query("~ ._-%=/é0Aa"), "~%20._-%25%3D%2F%C3%A90Aa");
    }

    #[test]
    fn path_keeps_slashes() {
        let mut out = String::new();
        push_path(&mut out, "/a b/amper&sand/?#");
        assert_eq!(out, "/a%20b/amper%26sand/%3F%23");
    }
}
