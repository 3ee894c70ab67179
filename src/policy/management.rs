//! Who may change what: making buckets, passing rights on in grants, managing a project's
//! members. Pure functions, like [`decide`](super::decide), which they build on.

use super::decision::member_actions;
use super::{
    Action, BucketClass, BucketFacts, Caller, Decision, Grant, Holding, Roles, Scope, decide,
    held_until,
};
use time::OffsetDateTime;

/// A bucket someone asks to make.
#[derive(Clone, Copy, Debug)]
pub struct NewBucket<'a> {
    pub class: &'a BucketClass,
    /// The project of a project bucket; `None` for a registered existing bucket.
    pub project: Option<&'a str>,
    /// Registers an existing storage bucket or prefix, or sets `read_only`.
    pub registers: bool,
}

/// Whether `caller` may read every bucket's audit (`GET /v1/audit`): storage admins only. A
/// bucket's own audit is `admin` on that bucket, decided like any other action.
pub fn may_read_all_audit(caller: &Caller<'_>) -> Decision {
    if caller.admin {
        Decision::Allow("storage admin".into())
    } else {
        Decision::Deny("the whole audit is for storage admins".into())
    }
}

/// Whether `caller` may make `bucket`. Classification is a clearance, not a permission:
/// nobody, storage admins included, makes a bucket they could not see. Registering existing
/// storage and setting `read_only` are for storage admins; a project bucket, for the project's
/// owners (whose member role holds `admin`). A project the caller is no member of is not found.
/// `caller.memberships` must hold the caller's memberships of `bucket.project`.
pub fn may_create_bucket(caller: &Caller<'_>, roles: &Roles, bucket: NewBucket<'_>) -> Decision {
    if bucket.class.classification > caller.clearance {
        return Decision::Deny(format!(
            "class {} is classified above the caller's clearance",
            bucket.class.name
        ));
    }
    if caller.admin {
        return Decision::Allow("storage admin".into());
    }
    if bucket.registers {
        return Decision::Deny(
            "only storage admins register existing buckets or set read_only".into(),
        );
    }
    let Some(project) = bucket.project else {
        return Decision::Deny("a bucket is a project's or an existing one".into());
    };
    match member_actions(caller, roles, project) {
        None => Decision::NotFound(format!("not a member of project {project}")),
        Some(actions) if actions.contains(Action::Admin) => {
            Decision::Allow(format!("owner of project {project}"))
        }
        Some(_) => Decision::Deny(format!(
            "creating a bucket of project {project} needs its owner role"
        )),
    }
}

/// Why a grant that its maker may share on its scope is still refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantRefused {
    /// The role holds an action the maker does not hold on the whole scope.
    MoreThanHeld(String),
    /// The maker holds the role only through grants that end at this instant, and the new
    /// grant would outlive them (or never end).
    LongerThanHeld(OffsetDateTime),
}

/// Whether `caller` may grant `role` on `scope` of `bucket` until `expires_at` (`None`: no end).
/// Nobody grants more than they hold: every action of the role, on the whole scope (a prefix by
/// prefix rights only, never by a grant on one object of that name); nor for longer than they
/// hold it. The right to share at all is [`decide`]'s (action `share`), asked first.
#[allow(clippy::too_many_arguments)]
pub fn may_grant(
    caller: &Caller<'_>,
    bucket: &BucketFacts<'_>,
    grants: &[Grant],
    roles: &Roles,
    role: &str,
    scope: Scope<'_>,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), GrantRefused> {
    let actions = roles.actions(role);
    for action in actions.iter() {
        if !matches!(
            decide(caller, bucket, grants, roles, action, scope, now),
            Decision::Allow(_)
        ) {
            return Err(GrantRefused::MoreThanHeld(format!(
                "cannot grant {role}: the caller does not hold {action} on {:?}",
                scope.as_str()
            )));
        }
    }
    match held_until(caller, bucket, grants, roles, actions, scope, now) {
        Some(Holding::Forever) => Ok(()),
        Some(Holding::Until(end)) if expires_at.is_some_and(|at| at <= end) => Ok(()),
        Some(Holding::Until(end)) => Err(GrantRefused::LongerThanHeld(end)),
        // decide allowed every action, so they are held; should the two ever disagree, refuse.
        None => Err(GrantRefused::MoreThanHeld(format!(
            "cannot grant {role}: not every action of it is held"
        ))),
    }
}

