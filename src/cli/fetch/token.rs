//! The bearer token of a run: read from its file, and what it says about itself. Only the
//! broker can verify a token; the CLI reads its shape and expiry to say what went wrong in
//! words a person can act on.

use base64::Engine;
use serde_json::Value;
use std::path::Path;

/// A token and the file it came from (named in every message about it).
pub(crate) struct Token {
    pub(crate) secret: String,
    /// Where it came from: a file, or an environment variable.
    pub(crate) file: String,
}

impl Token {
    /// Reads the token in `path`, refusing one that is empty, not a JWT, or already expired.
    pub(crate) fn read(path: &Path) -> Result<Self, String> {
        let file = path.display().to_string();
        let secret = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {file}: {e}"))?
            .trim()
            .to_owned();
        if secret.is_empty() {
            return Err(format!("the token file {file} is empty"));
        }
        if token_shape(&secret) == TokenShape::Malformed {
            return Err(format!(
                "the token in {file} is malformed (not a JWT): put the access token itself in the file and run the same command again"
            ));
        }
        if let Some(exp) = expired_at(&secret) {
            return Err(format!(
                "the token in {file} has expired: it expired at {}; get a new one and run the same command again",
                rfc3339(exp)
            ));
        }
        Ok(Self { secret, file })
    }

    /// Reads the token in the environment variable `name`, refused as [`Self::read`] refuses.
    pub(crate) fn from_env(name: &str) -> Result<Self, String> {
        let secret = std::env::var(name)
            .map_err(|_| format!("no token: give --token-file, or set {name}"))?
            .trim()
            .to_owned();
        let source = format!("${name}");
        if secret.is_empty() {
            return Err(format!("{source} is empty"));
        }
        if token_shape(&secret) == TokenShape::Malformed {
            return Err(format!(
                "the token in {source} is malformed (not a JWT): set it to the access token itself"
            ));
        }
        if let Some(exp) = expired_at(&secret) {
            return Err(format!(
                "the token in {source} has expired: it expired at {}; get a new one",
                rfc3339(exp)
            ));
        }
        Ok(Self {
            secret,
            file: source,
        })
    }

    /// Why the broker refused this token after `written` URLs: expired during the run, or
    /// refused for a reason only the broker knows.
    pub(super) fn refused(&self, written: u64) -> String {
        let file = &self.file;
        match expired_at(&self.secret) {
            Some(exp) => format!(
                "the token in {file} expired at {} after {written} URLs; get a new token and run the same command again to resume",
                rfc3339(exp)
            ),
            None => format!(
                "the broker refused the token in {file} (revoked, wrong audience or issuer) after {written} URLs; get a new token and run the same command again to resume"
            ),
        }
    }
}

/// What a token says about itself, read without verifying it.
#[derive(Debug, PartialEq)]
enum TokenShape {
    /// Not a JWT: not three dot-separated base64url parts whose first two are JSON objects.
    Malformed,
    /// A JWT, with its `exp` when it has one.
    Jwt { exp: Option<i64> },
}

fn token_shape(token: &str) -> TokenShape {
    let parts: Vec<&str> = token.split('.').collect();
    let object = |part: &str| -> Option<serde_json::Map<String, Value>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()?;
        match serde_json::from_slice::<Value>(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let [header, payload, _signature] = parts.as_slice() else {
        return TokenShape::Malformed;
    };
    match (object(header), object(payload)) {
        (Some(_), Some(claims)) => TokenShape::Jwt {
            exp: claims.get("exp").and_then(Value::as_i64),
        },
        _ => TokenShape::Malformed,
    }
}

/// The `exp` of a token if it has passed.
fn expired_at(token: &str) -> Option<i64> {
    match token_shape(token) {
        TokenShape::Jwt { exp: Some(exp) }
            if exp <= time::OffsetDateTime::now_utc().unix_timestamp() =>
        {
            Some(exp)
        }
        _ => None,
    }
}

/// A Unix time as RFC 3339.
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{unix} (Unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(payload))
    }

    #[test]
    fn tokens_that_are_not_jwts_are_malformed() {
        for token in [
            "nonsense",
            "a.b",
            "a.b.c",
            "a.b.c.d.e",
            &jwt(r#"{"alg":"RS256"}"#, "not json"),
            &jwt(r#"{"alg":"RS256"}"#, "[1, 2]"),
            &jwt("not json", r#"{"exp":1}"#),
            "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        ] {
            assert_eq!(token_shape(token), TokenShape::Malformed, "{token}");
        }
    }

    #[test]
    fn jwts_give_their_expiry() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expired = jwt(r#"{"alg":"RS256"}"#, &format!(r#"{{"exp":{}}}"#, now - 60));
        assert_eq!(
            token_shape(&expired),
            TokenShape::Jwt {
                exp: Some(now - 60)
            }
        );
        assert_eq!(expired_at(&expired), Some(now - 60));
        let valid = jwt(r#"{"alg":"RS256"}"#, &format!(r#"{{"exp":{}}}"#, now + 60));
        assert_eq!(expired_at(&valid), None);
        let no_exp = jwt(r#"{"alg":"RS256"}"#, r#"{"sub":"x"}"#);
        assert_eq!(token_shape(&no_exp), TokenShape::Jwt { exp: None });
        assert_eq!(expired_at(&no_exp), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
