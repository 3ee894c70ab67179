//! The authorization decision of DESIGN.md, as a pure function: no I/O, no clock but `now`.

use super::{Action, Actions, Roles};
use time::OffsetDateTime;
use uuid::Uuid;

/// The caller as the decision sees them.
#[derive(Clone, Debug)]
pub struct Caller<'a> {
    pub subject: &'a str,
    /// What the caller matches besides projects: `user:<sub>`, `group:<path>`, `role:<name>`,
    /// `authenticated`.
    pub principals: &'a [GrantPrincipal],
    /// The caller's project memberships, direct or through a group.
    pub memberships: &'a [Membership],
    /// Index of the caller's classification clearance.
    pub clearance: usize,
    /// Holds the storage-admin realm role.
    pub admin: bool,
}

/// A project membership: the caller (or one of their groups) has `role` in `project`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Membership {
    pub project: String,
    pub role: String,
}

/// What the decision needs to know of a bucket.
#[derive(Clone, Copy, Debug)]
pub struct BucketFacts<'a> {
    /// The personal bucket's owner.
    pub owner: Option<&'a str>,
    /// The project a project bucket belongs to.
    pub project: Option<&'a str>,
    /// Index of the bucket's classification level.
    pub classification: usize,
    /// The bucket or its class refuses write and delete.
    pub read_only: bool,
}

/// A grant: `role` on objects starting with `prefix` (or, when `exact`, on the object named
/// `prefix` alone), for `principal`, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Grant {
    pub id: Uuid,
    pub prefix: String,
    #[serde(default)]
    pub exact: bool,
    pub principal: GrantPrincipal,
    pub role: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// The kinds of principal a grant can name: parsed once, where it enters (a request, a
/// stored grant, a token), and kept typed. Users, groups and roles live in separate spaces: a
/// subject that reads `group:/x` is `User("group:/x")`, never the group.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(from = "String")]
pub enum GrantPrincipal {
    User(String),
    Group(String),
    Role(String),
    Project(String),
    Authenticated,
    /// A stored principal this version does not read: it matches nobody.
    Unrecognized(String),
}

impl From<String> for GrantPrincipal {
    /// A stored principal (checked when it was granted); one that no longer parses matches
    /// nobody rather than failing the bucket.
    fn from(stored: String) -> Self {
        Self::parse(&stored).unwrap_or(Self::Unrecognized(stored))
    }
}

impl std::fmt::Display for GrantPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(v) => write!(f, "user:{v}"),
            Self::Group(v) => write!(f, "group:{v}"),
            Self::Role(v) => write!(f, "role:{v}"),
            Self::Project(v) => write!(f, "project:{v}"),
            Self::Authenticated => f.write_str("authenticated"),
            Self::Unrecognized(v) => f.write_str(v),
        }
    }
}

impl GrantPrincipal {
    /// Parses `user:<sub>`, `group:<path>`, `role:<name>`, `project:<slug>` or `authenticated`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "authenticated" {
            return Ok(Self::Authenticated);
        }
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| format!("principal {s:?}: expected kind:value"))?;
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(format!("principal {s:?}: empty or control characters"));
        }
        let value = value.to_owned();
        match kind {
            "user" => Ok(Self::User(value)),
            "group" => Ok(Self::Group(value)),
            "role" => Ok(Self::Role(value)),
            "project" => Ok(Self::Project(value)),
            _ => Err(format!(
                "principal {s:?}: kind must be user, group, role or project"
            )),
        }
    }
}

/// What a decision is about: one object, or every object under a prefix (a listing, a prefix
/// manifest, an upload policy for a prefix, a grant on a prefix; `Prefix("")` is the bucket
/// itself). A grant on an exact object covers that object only, never a prefix of the same
/// string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    Object(&'a str),
    Prefix(&'a str),
}

impl<'a> Scope<'a> {
    /// The object name or prefix.
    pub fn as_str(&self) -> &'a str {
        match self {
            Self::Object(s) | Self::Prefix(s) => s,
        }
    }

    /// Whether a grant on `prefix` (on exactly that object when `exact`) covers this scope.
    pub fn covered_by(&self, prefix: &str, exact: bool) -> bool {
        match (self, exact) {
            (Self::Object(name), true) => *name == prefix,
            (Self::Object(name), false) | (Self::Prefix(name), false) => name.starts_with(prefix),
            (Self::Prefix(_), true) => false,
        }
    }
}

