//! Storage backends, named in `classes.toml` (`[backends.NAME]`) and pointed at by bucket classes
//! (`backend = "NAME"`): which protocol a class's URLs speak, where its storage is and where the
//! broker's credentials for it come from. A class that names no backend is on `gcs`, the
//! backend the broker had before backends existed (signed with `BROKER_SIGNING_CREDENTIALS` or
//! keylessly, at `BROKER_STORAGE_ENDPOINT` or Google), so existing files keep working.

use crate::signing::{BlobEndpoint, Endpoint, Scheme, UrlStyle, s3::check_region};
use serde::Deserialize;
use std::path::PathBuf;

/// The backend a class without `backend` is on.
pub const DEFAULT_BACKEND: &str = "gcs";

/// Which storage, and so which signing protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Google Cloud Storage: V4 signed URLs.
    Gcs,
    /// S3 and S3-compatible stores: SigV4 presigned URLs.
    S3,
    /// Azure Blob Storage: SAS.
    Azure,
}

impl BackendKind {
    /// As written in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gcs => "gcs",
            Self::S3 => "s3",
            Self::Azure => "azure",
        }
    }

    /// What answers say the client speaks: `gcs-v4`, `s3-sigv4` or `azure-sas`.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Gcs => "gcs-v4",
            Self::S3 => "s3-sigv4",
            Self::Azure => "azure-sas",
        }
    }

    /// Whether a signed upload binds its size on this backend: GCS signs a size range, S3 an
    /// exact `Content-Length` (and a range in POST policies); an Azure SAS binds neither.
    pub fn binds_upload_size(self) -> bool {
        !matches!(self, Self::Azure)
    }

    /// Whether a signed upload binds its content type: signed as a header on GCS and S3; an
    /// Azure SAS cannot carry it.
    pub fn binds_content_type(self) -> bool {
        !matches!(self, Self::Azure)
    }

    /// Checks a bucket (Azure: container) name against the backend's own rules, on top of the
    /// GCS-shaped [`BucketName`](crate::signing::BucketName) every name also is.
    pub fn check_bucket_name(self, name: &str) -> Result<(), String> {
        let lower_digit_dash = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        match self {
            Self::Gcs => Ok(()),
            Self::S3 => {
                let ok = (3..=63).contains(&name.len())
                    && name.bytes().all(|b| lower_digit_dash(b) || b == b'.')
                    && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                    && !name.contains("..")
                    && name.parse::<std::net::Ipv4Addr>().is_err();
                ok.then_some(()).ok_or_else(|| {
                    format!(
                        "{name:?} is not an S3 bucket name: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit, no '..', not an IP address"
                    )
                })
            }
            Self::Azure => {
                let ok = (3..=63).contains(&name.len())
                    && name.bytes().all(lower_digit_dash)
                    && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                    && !name.contains("--");
                ok.then_some(()).ok_or_else(|| {
                    format!(
                        "{name:?} is not an Azure container name: 3-63 of a-z 0-9 -, starting and ending with a letter or digit, no '--'"
                    )
                })
            }
        }
    }
}

/// Where a backend's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// GCS: the broker's own (`BROKER_SIGNING_CREDENTIALS`, or keyless).
    Broker,
    /// A JSON key file: S3 `{"access_key_id", "secret_access_key", "session_token"?}`, Azure
    /// `{"account", "key"}`. Read at start: a replaced file signs after a restart.
    File(PathBuf),
    /// The process environment: S3 `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`; Azure `AZURE_STORAGE_KEY`.
    Env,
    /// Azure: user-delegation keys fetched with the workload's Entra ID token (keyless).
    EntraId,
}

/// One configured backend.
#[derive(Clone, Debug)]
pub struct Backend {
    pub name: String,
    pub kind: BackendKind,
    pub settings: BackendSettings,
}

/// What each kind of backend needs.
#[derive(Clone, Debug)]
pub enum BackendSettings {
    /// The broker's GCS settings (`BROKER_STORAGE_ENDPOINT`, `BROKER_SIGNING_CREDENTIALS`).
    Gcs,
    S3 {
        endpoint: Endpoint,
        region: String,
        url_style: UrlStyle,
        credentials: CredentialSource,
    },
    Azure {
        account: String,
        endpoint: BlobEndpoint,
        credentials: CredentialSource,
    },
}

