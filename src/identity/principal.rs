//! The verified caller.

use crate::policy::GrantPrincipal;
use serde::Deserialize;
use std::collections::HashMap;

/// Who the caller is, from a verified token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub username: Option<String>,
    pub email: Option<String>,
    /// Keycloak group paths such as `/vision`.
    pub groups: Vec<String>,
    /// Realm roles, and the roles of the broker's own client (`resource_access.<client>.roles`).
    pub roles: Vec<String>,
    /// The client the token was issued to (`azp`).
    pub client: Option<String>,
    /// Classification levels named by the configured clearance claim, if any.
    pub clearances: Vec<String>,
}

impl Principal {
    /// The principals this caller matches in grants, `project:` aside: `user:<sub>`,
    /// `group:<path>`, `role:<name>`, `authenticated`.
    pub fn grant_principals(&self) -> Vec<GrantPrincipal> {
        let mut out = Vec::with_capacity(2 + self.groups.len() + self.roles.len());
        out.push(GrantPrincipal::User(self.subject.clone()));
        out.extend(self.groups.iter().cloned().map(GrantPrincipal::Group));
        out.extend(self.roles.iter().cloned().map(GrantPrincipal::Role));
        out.push(GrantPrincipal::Authenticated);
        out
    }

    /// How project memberships name this caller: `user:<sub>`, and `group:<path>` per group.
    /// Two key spaces: a subject that reads `group:/vision` is `user:group:/vision`.
    pub fn member_keys(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(1 + self.groups.len());
        out.push(format!("user:{}", self.subject));
        out.extend(self.groups.iter().map(|g| format!("group:{g}")));
        out
    }
}

/// The claims the broker reads. Unverified until the signature checks out.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub aud: Audience,
    pub azp: Option<String>,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub realm_access: Option<RoleList>,
    #[serde(default)]
    pub resource_access: HashMap<String, RoleList>,
    /// Every other claim, for the configured clearance claim.
    #[serde(flatten)]
    pub other: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RoleList {
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `aud` is a string or a list.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::None => false,
            Self::One(a) => a == wanted,
            Self::Many(list) => list.iter().any(|a| a == wanted),
        }
    }
}

impl Claims {
    pub(crate) fn into_principal(
        mut self,
        client_id: Option<&str>,
        clearance_claim: Option<&str>,
    ) -> Principal {
        let clearances = match clearance_claim.and_then(|c| self.other.remove(c)) {
            Some(serde_json::Value::String(level)) => vec![level],
            Some(serde_json::Value::Array(levels)) => levels
                .into_iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mut roles = self.realm_access.map(|r| r.roles).unwrap_or_default();
        if let Some(client) = client_id.and_then(|c| self.resource_access.get(c)) {
            roles.extend(client.roles.iter().cloned());
        }
        roles.sort();
        roles.dedup();
        Principal {
            subject: self.sub,
            username: self.preferred_username,
            email: self.email,
            groups: self.groups,
            roles,
            client: self.azp,
            clearances,
        }
    }
}
