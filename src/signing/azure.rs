//! Azure Blob shared access signatures for one blob (`sr=b`) or a container (`sr=c`): service SAS signed with the
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

/// The service version of the broker's own REST calls (`x-ms-version` of List Blobs, Delete Blob,
/// Get User Delegation Key): 2026-06-06, the newest that Azurite 3.37 implements, so that the
/// tests run them against the version production sends, and one that has List Blobs'
/// `startFrom` (2026-02-06 and later). SAS tokens are signed for [`SERVICE_VERSION`] still.
pub const REST_VERSION: &str = "2026-06-06";

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

/// The `Authorization` header of one REST request, and what it signs.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKeyAuthorization {
    /// `SharedKey ACCOUNT:SIGNATURE`.
    pub header: String,
    pub string_to_sign: String,
}

impl fmt::Debug for SharedKeyAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyAuthorization")
            .field("string_to_sign", &self.string_to_sign)
            .finish_non_exhaustive()
    }
}

/// The standard headers Shared Key signs, in order, by value alone.
const SHARED_KEY_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

impl AzureCredentials {
    /// Authorizes one REST request with the account key ("Authorize with Shared Key", service
    /// version 2009-09-19 and later), as azure-storage-blob's `SharedKeyCredentialPolicy` does
    /// (`tests/known_answers/azure_shared_key.json`). `headers` are all the request carries
    /// (`x-ms-date` and `x-ms-version` among them); the URL's path is signed as it is sent, its
    /// query parameters lower-cased, sorted and percent-decoded (a `+` stays a `+`: write spaces
    /// as `%20`). Header values are signed as given, so they must already be canonical: no
    /// leading or trailing whitespace, no line breaks.
    pub fn shared_key(
        &self,
        method: &str,
        url: &::url::Url,
        headers: &[(&str, &str)],
    ) -> Result<SharedKeyAuthorization, SigningError> {
        let bad = |name: &str, reason| SigningError::InvalidHeader {
            name: name.to_owned(),
            reason,
        };
        let mut lowered: Vec<(String, &str)> = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            if !name.is_ascii() || name.is_empty() {
                return Err(bad(&name, "a header name is ASCII"));
            }
            if value.contains(['\r', '\n']) || value.trim() != *value {
                return Err(bad(
                    &name,
                    "a signed value has no line breaks and no surrounding whitespace",
                ));
            }
            if lowered.iter().any(|(seen, _)| *seen == name) {
                return Err(bad(&name, "given twice"));
            }
            lowered.push((name, value));
        }
        let value_of = |name: &str| {
            lowered
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| *v)
        };
        let mut string_to_sign = String::with_capacity(512);
        string_to_sign.push_str(&method.to_ascii_uppercase());
        string_to_sign.push('\n');
        for name in SHARED_KEY_HEADERS {
            let value = value_of(name);
            // Version 2015-02-21 and later: a zero Content-Length is signed as empty.
            if !(name == "content-length" && value == "0") {
                string_to_sign.push_str(value);
            }
            string_to_sign.push('\n');
        }
        let mut ms: Vec<&(String, &str)> = lowered
            .iter()
            .filter(|(name, _)| name.starts_with("x-ms-"))
            .collect();
        ms.sort_by(|a, b| service_header_order(&a.0, &b.0));
        for (name, value) in ms {
            string_to_sign.push_str(name);
            string_to_sign.push(':');
            string_to_sign.push_str(value);
            string_to_sign.push('\n');
        }
        string_to_sign.push('/');
        string_to_sign.push_str(&self.account);
        string_to_sign.push_str(url.path());
        // Each name once, lower-cased and sorted; several values of a name sorted and joined
        // with commas.
        let mut query: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for pair in url.query().unwrap_or_default().split('&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            query
                .entry(name.to_ascii_lowercase())
                .or_default()
                .push(value.into_owned());
        }
        for (name, mut values) in query {
            values.sort();
            string_to_sign.push('\n');
            string_to_sign.push_str(&name);
            string_to_sign.push(':');
            string_to_sign.push_str(&values.join(","));
        }
        let mac = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.key),
            string_to_sign.as_bytes(),
        );
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.as_ref());
        Ok(SharedKeyAuthorization {
            header: format!("SharedKey {}:{signature}", self.account),
            string_to_sign,
        })
    }
}

