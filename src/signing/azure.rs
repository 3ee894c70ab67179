//! Azure Blob shared access signatures for one blob (`sr=b`): service SAS signed with the
//! account key, and user-delegation SAS signed with a delegation key that an Entra ID identity
//! obtained (fetching it is I/O and lives in `cloud`; signing with it is here).
//!
//! The string-to-sign and the token follow azure-storage-blob's `generate_blob_sas` at the
//! pinned service version [`SERVICE_VERSION`], byte for byte (`tests/backend_known_answers.rs`).

use super::expiry::rfc3339_seconds;
use super::{SigningError, encoding};
use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use time::OffsetDateTime;

/// The storage service version every SAS is signed for (`sv`): the one azure-storage-blob
/// 12.31.1 writes. Pinned, so a library upgrade cannot change what the broker signs.
pub const SERVICE_VERSION: &str = "2026-10-06";

/// The permission letters of a blob SAS, in the order the service requires them.
const PERMISSION_ORDER: &str = "racwdxyltmeopi";

/// A storage account's name and shared key.
#[derive(Clone)]
pub struct AzureCredentials {
    pub account: String,
    key: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    account: String,
    key: String,
}

impl AzureCredentials {
    /// An account and its base64 key.
    pub fn new(account: &str, key_base64: &str) -> Result<Self, SigningError> {
        check_account(account)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_base64.trim())
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| SigningError::KeyFileInvalid("key is not base64".to_owned()))?;
        Ok(Self {
            account: account.to_owned(),
            key,
        })
    }

    /// Reads `{"account", "key"}` (the key base64, as the portal shows it).
    pub fn from_json(bytes: &[u8]) -> Result<Self, SigningError> {
        let file: CredentialsFile = serde_json::from_slice(bytes).map_err(|e| {
            SigningError::KeyFileInvalid(format!("expected {{\"account\", \"key\"}} ({e})"))
        })?;
        Self::new(&file.account, &file.key)
    }

    /// Reads a credentials file as [`from_json`](Self::from_json) does.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        Self::from_json(&super::credentials::read_key_file(path)?)
    }
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredentials")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn check_account(account: &str) -> Result<(), SigningError> {
    let ok = (3..=24).contains(&account.len())
        && account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SigningError::KeyFileInvalid(format!(
            "account {account:?}: 3-24 lowercase letters and digits"
        )))
    }
}

/// A user-delegation key as Get User Delegation Key returns it.
#[derive(Clone)]
pub struct UserDelegationKey {
    pub signed_oid: String,
    pub signed_tid: String,
    pub signed_start: String,
    pub signed_expiry: String,
    pub signed_service: String,
    pub signed_version: String,
    /// The tenant of a delegated user, when the key names one (`skdutid`).
    pub signed_delegated_user_tid: Option<String>,
    value: Vec<u8>,
}

impl UserDelegationKey {
    /// A key from the service's answer; `value` is base64.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        signed_oid: String,
        signed_tid: String,
        signed_start: String,
        signed_expiry: String,
        signed_service: String,
        signed_version: String,
        signed_delegated_user_tid: Option<String>,
        value: &str,
    ) -> Result<Self, SigningError> {
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| SigningError::KeyInvalid("delegation key is not base64".to_owned()))?;
        Ok(Self {
            signed_oid,
            signed_tid,
            signed_start,
            signed_expiry,
            signed_service,
            signed_version,
            signed_delegated_user_tid,
            value,
        })
    }
}

impl fmt::Debug for UserDelegationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDelegationKey")
            .field("signed_oid", &self.signed_oid)
            .field("signed_expiry", &self.signed_expiry)
            .finish_non_exhaustive()
    }
}

/// What signs a SAS.
#[derive(Clone, Debug)]
pub enum SasKey {
    /// The account key: a service SAS.
    Account(AzureCredentials),
    /// A delegation key of `account`: a user-delegation SAS.
    UserDelegation {
        account: String,
        key: UserDelegationKey,
    },
}

impl SasKey {
    fn account(&self) -> &str {
        match self {
            Self::Account(credentials) => &credentials.account,
            Self::UserDelegation { account, .. } => account,
        }
    }
}

/// The blob service's base URL: `https://ACCOUNT.blob.core.windows.net`, or an emulator's
/// `http://127.0.0.1:10000/ACCOUNT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEndpoint {
    /// Without a trailing slash.
    base: String,
    https: bool,
}

