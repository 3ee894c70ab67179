//! `roles.toml`: role name → actions.

use super::{Action, Actions, PolicyError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The roles every policy must define: personal-bucket owners hold `owner`, project members hold
/// `viewer`, `editor` or `owner`.
pub const REQUIRED_ROLES: [&str; 3] = ["viewer", "editor", "owner"];

/// Roles and the actions each holds.
#[derive(Clone, Debug)]
pub struct Roles {
    roles: BTreeMap<String, Actions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    roles: BTreeMap<String, Vec<String>>,
}

impl Roles {
    /// Parses and checks `roles.toml`.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: RolesFile =
            toml::from_str(text).map_err(|e| PolicyError::new("roles.toml", e.to_string()))?;
        let mut roles = BTreeMap::new();
        for (name, actions) in file.roles {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(PolicyError::new(
                    "roles.toml",
                    format!("role name {name:?}: use a-z, 0-9 and '-'"),
                ));
            }
            let set = actions
                .iter()
                .map(|a| a.parse::<Action>())
                .collect::<Result<Actions, _>>()
                .map_err(|e| PolicyError::new("roles.toml", format!("role {name:?}: {e}")))?;
            roles.insert(name, set);
        }
        for required in REQUIRED_ROLES {
            if !roles.contains_key(required) {
                return Err(PolicyError::new(
                    "roles.toml",
                    format!("role {required:?} must be defined"),
                ));
            }
        }
        Ok(Self { roles })
    }

    /// The strongest of `roles` (the one holding most actions; the first such on a tie), e.g.
    /// of a caller who is a member of a project directly and through a group.
    pub fn strongest<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let mut best: Option<(&'a str, usize)> = None;
        for role in roles {
            let held = self.actions(role).iter().count();
            if best.is_none_or(|(_, most)| held > most) {
                best = Some((role, held));
            }
        }
        best.map(|(role, _)| role)
    }

    /// The actions of `role`, or none for an unknown role (a grant naming a role since removed
    /// gives nothing).
    pub fn actions(&self, role: &str) -> Actions {
        self.roles.get(role).copied().unwrap_or(Actions::NONE)
    }

    /// Whether `role` is defined.
    pub fn contains(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// Role names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_role() {
        let roles = Roles::parse(
            r#"[roles]
viewer = ["read"]
editor = ["read", "write", "delete"]
owner = ["read", "write", "delete", "share", "admin"]
"#,
        )
        .expect("roles");
        for (given, want) in [
            (vec![], None),
            (vec!["viewer"], Some("viewer")),
            (vec!["viewer", "owner", "editor"], Some("owner")),
            (vec!["editor", "viewer"], Some("editor")),
            // A role since removed holds nothing.
            (vec!["gone", "viewer"], Some("viewer")),
            (vec!["viewer", "viewer"], Some("viewer")),
        ] {
            assert_eq!(roles.strongest(given.iter().copied()), want, "{given:?}");
        }
    }
}
