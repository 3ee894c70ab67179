//! The authorization policy: roles and bucket classes from `policies/`, and the decision.

mod action;
mod backends;
mod classes;
mod decision;
mod limits;
mod management;
mod names;
mod roles;

pub use action::{Action, Actions};
pub use backends::{Backend, BackendKind, BackendSettings, CredentialSource, DEFAULT_BACKEND};
pub use classes::{BucketClass, Classes, Release};
pub use decision::{
    BucketFacts, Caller, Decision, Grant, GrantPrincipal, Holding, Membership, Scope, decide,
    held_until,
};
pub use limits::{
    LifetimeRefused, LimitExceeded, check_ttl, check_upload, credential_lifetime, reuse_window,
    ttl_limit,
};
pub use management::{
    GrantRefused, NewBucket, may_change_members, may_create_bucket, may_grant, may_read_all_audit,
};
pub use names::{
    LogicalBucketName, MAX_OBJECT_KEY_BYTES, ObjectKey, ObjectPrefix, ProjectSlug, check_text,
    control_character, owner_segment,
};
pub use roles::{REQUIRED_ROLES, Roles};

use std::path::Path;

/// A policy file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub message: String,
}

impl PolicyError {
    fn new(file: &str, message: String) -> Self {
        Self {
            file: file.to_owned(),
            message,
        }
    }
}

/// Everything loaded from a policies directory.
#[derive(Clone, Debug)]
pub struct Policies {
    pub roles: Roles,
    pub classes: Classes,
}

impl Policies {
    /// Loads and checks `DIR/roles.toml` and `DIR/classes.toml`.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| PolicyError::new(&path.display().to_string(), e.to_string()))
        };
        Self::parse(&read("roles.toml")?, &read("classes.toml")?)
    }

    /// Checks the two files' texts.
    pub fn parse(roles: &str, classes: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            roles: Roles::parse(roles)?,
            classes: Classes::parse(classes)?,
        })
    }
}