/// `[backends.NAME]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackendEntry {
    kind: BackendKind,
    endpoint: Option<String>,
    region: Option<String>,
    url_style: Option<StyleEntry>,
    account: Option<String>,
    credentials: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StyleEntry {
    Path,
    VirtualHosted,
}

impl Backend {
    /// The backend a class without `backend` is on.
    pub fn default_gcs() -> Self {
        Self {
            name: DEFAULT_BACKEND.to_owned(),
            kind: BackendKind::Gcs,
            settings: BackendSettings::Gcs,
        }
    }

    /// Checks one `[backends.NAME]` entry; the message names the field to fix.
    pub(super) fn parse(name: &str, entry: BackendEntry) -> Result<Self, String> {
        let fields = [
            ("endpoint", entry.endpoint.is_some()),
            ("region", entry.region.is_some()),
            ("url_style", entry.url_style.is_some()),
            ("account", entry.account.is_some()),
            ("credentials", entry.credentials.is_some()),
        ];
        let allowed: &[&str] = match entry.kind {
            BackendKind::Gcs => &[],
            BackendKind::S3 => &["endpoint", "region", "url_style", "credentials"],
            BackendKind::Azure => &["endpoint", "account", "credentials"],
        };
        if let Some((field, _)) = fields
            .iter()
            .find(|(field, set)| *set && !allowed.contains(field))
        {
            let why = match entry.kind {
                BackendKind::Gcs => {
                    " (a gcs backend uses BROKER_STORAGE_ENDPOINT and BROKER_SIGNING_CREDENTIALS)"
                }
                _ => "",
            };
            return Err(format!(
                "{field} does not apply to kind {:?}{why}",
                entry.kind.as_str()
            ));
        }
        let credentials = entry
            .credentials
            .as_deref()
            .map(|source| credential_source(entry.kind, source))
            .transpose()?;
        let settings = match entry.kind {
            BackendKind::Gcs => BackendSettings::Gcs,
            BackendKind::S3 => {
                let region = entry
                    .region
                    .ok_or("region: required for s3 (e.g. us-east-1, or auto for R2)")?;
                check_region(&region).map_err(|e| format!("region: {e}"))?;
                let endpoint = match &entry.endpoint {
                    Some(endpoint) => Endpoint::custom(endpoint, Scheme::Https),
                    None => Endpoint::aws(&region, Scheme::Https),
                }
                .map_err(|e| format!("endpoint: {e}"))?;
                let url_style = match entry.url_style {
                    None | Some(StyleEntry::Path) => UrlStyle::Path,
                    Some(StyleEntry::VirtualHosted) => UrlStyle::VirtualHosted,
                };
                let credentials = credentials
                    .ok_or("credentials: required for s3: \"file:/path/to/key.json\" or \"env\"")?;
                BackendSettings::S3 {
                    endpoint,
                    region,
                    url_style,
                    credentials,
                }
            }
            BackendKind::Azure => {
                let account = entry.account.ok_or("account: required for azure")?;
                let endpoint = match &entry.endpoint {
                    Some(endpoint) => BlobEndpoint::parse(endpoint),
                    None => BlobEndpoint::public(&account),
                }
                .map_err(|e| format!("endpoint: {e}"))?;
                let credentials = credentials.ok_or(
                    "credentials: required for azure: \"file:/path/to/key.json\", \"env\" or \"entra-id\"",
                )?;
                BackendSettings::Azure {
                    account,
                    endpoint,
                    credentials,
                }
            }
        };
        Ok(Self {
            name: name.to_owned(),
            kind: entry.kind,
            settings,
        })
    }
}

