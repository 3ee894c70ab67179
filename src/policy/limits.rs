//! A bucket class's limits on what may be signed for it: URL lifetime, upload size, content type.
//! Checked after [`decide`](super::decide) allowed the request; a request beyond a limit is a
//! denial the audit records, answered 400 with the limit's `code`.

use super::BucketClass;

/// A limit of the bucket's class that a request goes beyond.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("expires_in {asked} is above this bucket's limit of {limit} seconds")]
    Ttl { asked: i64, limit: u32 },
    #[error("content type {0:?} is not allowed here")]
    ContentType(String),
    #[error("this bucket needs a content_type for uploads")]
    ContentTypeRequired,
    #[error("max_size {asked} is above this bucket's limit of {limit} bytes")]
    MaxSize { asked: u64, limit: u64 },
    #[error("size {asked} is above this upload's limit of {limit} bytes")]
    Size { asked: u64, limit: u64 },
}

impl LimitExceeded {
    /// The problem `code` the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Ttl { .. } => "ttl_exceeds_limit",
            Self::ContentType(_) => "content_type_not_allowed",
            Self::ContentTypeRequired => "content_type_required",
            Self::MaxSize { .. } => "max_size_exceeds_limit",
            Self::Size { .. } => "size_exceeds_limit",
        }
    }
}

/// The longest lifetime a URL for a bucket of `class` may have: the class's limit, and never
/// above what the signer can give (`signer_max`: 7 days with a key, 12 hours keyless).
pub fn ttl_limit(class: &BucketClass, signer_max: u32) -> u32 {
    class.max_ttl.as_secs().min(signer_max)
}

/// The read reuse window of a URL living `lifetime` seconds in `class`: the setting, but at
/// most a quarter of the class's longest lifetime and a quarter of this URL's own, so that a
/// reused URL is valid for at least three quarters of what was asked (0: no reuse).
pub fn reuse_window(setting: u32, class: &BucketClass, lifetime: u32) -> u32 {
    setting.min(class.max_ttl.as_secs() / 4).min(lifetime / 4)
}

/// Refuses a lifetime of `asked` seconds above `limit`.
pub fn check_ttl(asked: i64, limit: u32) -> Result<(), LimitExceeded> {
    if asked > i64::from(limit) {
        return Err(LimitExceeded::Ttl { asked, limit });
    }
    Ok(())
}

/// Why vended credentials cannot have the lifetime asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeRefused {
    #[error("duration {asked} is outside what this bucket's storage vends: {min} to {max} seconds")]
    Backend { asked: u64, min: u64, max: u64 },
    #[error("duration {asked} is above this bucket's limit of {limit} seconds")]
    Class { asked: u64, limit: u64 },
    #[error(
        "you hold this access here only for {left} more seconds (through grants that end then), less than the {asked} seconds asked for"
    )]
    Holding { asked: u64, left: u64 },
}

impl LifetimeRefused {
    /// The problem `code` the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Backend { .. } => "invalid_duration",
            Self::Class { .. } => "ttl_exceeds_limit",
            Self::Holding { .. } => "expiry_exceeds_holding",
        }
    }
}

/// The lifetime of vended credentials, in seconds: `asked`, else `default` shortened to fit.
/// Never above the class's `class_limit`, never beyond the end of the caller's holding
/// (`holding_left` seconds; `None` when it does not end), and within what the backend can vend
/// (`backend`: shortest, longest). A default that cannot fit is refused as the limit that binds
/// it would refuse an asked lifetime, never stretched.
pub fn credential_lifetime(
    asked: Option<u64>,
    default: u64,
    class_limit: u64,
    holding_left: Option<u64>,
    backend: (u64, u64),
) -> Result<u64, LifetimeRefused> {
    let (min, max) = backend;
    let lifetime = match asked {
        Some(asked) => asked,
        None => default
            .min(class_limit)
            .min(max)
            .min(holding_left.unwrap_or(u64::MAX))
            // The shortest the backend vends: refused below if nothing allows it.
            .max(min),
    };
    if !(min..=max).contains(&lifetime) {
        return Err(LifetimeRefused::Backend {
            asked: lifetime,
            min,
            max,
        });
    }
    if lifetime > class_limit {
        return Err(LifetimeRefused::Class {
            asked: lifetime,
            limit: class_limit,
        });
    }
    match holding_left {
        Some(left) if lifetime > left => Err(LifetimeRefused::Holding {
            asked: lifetime,
            left,
        }),
        _ => Ok(lifetime),
    }
}

