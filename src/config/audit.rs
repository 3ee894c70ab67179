//! The audit's retention and export (`audit maintain`).

use super::ConfigError;
use super::settings::{Settings, bad};

/// How long audit days are kept, and where they go before they are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Days a closed day is kept; `None`: kept for ever.
    pub retention_days: Option<u32>,
    pub export: Option<AuditExportTarget>,
}

/// Where closed days are exported: a bucket of one of the broker's backends, signed for with
/// the broker's own credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditExportTarget {
    /// A backend of `classes.toml` (`gcs` by default).
    pub backend: String,
    /// The backend's bucket (S3 bucket, Azure container).
    pub bucket: String,
    /// Object names start with it; ends with `/` unless empty.
    pub prefix: String,
}

pub(super) fn audit<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<AuditConfig, ConfigError> {
    let retention_days = match s.get("BROKER_AUDIT_RETENTION_DAYS") {
        None => None,
        Some(_) => Some(s.number_from("BROKER_AUDIT_RETENTION_DAYS", 0, 1, 36_500)? as u32),
    };
    let export = match s.get("BROKER_AUDIT_EXPORT_BUCKET") {
        None => {
            for other in ["BROKER_AUDIT_EXPORT_BACKEND", "BROKER_AUDIT_EXPORT_PREFIX"] {
                if s.get(other).is_some() {
                    return Err(bad(other, "set BROKER_AUDIT_EXPORT_BUCKET too".into()));
                }
            }
            None
        }
        Some(bucket) => {
            crate::signing::BucketName::parse(&bucket)
                .map_err(|e| bad("BROKER_AUDIT_EXPORT_BUCKET", e.to_string()))?;
            let prefix = s
                .get("BROKER_AUDIT_EXPORT_PREFIX")
                .unwrap_or_else(|| "storage-broker/audit/".into());
            let prefix = if prefix.ends_with('/') {
                prefix
            } else {
                format!("{prefix}/")
            };
            crate::signing::ObjectName::parse(&format!("{prefix}x"))
                .map_err(|e| bad("BROKER_AUDIT_EXPORT_PREFIX", e.to_string()))?;
            if prefix.starts_with('/') || prefix.split('/').any(|s| s == "." || s == "..") {
                return Err(bad(
                    "BROKER_AUDIT_EXPORT_PREFIX",
                    format!("{prefix:?}: no leading '/', no '.' or '..' segments"),
                ));
            }
            Some(AuditExportTarget {
                backend: s
                    .get("BROKER_AUDIT_EXPORT_BACKEND")
                    .unwrap_or_else(|| crate::policy::DEFAULT_BACKEND.to_owned()),
                bucket,
                prefix,
            })
        }
    };
    Ok(AuditConfig {
        retention_days,
        export,
    })
}