/// The outcome, with the reason the audit records (never shown to the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    /// The caller sees the bucket but lacks the right: 403.
    Deny(String),
    /// The caller may not know the bucket exists: 404.
    NotFound(String),
}

impl Decision {
    /// `allow`, `deny` or `not_found`, for metrics and the audit.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allow",
            Self::Deny(_) => "deny",
            Self::NotFound(_) => "not_found",
        }
    }

    /// Why.
    pub fn reason(&self) -> &str {
        match self {
            Self::Allow(r) | Self::Deny(r) | Self::NotFound(r) => r,
        }
    }
}

/// Decides whether `caller` may do `action` on `scope` of `bucket` (`Prefix("")` for the bucket
/// itself, which only whole-bucket rights cover), given the bucket's `grants`.
///
/// Allowed when an unexpired grant matching one of the caller's principals has a prefix of
/// `object` and a role holding `action`, or the caller owns the bucket (role `owner`), or is a
/// member of its project (their member role); a `project:` grant gives at most what the member
/// role holds. A bucket above the caller's clearance, or one they hold nothing on, is not found.
/// A read-only bucket refuses write and delete to everyone. Storage admins may do everything
/// else on buckets they are cleared for: classification is a clearance, not a permission, so a
/// bucket above an admin's clearance is not found for them as for anyone.
pub fn decide(
    caller: &Caller<'_>,
    bucket: &BucketFacts<'_>,
    grants: &[Grant],
    roles: &Roles,
    action: Action,
    scope: Scope<'_>,
    now: OffsetDateTime,
) -> Decision {
    if bucket.classification > caller.clearance {
        return Decision::NotFound("bucket classification above the caller's clearance".into());
    }
    let writes = matches!(action, Action::Write | Action::Delete);
    if bucket.read_only && writes && caller.admin {
        return Decision::Deny("bucket is read-only".into());
    }
    if caller.admin {
        return Decision::Allow("storage admin".into());
    }
    let mut visible = false;
    let mut allowed_by: Option<String> = None;
    if bucket.owner == Some(caller.subject) {
        visible = true;
        if roles.actions("owner").contains(action) {
            allowed_by = Some("owner of the bucket".into());
        }
    }
    if let Some(project) = bucket.project
        && let Some(actions) = member_actions(caller, roles, project)
    {
        visible = true;
        if allowed_by.is_none() && actions.contains(action) {
            allowed_by = Some(format!("member of project {project}"));
        }
    }
    for grant in grants {
        if grant.expires_at.is_some_and(|at| at <= now) {
            continue;
        }
        let actions = match &grant.principal {
            GrantPrincipal::Project(project) => match member_actions(caller, roles, project) {
                Some(member) => roles.actions(&grant.role).intersection(member),
                None => continue,
            },
            principal if caller.principals.contains(principal) => roles.actions(&grant.role),
            _ => continue,
        };
        visible = true;
        let covers = scope.covered_by(&grant.prefix, grant.exact);
        if allowed_by.is_none() && actions.contains(action) && covers {
            allowed_by = Some(format!("grant {}", grant.id));
        }
    }
    match allowed_by {
        _ if !visible => Decision::NotFound("no right on the bucket".into()),
        Some(_) if bucket.read_only && writes => Decision::Deny("bucket is read-only".into()),
        Some(reason) => Decision::Allow(reason),
        None => Decision::Deny(format!("no {action} right on this object")),
    }
}

/// Until when a caller holds a set of rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Through ownership, membership or the storage-admin role: no end.
    Forever,
    /// Through grants only, the last of which ends then.
    Until(OffsetDateTime),
}