/// An HTTP date (`Tue, 24 Nov 2026 10:20:30 GMT`): what `x-ms-date` carries.
pub fn http_date(moment: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    moment
        .to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        // The format has no component a date could lack.
        .unwrap_or_default()
}

/// The order the service sorts `x-ms-*` header names in (lower-case ASCII): a collation in which
/// `-`, `'` and some other punctuation count only when all else is equal, as
/// azure-storage-blob's `_storage_header_sort` emulates it. Two tables of weights, the first
/// for every character, the second only for the ones the first ignores.
fn service_header_order(lhs: &str, rhs: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (lhs, rhs) = (lhs.as_bytes(), rhs.as_bytes());
    let tables: [&[u16; 128]; 2] = [&COLLATION_PRIMARY, &COLLATION_PUNCTUATION];
    let weight = |table: &[u16; 128], text: &[u8], at: usize| {
        text.get(at).map_or(1, |&b| table[usize::from(b & 0x7f)])
    };
    let (mut i, mut j) = (0, 0);
    let mut level = 0;
    while level < tables.len() {
        if level == tables.len() - 1 && i != j {
            return j.cmp(&i);
        }
        let (w1, w2) = (weight(tables[level], lhs, i), weight(tables[level], rhs, j));
        if w1 == 1 && w2 == 1 {
            (i, j) = (0, 0);
            level += 1;
        } else if w1 == w2 {
            i += 1;
            j += 1;
        } else if w1 == 0 {
            i += 1;
        } else if w2 == 0 {
            j += 1;
        } else {
            return w1.cmp(&w2);
        }
    }
    Ordering::Equal
}

/// Primary weights of ASCII: 0 is ignored; letters compare without case.
#[rustfmt::skip]
const COLLATION_PRIMARY: [u16; 128] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    // space ! " # $ % & ' ( ) * + , - . /
    0, 0x71c, 0, 0x71f, 0x721, 0x723, 0x725, 0, 0, 0, 0x72d, 0x803, 0, 0, 0x733, 0,
    // 0-9 : ; < = > ?
    0xd03, 0xd1a, 0xd1c, 0xd1e, 0xd20, 0xd22, 0xd24, 0xd26, 0xd28, 0xd2a, 0, 0, 0, 0, 0, 0,
    // @ A-O
    0, 0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25, 0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51, 0xe70, 0xe7c,
    // P-Z [ \ ] ^ _
    0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99, 0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9, 0, 0, 0, 0x743, 0x744,
    // ` a-o
    0x748, 0xe02, 0xe09, 0xe0a, 0xe1a, 0xe21, 0xe23, 0xe25, 0xe2c, 0xe32, 0xe35, 0xe36, 0xe48, 0xe51, 0xe70, 0xe7c,
    // p-z { | } ~ DEL
    0xe7e, 0xe89, 0xe8a, 0xe91, 0xe99, 0xe9f, 0xea2, 0xea4, 0xea6, 0xea7, 0xea9, 0, 0x74c, 0, 0x750, 0,
];