/// Checks an upload's content type and size against `class`; the size limit the upload is
/// signed with: the one asked for, else the class's, else none.
pub fn check_upload(
    class: &BucketClass,
    content_type: Option<&str>,
    max_size: Option<u64>,
) -> Result<Option<u64>, LimitExceeded> {
    match content_type {
        Some(ct) if !class.allows_content_type(ct) => {
            return Err(LimitExceeded::ContentType(ct.to_owned()));
        }
        // A class that allows any type allows an upload that names none.
        None if !class.allows_content_type("x-unspecified/x-unspecified") => {
            return Err(LimitExceeded::ContentTypeRequired);
        }
        _ => {}
    }
    match (max_size, class.max_object_size) {
        (Some(asked), Some(limit)) if asked > limit => Err(LimitExceeded::MaxSize { asked, limit }),
        (asked, limit) => Ok(asked.or(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Classes;

    fn class(content_types: &str, max_size: Option<u64>) -> BucketClass {
        let max = max_size.map_or(String::new(), |m| format!("max_object_size = {m}\n"));
        let toml = format!(
            r#"
            levels = ["internal"]
            [classes.personal]
            backend_bucket = "bucket-b"
            prefix = "u/{{owner}}/"
            max_ttl_seconds = 60
            content_types = ["*/*"]
            classification = "internal"
            release = "delete"
            [classes.c]
            backend_bucket = "bucket-b"
            prefix = "p/{{project}}/"
            max_ttl_seconds = 3600
            content_types = [{content_types}]
            classification = "internal"
            release = "retain"
            {max}"#
        );
        Classes::parse(&toml)
            .expect("test class")
            .get("c")
            .expect("class c")
            .clone()
    }

    #[test]
    fn reuse_windows_keep_three_quarters_of_every_lifetime() {
        // Class c allows an hour: a window of at most 900 s.
        let c = class("\"*/*\"", None);
        assert_eq!(reuse_window(60, &c, 900), 60);
        assert_eq!(reuse_window(0, &c, 900), 0, "0 turns reuse off");
        assert_eq!(
            reuse_window(3600, &c, 3600),
            900,
            "a quarter of the class's limit"
        );
        assert_eq!(
            reuse_window(60, &c, 100),
            25,
            "a quarter of the URL's own lifetime"
        );
        assert_eq!(reuse_window(60, &c, 3), 0, "too short a URL to reuse");
        for lifetime in 1..=3600 {
            let window = reuse_window(600, &c, lifetime);
            assert!(
                lifetime - window >= lifetime * 3 / 4,
                "{lifetime}: {window}"
            );
        }
    }

    #[test]
    fn credential_lifetimes_never_exceed_class_holding_or_backend() {
        let sts = (900, 43_200);
        let any = (1, 3600);
        let cases = [
            ("default within everything", None, 3600, None, any, Ok(900)),
            (
                "default shortened by the class",
                None,
                300,
                None,
                any,
                Ok(300),
            ),
            (
                "default shortened by the holding",
                None,
                3600,
                Some(120),
                any,
                Ok(120),
            ),
            ("asked within", Some(1800), 3600, Some(2000), sts, Ok(1800)),
            (
                "asked above the class",
                Some(3601),
                3600,
                None,
                sts,
                Err(LifetimeRefused::Class {
                    asked: 3601,
                    limit: 3600,
                }),
            ),
            (
                "asked beyond the holding",
                Some(1000),
                3600,
                Some(999),
                sts,
                Err(LifetimeRefused::Holding {
                    asked: 1000,
                    left: 999,
                }),
            ),
            (
                "asked below STS's shortest",
                Some(60),
                3600,
                None,
                sts,
                Err(LifetimeRefused::Backend {
                    asked: 60,
                    min: 900,
                    max: 43_200,
                }),
            ),
            (
                "a holding shorter than STS's shortest is not stretched",
                None,
                3600,
                Some(600),
                sts,
                Err(LifetimeRefused::Holding {
                    asked: 900,
                    left: 600,
                }),
            ),
            (
                "a class shorter than STS's shortest is not stretched",
                None,
                300,
                None,
                sts,
                Err(LifetimeRefused::Class {
                    asked: 900,
                    limit: 300,
                }),
            ),
        ];
        for (name, asked, class, holding, backend, want) in cases {
            assert_eq!(
                credential_lifetime(asked, 900, class, holding, backend),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn ttl() {
        let hour = class(r#""*/*""#, None);
        let cases = [
            ("the class's limit", 3600, 604_800, Ok(())),
            ("one above", 3601, 604_800, Err(3600)),
            ("the signer's lower limit binds", 3600, 1800, Err(1800)),
            ("one second", 1, 1800, Ok(())),
        ];
        for (name, asked, signer_max, want) in cases {
            let limit = ttl_limit(&hour, signer_max);
            let got = check_ttl(asked, limit);
            let want = want.map_err(|limit| LimitExceeded::Ttl { asked, limit });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn uploads() {
        let images = class(r#""image/*", "application/pdf""#, Some(1000));
        let anything = class(r#""*/*""#, None);
        let cases: [(
            &str,
            &BucketClass,
            Option<&str>,
            Option<u64>,
            Result<Option<u64>, LimitExceeded>,
        ); 9] = [
            (
                "a listed family",
                &images,
                Some("image/png"),
                None,
                Ok(Some(1000)),
            ),
            (
                "parameters and case aside",
                &images,
                Some("Application/PDF; charset=x"),
                Some(10),
                Ok(Some(10)),
            ),
            (
                "an unlisted type",
                &images,
                Some("text/html"),
                None,
                Err(LimitExceeded::ContentType("text/html".into())),
            ),
            (
                "no type where types are listed",
                &images,
                None,
                None,
                Err(LimitExceeded::ContentTypeRequired),
            ),
            ("no type where any goes", &anything, None, None, Ok(None)),
            (
                "not a type at all",
                &images,
                Some("image"),
                None,
                Err(LimitExceeded::ContentType("image".into())),
            ),
            (
                "at the size limit",
                &images,
                Some("image/png"),
                Some(1000),
                Ok(Some(1000)),
            ),
            (
                "above the size limit",
                &images,
                Some("image/png"),
                Some(1001),
                Err(LimitExceeded::MaxSize {
                    asked: 1001,
                    limit: 1000,
                }),
            ),
            (
                "no limit, none asked",
                &anything,
                Some("x/y"),
                None,
                Ok(None),
            ),
        ];
        for (name, class, content_type, max_size, want) in cases {
            assert_eq!(check_upload(class, content_type, max_size), want, "{name}");
        }
    }

    #[test]
    fn codes_are_stable() {
        let codes = [
            LimitExceeded::Ttl { asked: 2, limit: 1 }.code(),
            LimitExceeded::ContentType(String::new()).code(),
            LimitExceeded::ContentTypeRequired.code(),
            LimitExceeded::MaxSize { asked: 2, limit: 1 }.code(),
            LimitExceeded::Size { asked: 2, limit: 1 }.code(),
        ];
        assert_eq!(
            codes,
            [
                "ttl_exceeds_limit",
                "content_type_not_allowed",
                "content_type_required",
                "max_size_exceeds_limit",
                "size_exceeds_limit"
            ]
        );
    }
}