/// Whether `caller` may add a member to `project` with `role`, change a member's role to it, or
/// (`role: None`) remove a member. Storage admins may; members may with `share` in the project,
/// and give no role holding more than they hold there. A project the caller is no member of is
/// not found. (That a project keeps an owner is the store's, checked in the same transaction.)
pub fn may_change_members(
    caller: &Caller<'_>,
    roles: &Roles,
    project: &str,
    role: Option<&str>,
) -> Decision {
    let standing = member_actions(caller, roles, project);
    if caller.admin {
        return Decision::Allow("storage admin".into());
    }
    let Some(actions) = standing else {
        return Decision::NotFound(format!("not a member of project {project}"));
    };
    if !actions.contains(Action::Share) {
        return Decision::Deny(format!("no share right in project {project}"));
    }
    if let Some(role) = role
        && !actions.covers(roles.actions(role))
    {
        return Decision::Deny(format!(
            "cannot give {role}: more than the caller holds in {project}"
        ));
    }
    Decision::Allow(format!("share right in project {project}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decision::tests::{grant, roles};
    use crate::policy::{Classes, GrantPrincipal, Membership};

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-24 12:00 UTC);

    fn classes() -> Classes {
        Classes::parse(include_str!("../../policies/classes.toml")).expect("shipped classes")
    }

    fn member(project: &str, role: &str) -> Membership {
        Membership {
            project: project.into(),
            role: role.into(),
        }
    }

    fn caller<'a>(memberships: &'a [Membership], admin: bool, clearance: usize) -> Caller<'a> {
        Caller {
            subject: "alice",
            principals: &[],
            memberships,
            clearance,
            admin,
        }
    }

    #[test]
    fn the_whole_audit_is_for_storage_admins_only() {
        let owner = [member("vision", "owner")];
        assert!(matches!(
            may_read_all_audit(&caller(&[], true, 0)),
            Decision::Allow(_)
        ));
        assert!(matches!(
            may_read_all_audit(&caller(&owner, false, 2)),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn creating_buckets() {
        let roles = roles();
        let classes = classes();
        let project = classes.get("project").expect("project class");
        let protected = classes
            .get("existing-protected-b")
            .expect("protected class");
        let owner = [member("p", "owner")];
        let editor = [member("p", "editor")];
        let other = [member("q", "owner")];
        let new = |class, project, registers| NewBucket {
            class,
            project,
            registers,
        };
        let cases = [
            (
                "owner of the project",
                caller(&owner, false, 0),
                new(project, Some("p"), false),
                "allow",
            ),
            (
                "editor of the project",
                caller(&editor, false, 0),
                new(project, Some("p"), false),
                "deny",
            ),
            (
                "owner of another project",
                caller(&other, false, 0),
                new(project, Some("p"), false),
                "not_found",
            ),
            (
                "owner setting read_only",
                caller(&owner, false, 0),
                new(project, Some("p"), true),
                "deny",
            ),
            (
                "member registering storage",
                caller(&owner, false, 0),
                new(protected, None, true),
                "deny",
            ),
            (
                "admin registering storage they are cleared for",
                caller(&[], true, 2),
                new(protected, None, true),
                "allow",
            ),
            (
                "admin registering above their clearance",
                caller(&[], true, 1),
                new(protected, None, true),
                "deny",
            ),
            (
                "admin making any project's bucket",
                caller(&[], true, 0),
                new(project, Some("p"), false),
                "allow",
            ),
            (
                "neither a project nor storage",
                caller(&owner, false, 0),
                new(project, None, false),
                "deny",
            ),
        ];
        for (name, caller, bucket, want) in cases {
            let got = may_create_bucket(&caller, &roles, bucket);
            assert_eq!(got.outcome(), want, "{name}: {got:?}");
        }
    }

    #[test]
    fn managing_members() {
        let roles = roles();
        let owner = [member("p", "owner")];
        let editor = [member("p", "editor")];
        let viewer_twice = [member("p", "viewer"), member("p", "viewer")];
        let elsewhere = [member("q", "owner")];
        let cases = [
            (
                "owner gives owner",
                caller(&owner, false, 0),
                Some("owner"),
                "allow",
            ),
            ("owner removes", caller(&owner, false, 0), None, "allow"),
            (
                "editor without share",
                caller(&editor, false, 0),
                Some("viewer"),
                "deny",
            ),
            (
                "viewer without share",
                caller(&viewer_twice, false, 0),
                None,
                "deny",
            ),
            (
                "a member elsewhere",
                caller(&elsewhere, false, 0),
                Some("viewer"),
                "not_found",
            ),
            (
                "storage admin, no member",
                caller(&[], true, 0),
                Some("owner"),
                "allow",
            ),
            (
                "an unknown role holds nothing",
                caller(&owner, false, 0),
                Some("ghost"),
                "allow",
            ),
        ];
        for (name, caller, role, want) in cases {
            let got = may_change_members(&caller, &roles, "p", role);
            assert_eq!(got.outcome(), want, "{name}: {got:?}");
        }
    }

    /// A role that holds `share` but not `admin` cannot pass on `owner`.
    #[test]
    fn no_member_gives_more_than_they_hold() {
        let text = r#"
            [roles]
            viewer = ["read"]
            editor = ["read", "write", "delete"]
            owner = ["read", "write", "delete", "share", "admin"]
            steward = ["read", "share"]
        "#;
        let roles = Roles::parse(text).expect("roles");
        let steward = [member("p", "steward")];
        let c = caller(&steward, false, 0);
        assert_eq!(
            may_change_members(&c, &roles, "p", Some("viewer")).outcome(),
            "allow"
        );
        assert_eq!(
            may_change_members(&c, &roles, "p", Some("steward")).outcome(),
            "allow"
        );
        assert_eq!(
            may_change_members(&c, &roles, "p", Some("editor")).outcome(),
            "deny"
        );
        assert_eq!(
            may_change_members(&c, &roles, "p", Some("owner")).outcome(),
            "deny"
        );
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn granting() {
        let roles = roles();
        let hour = NOW + time::Duration::hours(1);
        let two = NOW + time::Duration::hours(2);
        let principals = [GrantPrincipal::User("alice".into())];
        let alice = Caller {
            subject: "alice",
            principals: &principals,
            memberships: &[],
            clearance: 0,
            admin: false,
        };
        let bobs = BucketFacts {
            owner: Some("bob"),
            project: None,
            classification: 0,
            read_only: false,
        };
        let alices = BucketFacts {
            owner: Some("alice"),
            ..bobs
        };
        let until_hour = [grant("a/", "user:alice", "owner", Some(hour))];
        let forever = [grant("a/", "user:alice", "owner", None)];
        let exact = [Grant {
            exact: true,
            ..grant("a/", "user:alice", "owner", None)
        }];
        let more = |s: &str| Err(GrantRefused::MoreThanHeld(s.into()));
        let cases: Vec<(
            &str,
            BucketFacts,
            &[Grant],
            &str,
            Scope,
            Option<OffsetDateTime>,
            Result<(), GrantRefused>,
        )> = vec![
            (
                "the owner, anything, forever",
                alices,
                &[],
                "owner",
                Scope::Prefix(""),
                None,
                Ok(()),
            ),
            (
                "through a lasting grant, under it",
                bobs,
                &forever,
                "editor",
                Scope::Prefix("a/b/"),
                None,
                Ok(()),
            ),
            (
                "beyond the grant's prefix",
                bobs,
                &forever,
                "viewer",
                Scope::Prefix("b/"),
                None,
                more("cannot grant viewer: the caller does not hold read on \"b/\""),
            ),
            (
                "an exact grant is no right on the prefix",
                bobs,
                &exact,
                "viewer",
                Scope::Prefix("a/"),
                None,
                more("cannot grant viewer: the caller does not hold read on \"a/\""),
            ),
            (
                "an exact grant passes on the object",
                bobs,
                &exact,
                "viewer",
                Scope::Object("a/"),
                None,
                Ok(()),
            ),
            (
                "until the held grant ends",
                bobs,
                &until_hour,
                "viewer",
                Scope::Prefix("a/"),
                Some(hour),
                Ok(()),
            ),
            (
                "beyond the held grant's end",
                bobs,
                &until_hour,
                "viewer",
                Scope::Prefix("a/"),
                Some(two),
                Err(GrantRefused::LongerThanHeld(hour)),
            ),
            (
                "forever from an ending grant",
                bobs,
                &until_hour,
                "viewer",
                Scope::Prefix("a/"),
                None,
                Err(GrantRefused::LongerThanHeld(hour)),
            ),
        ];
        for (name, bucket, grants, role, scope, expires_at, want) in cases {
            let got = may_grant(
                &alice, &bucket, grants, &roles, role, scope, expires_at, NOW,
            );
            assert_eq!(got, want, "{name}");
        }
    }
}