/// Until when `caller` holds every one of `actions` on `scope` of `bucket`, or `None` when they
/// do not hold them all now. For "nobody grants longer than they hold": a right that comes only
/// from expiring grants may be passed on only until the latest of those grants ends. (Per
/// action, the latest expiry among the grants giving it; the holding ends with the first action
/// to run out.) Classification and read-only are [`decide`]'s concern, not this function's.
pub fn held_until(
    caller: &Caller<'_>,
    bucket: &BucketFacts<'_>,
    grants: &[Grant],
    roles: &Roles,
    actions: Actions,
    scope: Scope<'_>,
    now: OffsetDateTime,
) -> Option<Holding> {
    if caller.admin {
        return Some(Holding::Forever);
    }
    let mut standing = Actions::NONE;
    if bucket.owner == Some(caller.subject) {
        standing = standing.union(roles.actions("owner"));
    }
    if let Some(project) = bucket.project
        && let Some(member) = member_actions(caller, roles, project)
    {
        standing = standing.union(member);
    }
    let mut until: Option<Holding> = Some(Holding::Forever);
    for action in actions.iter() {
        if standing.contains(action) {
            continue;
        }
        // The latest end among the grants that give `action` on `scope`.
        let mut latest: Option<Holding> = None;
        for grant in grants {
            if grant.expires_at.is_some_and(|at| at <= now)
                || !scope.covered_by(&grant.prefix, grant.exact)
            {
                continue;
            }
            let gives = match &grant.principal {
                GrantPrincipal::Project(project) => member_actions(caller, roles, project)
                    .is_some_and(|m| roles.actions(&grant.role).intersection(m).contains(action)),
                principal => {
                    caller.principals.contains(principal)
                        && roles.actions(&grant.role).contains(action)
                }
            };
            if !gives {
                continue;
            }
            let end = grant.expires_at.map_or(Holding::Forever, Holding::Until);
            latest = Some(match (latest, end) {
                (Some(Holding::Forever), _) | (_, Holding::Forever) => Holding::Forever,
                (Some(Holding::Until(a)), Holding::Until(b)) => Holding::Until(a.max(b)),
                (None, end) => end,
            });
        }
        until = match (until, latest) {
            (_, None) | (None, _) => return None,
            (Some(Holding::Forever), Some(end)) => Some(end),
            (Some(Holding::Until(a)), Some(Holding::Until(b))) => Some(Holding::Until(a.min(b))),
            (Some(held), Some(Holding::Forever)) => Some(held),
        };
    }
    until
}

