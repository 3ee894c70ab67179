//! What a caller may do to a bucket or object.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the five actions of the authorization model.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// GET, HEAD, listing.
    Read,
    /// PUT, resumable start, POST policy.
    Write,
    Delete,
    /// Manage grants and members.
    Share,
    /// Bucket lifecycle.
    Admin,
}

impl Action {
    /// All actions, in order.
    pub const ALL: [Action; 5] = [
        Self::Read,
        Self::Write,
        Self::Delete,
        Self::Share,
        Self::Admin,
    ];

    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
            Self::Share => "share",
            Self::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown action {s:?} (expected read, write, delete, share or admin)")
            })
    }
}

/// A set of actions, as a role grants them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);

    /// Whether `action` is in the set.
    pub fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }

    /// Both sets together.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// What both sets hold.
    pub fn intersection(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    /// Whether every action of `other` is in this set.
    pub fn covers(self, other: Actions) -> bool {
        other.0 & !self.0 == 0
    }

    /// The actions, in order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Action> for Actions {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        Actions(iter.into_iter().fold(0, |bits, a| bits | a.bit()))
    }
}
