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
        /// How `/v1/credentials` vends for this backend, when it does.
        vending: Option<S3Vending>,
    },
    Azure {
        account: String,
        endpoint: BlobEndpoint,
        credentials: CredentialSource,
    },
}

/// Where an S3 backend's vended credentials come from: STS `AssumeRole` into `role_arn`, signed
/// with the backend's own credentials, at `sts_endpoint`, with a session policy that narrows the
/// role to the caller's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Vending {
    pub role_arn: String,
    /// The STS endpoint (a base URL): `vend_sts_endpoint`, else AWS's regional STS for AWS's S3,
    /// else the S3 endpoint itself (MinIO and SeaweedFS answer STS there).
    pub sts_endpoint: String,
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
    vend_role_arn: Option<String>,
    vend_sts_endpoint: Option<String>,
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
            ("vend_role_arn", entry.vend_role_arn.is_some()),
            ("vend_sts_endpoint", entry.vend_sts_endpoint.is_some()),
        ];
        let allowed: &[&str] = match entry.kind {
            BackendKind::Gcs => &[],
            BackendKind::S3 => &[
                "endpoint",
                "region",
                "url_style",
                "credentials",
                "vend_role_arn",
                "vend_sts_endpoint",
            ],
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
                let vending = s3_vending(
                    &entry.endpoint,
                    &region,
                    entry.vend_role_arn,
                    entry.vend_sts_endpoint,
                )?;
                BackendSettings::S3 {
                    endpoint,
                    region,
                    url_style,
                    credentials,
                    vending,
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

/// `vend_role_arn` and `vend_sts_endpoint`, checked.
fn s3_vending(
    endpoint: &Option<String>,
    region: &str,
    role_arn: Option<String>,
    sts_endpoint: Option<String>,
) -> Result<Option<S3Vending>, String> {
    let Some(role_arn) = role_arn else {
        return match sts_endpoint {
            Some(_) => Err(
                "vend_sts_endpoint: set vend_role_arn too, the role vended credentials assume"
                    .into(),
            ),
            None => Ok(None),
        };
    };
    // arn:PARTITION:iam::ACCOUNT:role/NAME (AWS, MinIO, SeaweedFS all write roles so).
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "iam"
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
        && role_arn.bytes().all(|b| b.is_ascii_graphic());
    if !well_formed {
        return Err(format!(
            "vend_role_arn {role_arn:?}: an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME"
        ));
    }
    let sts_endpoint = match (sts_endpoint, endpoint) {
        (Some(sts), _) => sts,
        (None, Some(s3)) => s3.clone(),
        (None, None) if region == "auto" => {
            return Err("vend_sts_endpoint: required where the region is \"auto\"".into());
        }
        (None, None) => format!("https://sts.{region}.amazonaws.com"),
    };
    let url = url::Url::parse(&sts_endpoint)
        .map_err(|e| format!("vend_sts_endpoint {sts_endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(format!(
            "vend_sts_endpoint {sts_endpoint:?}: an http(s) base URL"
        ));
    }
    Ok(Some(S3Vending {
        role_arn,
        sts_endpoint: sts_endpoint.trim_end_matches('/').to_owned(),
    }))
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
            (
                "s3 vending through AWS STS",
                "kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"\nvend_role_arn = \"arn:aws:iam::123456789012:role/vended\"",
                Ok(()),
            ),
            (
                "s3 vending with a bad role",
                "kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"\nvend_role_arn = \"vended\"",
                Err("vend_role_arn"),
            ),
            (
                "s3 with an STS endpoint and no role",
                "kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"\nvend_sts_endpoint = \"https://sts.example\"",
                Err("set vend_role_arn too"),
            ),
            (
                "azure with a vending role",
                "kind = \"azure\"\naccount = \"acct\"\ncredentials = \"env\"\nvend_role_arn = \"arn:aws:iam::1:role/r\"",
                Err("vend_role_arn does not apply"),
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
    fn vending_goes_to_regional_sts_on_aws_and_to_the_endpoint_elsewhere() {
        let vending = |toml: &str| match parse(toml).expect("backend").settings {
            BackendSettings::S3 { vending, .. } => vending.expect("vending").sts_endpoint,
            _ => panic!("not s3"),
        };
        let role = "vend_role_arn = \"arn:aws:iam::1:role/r\"";
        assert_eq!(
            vending(&format!(
                "kind = \"s3\"\nregion = \"eu-west-1\"\ncredentials = \"env\"\n{role}"
            )),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            vending(&format!(
                "kind = \"s3\"\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:8333/\"\ncredentials = \"env\"\n{role}"
            )),
            "http://127.0.0.1:8333"
        );
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