impl BlobEndpoint {
    /// Parses an `http` or `https` URL with an optional path and nothing else.
    pub fn parse(input: &str) -> Result<Self, SigningError> {
        let bad = |reason| SigningError::InvalidEndpoint {
            endpoint: input.to_owned(),
            reason,
        };
        let url = ::url::Url::parse(input).map_err(|_| bad("not a URL"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        if url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(bad("a base URL: scheme, host, port and path only"));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { base, https })
    }

    /// `https://ACCOUNT.blob.core.windows.net`.
    pub fn public(account: &str) -> Result<Self, SigningError> {
        check_account(account)?;
        Self::parse(&format!("https://{account}.blob.core.windows.net"))
    }

    /// `spr`: `https`, or `https,http` where the endpoint itself is plain HTTP (an emulator).
    pub fn protocols(&self) -> &'static str {
        if self.https { "https" } else { "https,http" }
    }
}

/// One blob SAS to sign.
#[derive(Clone, Debug)]
pub struct BlobSasRequest {
    pub container: String,
    pub blob: String,
    /// Letters of `racwdxyltmeopi`.
    pub permissions: String,
    pub start: Option<OffsetDateTime>,
    pub expiry: OffsetDateTime,
    /// `spr`; by default what the endpoint's scheme allows.
    pub protocols: Option<String>,
    /// `rscd`: the response's Content-Disposition.
    pub content_disposition: Option<String>,
    /// `rsct`: the response's Content-Type.
    pub content_type: Option<String>,
    /// `sduoid`: the only user a user-delegation SAS may be used by.
    pub delegated_user_oid: Option<String>,
}

/// A signed blob URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobSas {
    pub url: String,
    /// The query string alone (`se=…&sig=…`).
    pub token: String,
    pub string_to_sign: String,
    pub expires_at: OffsetDateTime,
}

/// The permissions a method needs: read for GET and HEAD, create and write for PUT (a new
/// blob or an overwrite, and Put Block / Put Block List), delete for DELETE.
pub fn permissions_for(method: super::Method) -> Option<&'static str> {
    match method {
        super::Method::Get | super::Method::Head => Some("r"),
        super::Method::Put => Some("cw"),
        super::Method::Delete => Some("d"),
        super::Method::Post => None,
    }
}

/// Signs blob SAS URLs with one key for one endpoint.
#[derive(Clone, Debug)]
pub struct AzureSigner {
    key: SasKey,
    endpoint: BlobEndpoint,
}

impl AzureSigner {
    pub fn new(key: SasKey, endpoint: BlobEndpoint) -> Self {
        Self { key, endpoint }
    }