/// What the caller's memberships of `project` give them, if they are a member.
pub(super) fn member_actions(caller: &Caller<'_>, roles: &Roles, project: &str) -> Option<Actions> {
    caller
        .memberships
        .iter()
        .filter(|m| m.project == project)
        .map(|m| roles.actions(&m.role))
        .reduce(Actions::union)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

    /// The shipped roles.
    pub(in crate::policy) fn roles() -> Roles {
        Roles::parse(include_str!("../../policies/roles.toml")).expect("shipped roles")
    }

    /// A grant of `role` on `prefix` to `principal`.
    pub(in crate::policy) fn grant(
        prefix: &str,
        principal: &str,
        role: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Grant {
        Grant {
            id: Uuid::nil(),
            prefix: prefix.into(),
            exact: false,
            principal: GrantPrincipal::from(principal.to_owned()),
            role: role.into(),
            expires_at,
        }
    }

    fn principals(sub: &str, groups: &[&str], realm_roles: &[&str]) -> Vec<GrantPrincipal> {
        let mut out = vec![
            GrantPrincipal::User(sub.into()),
            GrantPrincipal::Authenticated,
        ];
        out.extend(groups.iter().map(|g| GrantPrincipal::Group((*g).into())));
        out.extend(
            realm_roles
                .iter()
                .map(|r| GrantPrincipal::Role((*r).into())),
        );
        out
    }

    struct Case {
        name: &'static str,
        sub: &'static str,
        groups: &'static [&'static str],
        memberships: &'static [(&'static str, &'static str)],
        admin: bool,
        clearance: usize,
        bucket: BucketFacts<'static>,
        grants: Vec<Grant>,
        action: Action,
        object: &'static str,
        /// The request is about every object under `object` (a listing, a prefix policy).
        prefix: bool,
        expect: &'static str,
    }

    const ALICE_PERSONAL: BucketFacts<'static> = BucketFacts {
        owner: Some("alice"),
        project: None,
        classification: 0,
        read_only: false,
    };
    const VISION: BucketFacts<'static> = BucketFacts {
        owner: None,
        project: Some("vision"),
        classification: 0,
        read_only: false,
    };

    fn case(
        name: &'static str,
        sub: &'static str,
        bucket: BucketFacts<'static>,
        action: Action,
        object: &'static str,
    ) -> Case {
        Case {
            name,
            sub,
            groups: &[],
            memberships: &[],
            admin: false,
            clearance: 0,
            bucket,
            grants: vec![],
            action,
            object,
            prefix: false,
            expect: "allow",
        }
    }

    #[test]
    fn table() {
        let past = Some(datetime!(2026-11-24 11:59 UTC));
        let future = Some(datetime!(2026-11-24 12:01 UTC));
        let cases = vec![
            Case {
                expect: "allow",
                ..case(
                    "owner reads",
                    "alice",
                    ALICE_PERSONAL,
                    Action::Read,
                    "a.png",
                )
            },
            Case {
                expect: "allow",
                ..case("owner shares", "alice", ALICE_PERSONAL, Action::Share, "")
            },
            Case {
                expect: "not_found",
                ..case(
                    "stranger sees nothing",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "a.png",
                )
            },
            Case {
                grants: vec![Grant {
                    exact: true,
                    ..grant("report.pdf", "user:bob", "viewer", None)
                }],
                expect: "allow",
                ..case(
                    "single-object grant",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "report.pdf",
                )
            },
            Case {
                grants: vec![Grant {
                    exact: true,
                    ..grant("report.pdf", "user:bob", "viewer", None)
                }],
                expect: "deny",
                ..case(
                    "single-object grant opens no longer name",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "report.pdf.bak",
                )
            },
            Case {
                grants: vec![Grant {
                    exact: true,
                    ..grant("report.pdf", "user:bob", "editor", None)
                }],
                prefix: true,
                expect: "deny",
                ..case(
                    "single-object grant is no right on the prefix of the same bytes",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "report.pdf",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "editor", None)],
                prefix: true,
                expect: "allow",
                ..case(
                    "prefix grant covers a longer prefix",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "shared/2026/",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "editor", None)],
                prefix: true,
                expect: "deny",
                ..case(
                    "prefix grant does not cover a shorter prefix",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "shared",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "viewer", None)],
                expect: "allow",
                ..case(
                    "grant on prefix",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "shared/x.png",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "viewer", None)],
                expect: "deny",
                ..case(
                    "grant does not open the prefix's name",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "shared",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "viewer", None)],
                expect: "deny",
                ..case(
                    "grant does not open a longer sibling",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "sharedx/a",
                )
            },
            Case {
                grants: vec![grant("shared/", "user:bob", "viewer", None)],
                expect: "deny",
                ..case(
                    "viewer cannot write",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "shared/x.png",
                )
            },
            Case {
                grants: vec![grant("", "user:bob", "viewer", past)],
                expect: "not_found",
                ..case("expired grant", "bob", ALICE_PERSONAL, Action::Read, "x")
            },
            Case {
                grants: vec![grant("", "user:bob", "viewer", future)],
                expect: "allow",
                ..case(
                    "grant not yet expired",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "x",
                )
            },
            Case {
                groups: &["/vision"],
                grants: vec![grant("", "group:/vision", "editor", None)],
                expect: "allow",
                ..case("group grant", "bob", ALICE_PERSONAL, Action::Delete, "x")
            },
            Case {
                grants: vec![grant("", "authenticated", "viewer", None)],
                expect: "allow",
                ..case(
                    "anyone signed in",
                    "carol",
                    ALICE_PERSONAL,
                    Action::Read,
                    "x",
                )
            },
            Case {
                grants: vec![grant("x", "user:bob", "viewer", None)],
                expect: "deny",
                ..case(
                    "bucket-level needs a whole-bucket grant",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "",
                )
            },
            Case {
                memberships: &[("vision", "editor")],
                expect: "allow",
                ..case(
                    "project member writes",
                    "bob",
                    VISION,
                    Action::Write,
                    "data/x",
                )
            },
            Case {
                memberships: &[("vision", "viewer")],
                expect: "deny",
                ..case(
                    "project viewer cannot write",
                    "bob",
                    VISION,
                    Action::Write,
                    "data/x",
                )
            },
            Case {
                memberships: &[("vision", "viewer"), ("vision", "editor")],
                expect: "allow",
                ..case(
                    "direct and group memberships add up",
                    "bob",
                    VISION,
                    Action::Write,
                    "x",
                )
            },
            Case {
                expect: "not_found",
                ..case("non-member", "bob", VISION, Action::Read, "x")
            },
            Case {
                memberships: &[("vision", "viewer")],
                grants: vec![grant("in/", "project:vision", "editor", None)],
                expect: "deny",
                ..case(
                    "project grant capped by member role",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "in/x",
                )
            },
            Case {
                memberships: &[("vision", "editor")],
                grants: vec![grant("in/", "project:vision", "editor", None)],
                expect: "allow",
                ..case(
                    "project grant to an editor",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Write,
                    "in/x",
                )
            },
            Case {
                grants: vec![grant("in/", "project:vision", "editor", None)],
                expect: "not_found",
                ..case(
                    "project grant to a non-member",
                    "bob",
                    ALICE_PERSONAL,
                    Action::Read,
                    "in/x",
                )
            },
            Case {
                bucket: BucketFacts {
                    classification: 2,
                    ..ALICE_PERSONAL
                },
                clearance: 1,
                admin: true,
                expect: "not_found",
                ..case(
                    "above clearance, even a storage admin",
                    "root",
                    ALICE_PERSONAL,
                    Action::Admin,
                    "",
                )
            },
            Case {
                bucket: BucketFacts {
                    classification: 2,
                    ..ALICE_PERSONAL
                },
                clearance: 2,
                admin: true,
                expect: "allow",
                ..case(
                    "a cleared storage admin",
                    "root",
                    ALICE_PERSONAL,
                    Action::Admin,
                    "",
                )
            },
            Case {
                bucket: BucketFacts {
                    classification: 2,
                    ..ALICE_PERSONAL
                },
                clearance: 1,
                expect: "not_found",
                ..case(
                    "above clearance, even the owner",
                    "alice",
                    ALICE_PERSONAL,
                    Action::Read,
                    "x",
                )
            },
            Case {
                bucket: BucketFacts {
                    read_only: true,
                    ..ALICE_PERSONAL
                },
                expect: "deny",
                ..case(
                    "read-only refuses the owner's write",
                    "alice",
                    ALICE_PERSONAL,
                    Action::Write,
                    "x",
                )
            },
            Case {
                bucket: BucketFacts {
                    read_only: true,
                    ..ALICE_PERSONAL
                },
                expect: "allow",
                ..case(
                    "read-only still reads",
                    "alice",
                    ALICE_PERSONAL,
                    Action::Read,
                    "x",
                )
            },
            Case {
                admin: true,
                expect: "allow",
                ..case("admin", "root", ALICE_PERSONAL, Action::Admin, "")
            },
            Case {
                admin: true,
                bucket: BucketFacts {
                    read_only: true,
                    ..ALICE_PERSONAL
                },
                expect: "deny",
                ..case(
                    "read-only holds for admins",
                    "root",
                    ALICE_PERSONAL,
                    Action::Delete,
                    "x",
                )
            },
        ];
        let roles = roles();
        for c in cases {
            let principals = principals(c.sub, c.groups, &[]);
            let memberships: Vec<Membership> = c
                .memberships
                .iter()
                .map(|(p, r)| Membership {
                    project: (*p).into(),
                    role: (*r).into(),
                })
                .collect();
            let caller = Caller {
                subject: c.sub,
                principals: &principals,
                memberships: &memberships,
                clearance: c.clearance,
                admin: c.admin,
            };
            let scope = if c.prefix {
                Scope::Prefix(c.object)
            } else {
                Scope::Object(c.object)
            };
            let got = decide(&caller, &c.bucket, &c.grants, &roles, c.action, scope, NOW);
            assert_eq!(got.outcome(), c.expect, "{}: {got:?}", c.name);
        }
    }

    #[test]
    fn held_until_is_the_end_of_the_last_grant_holding_every_action() {
        let roles = roles();
        let soon = NOW + time::Duration::hours(1);
        let later = NOW + time::Duration::hours(2);
        let principals = principals("bob", &["/team"], &[]);
        let members = [Membership {
            project: "vision".into(),
            role: "editor".into(),
        }];
        let bob = Caller {
            subject: "bob",
            principals: &principals,
            memberships: &members,
            clearance: 0,
            admin: false,
        };
        let viewer = roles.actions("viewer");
        let editor = roles.actions("editor");
        let exact = |g: Grant| Grant { exact: true, ..g };
        let project_bucket = BucketFacts {
            project: Some("vision"),
            ..ALICE_PERSONAL
        };
        /// Name, bucket, grants, actions asked, scope, expected holding.
        type HeldCase<'a> = (
            &'a str,
            BucketFacts<'a>,
            Vec<Grant>,
            Actions,
            Scope<'a>,
            Option<Holding>,
        );
        let cases: Vec<HeldCase> = vec![
            (
                "no grant",
                ALICE_PERSONAL,
                vec![],
                viewer,
                Scope::Prefix("team/"),
                None,
            ),
            (
                "one expiring grant",
                ALICE_PERSONAL,
                vec![grant("team/", "user:bob", "owner", Some(soon))],
                viewer,
                Scope::Prefix("team/"),
                Some(Holding::Until(soon)),
            ),
            (
                "the latest of two",
                ALICE_PERSONAL,
                vec![
                    grant("team/", "user:bob", "owner", Some(soon)),
                    grant("", "group:/team", "viewer", Some(later)),
                ],
                viewer,
                Scope::Prefix("team/x/"),
                Some(Holding::Until(later)),
            ),
            (
                "a grant without end",
                ALICE_PERSONAL,
                vec![
                    grant("team/", "user:bob", "owner", Some(soon)),
                    grant("team/", "authenticated", "viewer", None),
                ],
                viewer,
                Scope::Prefix("team/"),
                Some(Holding::Forever),
            ),
            (
                "every action: the first to run out ends it",
                ALICE_PERSONAL,
                vec![
                    grant("team/", "user:bob", "viewer", None),
                    grant("team/", "user:bob", "editor", Some(soon)),
                ],
                editor,
                Scope::Prefix("team/"),
                Some(Holding::Until(soon)),
            ),
            (
                "expired grants hold nothing",
                ALICE_PERSONAL,
                vec![grant("team/", "user:bob", "owner", Some(NOW))],
                viewer,
                Scope::Prefix("team/"),
                None,
            ),
            (
                "an exact grant holds no prefix",
                ALICE_PERSONAL,
                vec![exact(grant("team/", "user:bob", "owner", None))],
                viewer,
                Scope::Prefix("team/"),
                None,
            ),
            (
                "membership has no end",
                project_bucket,
                vec![grant("team/", "user:bob", "viewer", Some(soon))],
                editor,
                Scope::Prefix("team/"),
                Some(Holding::Forever),
            ),
            (
                "ownership has no end",
                BucketFacts {
                    owner: Some("bob"),
                    ..ALICE_PERSONAL
                },
                vec![],
                editor,
                Scope::Prefix(""),
                Some(Holding::Forever),
            ),
        ];
        for (name, bucket, grants, actions, scope, want) in cases {
            let got = held_until(&bob, &bucket, &grants, &roles, actions, scope, NOW);
            assert_eq!(got, want, "{name}");
        }
    }

    /// The model, written as plainly as possible: list every right the caller holds as
    /// (prefix, action), then look the request up. It takes the world as plain values on purpose.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        sub: &str,
        groups: &[String],
        memberships: &[(String, String)],
        admin: bool,
        clearance: usize,
        owner: Option<&str>,
        project: Option<&str>,
        classification: usize,
        read_only: bool,
        grants: &[(String, String, String, bool, bool)],
        action: Action,
        object: &str,
        as_prefix: bool,
    ) -> &'static str {
        let role_actions = |role: &str| -> Vec<Action> {
            match role {
                "viewer" => vec![Action::Read],
                "editor" => vec![Action::Read, Action::Write, Action::Delete],
                "owner" => Action::ALL.to_vec(),
                _ => vec![],
            }
        };
        let writes = action == Action::Write || action == Action::Delete;
        if classification > clearance {
            return "not_found";
        }
        if admin {
            return if read_only && writes { "deny" } else { "allow" };
        }
        let member_of = |p: &str| -> Vec<Action> {
            memberships
                .iter()
                .filter(|(mp, _)| mp == p)
                .flat_map(|(_, r)| role_actions(r))
                .collect()
        };
        let is_member = |p: &str| memberships.iter().any(|(mp, _)| mp == p);
        let mut rights: Vec<(String, bool, Action)> = Vec::new();
        let mut visible = false;
        if owner == Some(sub) {
            visible = true;
            rights.extend(
                role_actions("owner")
                    .into_iter()
                    .map(|a| (String::new(), false, a)),
            );
        }
        if let Some(p) = project.filter(|p| is_member(p)) {
            visible = true;
            rights.extend(member_of(p).into_iter().map(|a| (String::new(), false, a)));
        }
        for (prefix, principal, role, expired, exact) in grants {
            if *expired {
                continue;
            }
            let matches = principal == &format!("user:{sub}")
                || principal == "authenticated"
                || groups.iter().any(|g| principal == &format!("group:{g}"));
            if let Some(p) = principal.strip_prefix("project:") {
                if is_member(p) {
                    visible = true;
                    let cap = member_of(p);
                    rights.extend(
                        role_actions(role)
                            .into_iter()
                            .filter(|a| cap.contains(a))
                            .map(|a| (prefix.clone(), *exact, a)),
                    );
                }
            } else if matches {
                visible = true;
                rights.extend(
                    role_actions(role)
                        .into_iter()
                        .map(|a| (prefix.clone(), *exact, a)),
                );
            }
        }
        if !visible {
            return "not_found";
        }
        // A right on one exact object covers that object, never a prefix of the same bytes.
        let allowed = rights.iter().any(|(prefix, exact, a)| {
            *a == action
                && if *exact {
                    !as_prefix && object == prefix
                } else {
                    object.starts_with(prefix.as_str())
                }
        });
        if allowed && !(read_only && writes) {
            "allow"
        } else {
            "deny"
        }
    }

    fn small() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c".to_owned())
        ]
    }

    fn object() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[ab/]{1,4}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// 20,000 random callers, buckets, grants and requests: `decide` and the model agree.
        #[test]
        fn agrees_with_the_reference_model(
            sub in small(),
            groups in proptest::collection::vec(small(), 0..3),
            memberships in proptest::collection::vec((small(), prop_oneof![Just("viewer"), Just("editor"), Just("owner"), Just("ghost")]), 0..3),
            admin in proptest::bool::weighted(0.05),
            clearance in 0usize..3,
            owner in proptest::option::of(small()),
            project in proptest::option::of(small()),
            classification in 0usize..3,
            read_only in proptest::bool::weighted(0.2),
            grants in proptest::collection::vec((
                object(),
                prop_oneof![
                    small().prop_map(|s| format!("user:{s}")),
                    small().prop_map(|s| format!("group:{s}")),
                    small().prop_map(|s| format!("project:{s}")),
                    Just("authenticated".to_owned()),
                    Just("role:x".to_owned()),
                ],
                prop_oneof![Just("viewer"), Just("editor"), Just("owner"), Just("ghost")],
                any::<bool>(),
                any::<bool>(),
            ), 0..4),
            action in prop_oneof![Just(Action::Read), Just(Action::Write), Just(Action::Delete), Just(Action::Share), Just(Action::Admin)],
            object in object(),
            as_prefix in any::<bool>(),
        ) {
            let memberships: Vec<(String, String)> = memberships.into_iter().map(|(p, r)| (p, r.to_owned())).collect();
            let grants: Vec<(String, String, String, bool, bool)> = grants.into_iter().map(|(p, who, r, e, x)| (p, who, r.to_owned(), e, x)).collect();
            let expected = reference(&sub, &groups, &memberships, admin, clearance, owner.as_deref(), project.as_deref(),
                classification, read_only, &grants, action, &object, as_prefix);

            let principals = principals(&sub, &groups.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
            let ms: Vec<Membership> = memberships.iter().map(|(p, r)| Membership { project: p.clone(), role: r.clone() }).collect();
            let gs: Vec<Grant> = grants.iter().map(|(p, who, r, expired, exact)| {
                let expires = if *expired { NOW - time::Duration::seconds(1) } else { NOW + time::Duration::hours(1) };
                Grant { exact: *exact, ..grant(p, who, r, Some(expires)) }
            }).collect();
            let caller = Caller { subject: &sub, principals: &principals, memberships: &ms, clearance, admin };
            let bucket = BucketFacts { owner: owner.as_deref(), project: project.as_deref(), classification, read_only };
            let scope = if as_prefix { Scope::Prefix(&object) } else { Scope::Object(&object) };
            let got = decide(&caller, &bucket, &gs, &roles(), action, scope, NOW);
            prop_assert_eq!(got.outcome(), expected, "{:?}", got);
        }
    }

    /// The rights a caller holds without any grant: as storage admin, owner, or member.
    fn standing_actions(
        sub: &str,
        memberships: &[(String, String)],
        admin: bool,
        owner: Option<&str>,
        project: Option<&str>,
    ) -> Vec<Action> {
        let role_actions = |role: &str| -> Vec<Action> {
            match role {
                "viewer" => vec![Action::Read],
                "editor" => vec![Action::Read, Action::Write, Action::Delete],
                "owner" => Action::ALL.to_vec(),
                _ => vec![],
            }
        };
        if admin {
            return Action::ALL.to_vec();
        }
        let mut held = Vec::new();
        if owner == Some(sub) {
            held.extend(role_actions("owner"));
        }
        for (p, r) in memberships {
            if Some(p.as_str()) == project {
                held.extend(role_actions(r));
            }
        }
        held
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

        /// Grant creation and member changes, against the same model: a grant of a role is
        /// allowed when the model allows every action of it on the scope; for half an hour
        /// (inside every held grant's hour), that is all; for two hours, each action must also be
        /// held without grants. A member change is allowed to admins, and to members holding
        /// `share` who give no more than they hold.
        #[test]
        fn grant_creation_and_member_changes_agree_with_the_model(
            sub in small(),
            groups in proptest::collection::vec(small(), 0..3),
            memberships in proptest::collection::vec((small(), prop_oneof![Just("viewer"), Just("editor"), Just("owner"), Just("ghost")]), 0..3),
            admin in proptest::bool::weighted(0.1),
            owner in proptest::option::of(small()),
            project in proptest::option::of(small()),
            read_only in proptest::bool::weighted(0.2),
            grants in proptest::collection::vec((
                object(),
                prop_oneof![
                    small().prop_map(|s| format!("user:{s}")),
                    small().prop_map(|s| format!("group:{s}")),
                    small().prop_map(|s| format!("project:{s}")),
                    Just("authenticated".to_owned()),
                ],
                prop_oneof![Just("viewer"), Just("editor"), Just("owner")],
                any::<bool>(),
                any::<bool>(),
            ), 0..4),
            role in prop_oneof![Just("viewer"), Just("editor"), Just("owner")],
            object in object(),
            as_prefix in any::<bool>(),
            managed in small(),
            given in proptest::option::of(prop_oneof![Just("viewer"), Just("editor"), Just("owner")]),
        ) {
            let memberships: Vec<(String, String)> = memberships.into_iter().map(|(p, r)| (p, r.to_owned())).collect();
            let grants: Vec<(String, String, String, bool, bool)> = grants.into_iter().map(|(p, who, r, e, x)| (p, who, r.to_owned(), e, x)).collect();
            let role_actions: Vec<Action> = roles().actions(role).iter().collect();
            let every_action_allowed = role_actions.iter().all(|a| {
                reference(&sub, &groups, &memberships, admin, 0, owner.as_deref(), project.as_deref(),
                    0, read_only, &grants, *a, &object, as_prefix) == "allow"
            });
            let standing = standing_actions(&sub, &memberships, admin, owner.as_deref(), project.as_deref());
            let held_for_good = role_actions.iter().all(|a| standing.contains(a));

            let principals = principals(&sub, &groups.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
            let ms: Vec<Membership> = memberships.iter().map(|(p, r)| Membership { project: p.clone(), role: r.clone() }).collect();
            let gs: Vec<Grant> = grants.iter().map(|(p, who, r, expired, exact)| {
                let expires = if *expired { NOW - time::Duration::seconds(1) } else { NOW + time::Duration::hours(1) };
                Grant { exact: *exact, ..grant(p, who, r, Some(expires)) }
            }).collect();
            let caller = Caller { subject: &sub, principals: &principals, memberships: &ms, clearance: 0, admin };
            let bucket = BucketFacts { owner: owner.as_deref(), project: project.as_deref(), classification: 0, read_only };
            let scope = if as_prefix { Scope::Prefix(&object) } else { Scope::Object(&object) };
            let half_hour = crate::policy::may_grant(&caller, &bucket, &gs, &roles(), role, scope,
                Some(NOW + time::Duration::minutes(30)), NOW);
            prop_assert_eq!(half_hour.is_ok(), every_action_allowed, "{:?}", half_hour);
            let two_hours = crate::policy::may_grant(&caller, &bucket, &gs, &roles(), role, scope,
                Some(NOW + time::Duration::hours(2)), NOW);
            prop_assert_eq!(two_hours.is_ok(), every_action_allowed && held_for_good, "{:?}", two_hours);

            let member_of: Vec<Action> = memberships.iter().filter(|(p, _)| *p == managed)
                .flat_map(|(_, r)| roles().actions(r).iter().collect::<Vec<_>>()).collect();
            let is_member = memberships.iter().any(|(p, _)| *p == managed);
            let expected = if admin {
                "allow"
            } else if !is_member {
                "not_found"
            } else if !member_of.contains(&Action::Share)
                || given.is_some_and(|g| roles().actions(g).iter().any(|a| !member_of.contains(&a)))
            {
                "deny"
            } else {
                "allow"
            };
            let got = crate::policy::may_change_members(&caller, &roles(), &managed, given);
            prop_assert_eq!(got.outcome(), expected, "{:?}", got);
        }
    }
}