fn credential_source(kind: BackendKind, source: &str) -> Result<CredentialSource, String> {
    let source = match source {
        "env" => CredentialSource::Env,
        "entra-id" if kind == BackendKind::Azure => CredentialSource::EntraId,
        "entra-id" => return Err("credentials: \"entra-id\" is for azure backends".into()),
        file => match file.strip_prefix("file:") {
            Some(path) if std::path::Path::new(path).is_absolute() => {
                CredentialSource::File(PathBuf::from(path))
            }
            _ => {
                return Err(format!(
                    "credentials {source:?}: \"file:/absolute/path.json\", \"env\"{}",
                    if kind == BackendKind::Azure {
                        " or \"entra-id\""
                    } else {
                        ""
                    }
                ));
            }
        },
    };
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Backend, String> {
        let entry: BackendEntry = toml::from_str(toml).map_err(|e| e.to_string())?;
        Backend::parse("b", entry)
    }

    #[test]
    fn each_kind_takes_its_own_fields_and_refuses_the_others() {
        let cases = [
            ("a bare gcs", r#"kind = "gcs""#, Ok(())),
            (
                "gcs with credentials",
                "kind = \"gcs\"\ncredentials = \"env\"",
                Err("credentials does not apply"),
            ),
            (
                "s3 on AWS",
                "kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"",
                Ok(()),
            ),
            (
                "s3 without region",
                "kind = \"s3\"\ncredentials = \"env\"",
                Err("region: required"),
            ),
            (
                "s3 with a bad region",
                "kind = \"s3\"\nregion = \"eu/west\"\ncredentials = \"env\"",
                Err("region:"),
            ),
            (
                "s3 without credentials",
                "kind = \"s3\"\nregion = \"auto\"",
                Err("credentials: required"),
            ),
            (
                "s3 with an account",
                "kind = \"s3\"\nregion = \"auto\"\naccount = \"a\"\ncredentials = \"env\"",
                Err("account does not apply"),
            ),
            (
                "s3 with entra-id",
                "kind = \"s3\"\nregion = \"auto\"\ncredentials = \"entra-id\"",
                Err("for azure backends"),
            ),
            (
                "s3 with a relative key file",
                "kind = \"s3\"\nregion = \"auto\"\ncredentials = \"file:key.json\"",
                Err("absolute"),
            ),
            (
                "s3 with a bad style",
                "kind = \"s3\"\nregion = \"auto\"\nurl_style = \"sideways\"\ncredentials = \"env\"",
                Err("unknown variant"),
            ),
            (
                "azure keyless",
                "kind = \"azure\"\naccount = \"acct\"\ncredentials = \"entra-id\"",
                Ok(()),
            ),
            (
                "azure with a region",
                "kind = \"azure\"\naccount = \"acct\"\nregion = \"x\"\ncredentials = \"env\"",
                Err("region does not apply"),
            ),
            (
                "azure without account",
                "kind = \"azure\"\ncredentials = \"env\"",
                Err("account: required"),
            ),
            (
                "azure with a bad account",
                "kind = \"azure\"\naccount = \"Not_An_Account\"\ncredentials = \"env\"",
                Err("endpoint:"),
            ),
            (
                "azure with an emulator endpoint",
                "kind = \"azure\"\naccount = \"devstoreaccount1\"\nendpoint = \"http://127.0.0.1:10000/devstoreaccount1\"\ncredentials = \"file:/k.json\"",
                Ok(()),
            ),
            ("an unknown kind", r#"kind = "ftp""#, Err("unknown variant")),
        ];
        for (name, toml, want) in cases {
            match (parse(toml), want) {
                (Ok(_), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn s3_defaults_to_aws_and_path_style() {
        let backend =
            parse("kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"").expect("backend");
        let BackendSettings::S3 {
            endpoint,
            url_style,
            ..
        } = backend.settings
        else {
            panic!("not s3");
        };
        assert_eq!(
            endpoint,
            Endpoint::aws("eu-west-1", Scheme::Https).expect("endpoint")
        );
        assert_eq!(url_style, UrlStyle::Path);
    }

    #[test]
    fn bucket_names_follow_each_backend() {
        let cases = [
            (BackendKind::S3, "my.bucket-1", true),
            (BackendKind::S3, "my_bucket", false),
            (BackendKind::S3, "a..b", false),
            (BackendKind::S3, "192.168.1.1", false),
            (BackendKind::Azure, "my-container", true),
            (BackendKind::Azure, "my.container", false),
            (BackendKind::Azure, "a--b", false),
            (BackendKind::Azure, "ab", false),
            (BackendKind::Gcs, "my_bucket", true),
        ];
        for (kind, name, ok) in cases {
            assert_eq!(kind.check_bucket_name(name).is_ok(), ok, "{kind:?} {name}");
        }
    }
}