    /// Signs one blob SAS.
    pub fn sign(&self, request: &BlobSasRequest) -> Result<BlobSas, SigningError> {
        let bad = |name: &str, reason| SigningError::InvalidPolicyField {
            name: name.to_owned(),
            reason,
        };
        check_container(&request.container)?;
        if request.blob.is_empty() || request.blob.len() > 1024 {
            return Err(SigningError::InvalidObjectName(
                "a blob name is 1-1024 bytes",
            ));
        }
        if request.blob.chars().any(char::is_control) {
            return Err(SigningError::InvalidObjectName(
                "a blob name has no control characters",
            ));
        }
        let mut order = PERMISSION_ORDER.chars();
        let ordered = !request.permissions.is_empty()
            && request
                .permissions
                .chars()
                .all(|p| order.by_ref().any(|o| o == p));
        if !ordered {
            return Err(bad(
                "sp",
                "permissions are letters of \"racwdxyltmeopi\", each once, in that order",
            ));
        }
        if request.start.is_some_and(|start| start >= request.expiry) {
            return Err(bad("st", "the start is not before the expiry"));
        }
        let start = request.start.map(rfc3339_seconds);
        let expiry = rfc3339_seconds(request.expiry);
        let protocols = request
            .protocols
            .as_deref()
            .unwrap_or(self.endpoint.protocols());
        let resource = format!(
            "/blob/{}/{}/{}",
            self.key.account(),
            request.container,
            request.blob
        );
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let (lines, key, delegation): (Vec<String>, &[u8], Vec<(&str, String)>) = match &self.key {
            SasKey::Account(credentials) => (
                vec![
                    request.permissions.clone(),
                    start.clone().unwrap_or_default(),
                    expiry.clone(),
                    resource,
                    String::new(), // si
                    String::new(), // sip
                    protocols.to_owned(),
                    SERVICE_VERSION.to_owned(),
                    "b".to_owned(),
                    String::new(), // snapshot
                    String::new(), // ses
                    String::new(), // rscc
                    opt(&request.content_disposition),
                    String::new(), // rsce
                    String::new(), // rscl
                    opt(&request.content_type),
                ],
                &credentials.key,
                Vec::new(),
            ),
            SasKey::UserDelegation { key, .. } => (
                vec![
                    request.permissions.clone(),
                    start.clone().unwrap_or_default(),
                    expiry.clone(),
                    resource,
                    key.signed_oid.clone(),
                    key.signed_tid.clone(),
                    key.signed_start.clone(),
                    key.signed_expiry.clone(),
                    key.signed_service.clone(),
                    key.signed_version.clone(),
                    String::new(), // saoid
                    String::new(), // suoid
                    String::new(), // scid
                    opt(&key.signed_delegated_user_tid),
                    opt(&request.delegated_user_oid),
                    String::new(), // sip
                    protocols.to_owned(),
                    SERVICE_VERSION.to_owned(),
                    "b".to_owned(),
                    String::new(), // snapshot
                    String::new(), // ses
                    String::new(), // srh
                    String::new(), // srq
                    String::new(), // rscc
                    opt(&request.content_disposition),
                    String::new(), // rsce
                    String::new(), // rscl
                    opt(&request.content_type),
                ],
                &key.value,
                vec![
                    ("skoid", key.signed_oid.clone()),
                    ("sktid", key.signed_tid.clone()),
                    ("skt", key.signed_start.clone()),
                    ("ske", key.signed_expiry.clone()),
                    ("sks", key.signed_service.clone()),
                    ("skv", key.signed_version.clone()),
                    ("skdutid", opt(&key.signed_delegated_user_tid)),
                ],
            ),
        };
        let string_to_sign = lines.join("\n");
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            string_to_sign.as_bytes(),
        );
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.as_ref());

        let mut params: Vec<(&str, String)> = vec![
            ("st", start.unwrap_or_default()),
            ("se", expiry),
            ("sp", request.permissions.clone()),
            ("spr", protocols.to_owned()),
            ("sv", SERVICE_VERSION.to_owned()),
            ("sduoid", opt(&request.delegated_user_oid)),
            ("sr", "b".to_owned()),
            ("rscd", opt(&request.content_disposition)),
            ("rsct", opt(&request.content_type)),
        ];
        params.extend(delegation);
        params.push(("sig", signature));
        let mut token = String::with_capacity(256);
        for (name, value) in params.iter().filter(|(_, value)| !value.is_empty()) {
            if !token.is_empty() {
                token.push('&');
            }
            token.push_str(name);
            token.push('=');
            // As azure-storage-blob writes it: `quote(value)`, which keeps `/`.
            encoding::push_path(&mut token, value);
        }
        let mut url = String::with_capacity(self.endpoint.base.len() + request.blob.len() + 300);
        url.push_str(&self.endpoint.base);
        url.push('/');
        url.push_str(&request.container);
        url.push('/');
        encoding::push_path(&mut url, &request.blob);
        url.push('?');
        url.push_str(&token);
        Ok(BlobSas {
            url,
            token,
            string_to_sign,
            expires_at: request.expiry,
        })
    }
}

/// Container names: 3-63 lowercase letters, digits and single hyphens, starting and ending
/// with a letter or digit.
fn check_container(name: &str) -> Result<(), SigningError> {
    let bad = |reason| SigningError::InvalidBucketName {
        name: name.to_owned(),
        reason,
    };
    if !(3..=63).contains(&name.len()) {
        return Err(bad("a container name is 3-63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(bad(
            "a container name is lowercase letters, digits and single hyphens inside",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_must_be_in_the_services_order() {
        let signer = AzureSigner::new(
            SasKey::Account(AzureCredentials::new("acct", "a2V5").expect("creds")),
            BlobEndpoint::public("acct").expect("endpoint"),
        );
        let request = |permissions: &str| BlobSasRequest {
            container: "box".into(),
            blob: "b".into(),
            permissions: permissions.into(),
            start: None,
            expiry: OffsetDateTime::UNIX_EPOCH,
            protocols: None,
            content_disposition: None,
            content_type: None,
            delegated_user_oid: None,
        };
        for ok in ["r", "cw", "racwd", "racwdt"] {
            assert!(signer.sign(&request(ok)).is_ok(), "{ok}");
        }
        for bad in ["", "wc", "rr", "q", "R"] {
            assert!(signer.sign(&request(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn containers_and_endpoints_are_checked() {
        for bad in ["ab", "Box", "a--b", "-ab", "ab-", "a_b"] {
            assert!(check_container(bad).is_err(), "{bad}");
        }
        assert!(BlobEndpoint::parse("ftp://x").is_err());
        assert!(BlobEndpoint::parse("https://x/?q=1").is_err());
        let emulator = BlobEndpoint::parse("http://127.0.0.1:10000/devstoreaccount1/").expect("ok");
        assert_eq!(emulator.protocols(), "https,http");
        assert!(
            format!(
                "{:?}",
                AzureCredentials::new("acct", "c2VjcmV0").expect("c")
            )
            .contains("acct")
        );
        assert!(
            !format!(
                "{:?}",
                AzureCredentials::new("acct", "c2VjcmV0").expect("c")
            )
            .contains("c2VjcmV0")
        );
    }
}