/// Secondary weights: only `'` and `-`.
const COLLATION_PUNCTUATION: [u16; 128] = {
    let mut table = [0; 128];
    table[b'\'' as usize] = 0x8012;
    table[b'-' as usize] = 0x8212;
    table
};

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

    /// The base URL, without a trailing slash: a container's URL is `{base}/{container}`.
    pub fn base(&self) -> &str {
        &self.base
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
        let resource = format!(
            "/blob/{}/{}/{}",
            self.key.account(),
            request.container,
            request.blob
        );
        let mut path = String::with_capacity(request.container.len() + request.blob.len() + 8);
        path.push_str(&request.container);
        path.push('/');
        encoding::push_path(&mut path, &request.blob);
        self.sign_resource(request, "b", resource, &path)
    }

    /// Signs a SAS for the whole container `request.container` (`sr=c`; `request.blob` is not
    /// used): what a tool that lists and reads many blobs takes. `url` is the container's URL.
    pub fn sign_container(&self, request: &BlobSasRequest) -> Result<BlobSas, SigningError> {
        let resource = format!("/blob/{}/{}", self.key.account(), request.container);
        self.sign_resource(request, "c", resource, &request.container)
    }

    /// Signs `request` for the resource `sr` (`b` blob, `c` container) whose canonical name is
    /// `resource`, at `path` (encoded) under the endpoint.
    fn sign_resource(
        &self,
        request: &BlobSasRequest,
        sr: &str,
        resource: String,
        path: &str,
    ) -> Result<BlobSas, SigningError> {
        let bad = |name: &str, reason| SigningError::InvalidPolicyField {
            name: name.to_owned(),
            reason,
        };
        check_container(&request.container)?;
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
                    sr.to_owned(),
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
                    sr.to_owned(),
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
            ("sr", sr.to_owned()),
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
        let mut url = String::with_capacity(self.endpoint.base.len() + path.len() + 300);
        url.push_str(&self.endpoint.base);
        url.push('/');
        url.push_str(path);
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

    /// Every case of `tests/known_answers/azure_shared_key.json`, made by azure-storage-blob's
    /// `SharedKeyCredentialPolicy` (`tests/known_answers/generate_azure_shared_key.py`).
    #[test]
    fn shared_key_matches_azure_storage_blob() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/known_answers/azure_shared_key.json");
        let cases: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(path).expect("known answers")).expect("json");
        assert!(cases.len() >= 10);
        for case in cases {
            let (name, input, expected) = (&case["name"], &case["input"], &case["expected"]);
            let text = |v: &serde_json::Value| v.as_str().expect("a string").to_owned();
            let credentials =
                AzureCredentials::new(&text(&input["account"]), &text(&input["key"])).expect("key");
            let url = ::url::Url::parse(&text(&input["url"])).expect("url");
            let headers: Vec<(String, String)> = input["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|pair| (text(&pair[0]), text(&pair[1])))
                .collect();
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let signed = credentials
                .shared_key(&text(&input["method"]), &url, &headers)
                .expect("signed");
            assert_eq!(
                signed.string_to_sign,
                text(&expected["string_to_sign"]),
                "{name}"
            );
            assert_eq!(signed.header, text(&expected["authorization"]), "{name}");
        }
    }

    #[test]
    fn shared_key_refuses_what_it_could_not_sign_as_sent() {
        let credentials = AzureCredentials::new("acct", "a2V5").expect("creds");
        let url = ::url::Url::parse("https://acct.blob.core.windows.net/c/b").expect("url");
        for headers in [
            vec![("x-ms-meta-a", " padded")],
            vec![("x-ms-meta-a", "two\r\nlines")],
            vec![("x-ms-date", "a"), ("X-MS-Date", "b")],
            vec![("x-ms-meta-é", "a")],
        ] {
            assert!(
                credentials.shared_key("GET", &url, &headers).is_err(),
                "{headers:?}"
            );
        }
        let signed = credentials.shared_key("get", &url, &[]).expect("signed");
        assert!(signed.string_to_sign.starts_with("GET\n"));
        assert!(!format!("{signed:?}").contains(&signed.header));
    }

    #[test]
    fn header_collation_puts_punctuation_last() {
        use std::cmp::Ordering::*;
        for (a, b, order) in [
            ("x-ms-date", "x-ms-version", Less),
            ("x-ms-date", "x-ms-delete-snapshots", Less),
            ("x-ms-blob-type", "x-ms-client-request-id", Less),
            ("x-ms-meta-ab", "x-ms-meta-a-b", Less),
            ("x-ms-meta-a_b", "x-ms-meta-a1", Less),
            ("x-ms-meta-a", "x-ms-meta-a.b", Less),
            ("x-ms-a", "x-ms-a", Equal),
        ] {
            assert_eq!(service_header_order(a, b), order, "{a} {b}");
            assert_eq!(service_header_order(b, a), order.reverse(), "{b} {a}");
        }
        assert_eq!(
            http_date(time::macros::datetime!(2026-11-24 10:20:30 +01:00)),
            "Tue, 24 Nov 2026 09:20:30 GMT"
        );
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
