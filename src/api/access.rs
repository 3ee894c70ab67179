//! The one authorize-and-audit path. Every decision a handler acts on is made by a function of
//! [`crate::policy`] and settled here: [`AuditTrail::settle`] turns it into an [`Allowed`] (whose
//! audit row waits for what happens next: a URL's expiry, a change's commit, a class limit's
//! refusal) or into the error to answer, with its row recorded. Rows are built in one place
//! ([`AuditTrail::row`]), committed in one insert per trail, and each decision is counted in the
//! metrics once, when its row is committed, so a request allowed and then refused by a class
//! limit counts as the denial it was.
//!
//! [`BucketAccess`] is a bucket as one caller sees it: loaded once per request (from the
//! decision cache), it decides with [`crate::policy::decide`] and nothing else does. Its
//! views ([`BucketAccess::actions`], [`BucketAccess::permits`]) say what the caller could do,
//! for a listing's filter or a bucket's page; they authorize nothing and are not audited.

use super::{ApiError, AppState, Caller};
use crate::policy::{
    Action, Actions, BucketClass, BucketFacts, Decision, GrantRefused, LimitExceeded, NewBucket,
    Scope,
};
use crate::store::{AccessContext, AuditEvent, BucketRecord, CacheChange};
use std::sync::Arc;
use time::OffsetDateTime;

/// What is being authorized, as the audit names it.
#[derive(Clone, Copy, Debug)]
pub struct Operation<'s> {
    pub action: Action,
    pub bucket: Option<&'s str>,
    /// The object, prefix, member or project the operation is about.
    pub object: Option<&'s str>,
    /// `GET`, `PUT`, `POST_POLICY`, `LIST`, `CREATE_GRANT`, `DELETE_MEMBER`, …
    pub method: &'static str,
}

/// The audit rows of one request (or one run of a batch), committed together.
pub struct AuditTrail<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    rows: Vec<AuditEvent>,
}

impl<'a> AuditTrail<'a> {
    pub fn new(state: &'a AppState, caller: &'a Caller) -> Self {
        Self {
            state,
            caller,
            rows: Vec::new(),
        }
    }

    /// The one place an audit row is made.
    fn row(&self, operation: &Operation<'_>, decision: &'static str, reason: String) -> AuditEvent {
        AuditEvent {
            at: OffsetDateTime::now_utc(),
            request_id: self.caller.request_id.clone(),
            subject: Some(self.caller.principal.subject.clone()),
            client: self.caller.principal.client.clone(),
            action: operation.action.as_str(),
            bucket: operation.bucket.map(str::to_owned),
            object: operation.object.map(str::to_owned),
            method: Some(operation.method),
            expires_at: None,
            decision,
            reason,
        }
    }

    /// Settles `decision` on `operation`: an allowance whose row waits in the [`Allowed`], or a
    /// refusal recorded here and returned as the error to answer (403, or 404 when the caller
    /// may not know the thing exists).
    pub fn settle(
        &mut self,
        operation: Operation<'_>,
        decision: Decision,
    ) -> Result<Allowed, ApiError> {
        let (outcome, reason, error) = match decision {
            Decision::Allow(reason) => return Ok(self.allow(&operation, reason)),
            Decision::Deny(reason) => ("deny", reason, ApiError::Forbidden),
            Decision::NotFound(reason) => ("not_found", reason, ApiError::NotFound),
        };
        self.rows.push(self.row(&operation, outcome, reason));
        Err(error)
    }

    /// Allows `operation` for `reason` without a decision: what every signed-in caller may do.
    pub fn allow(&self, operation: &Operation<'_>, reason: String) -> Allowed {
        Allowed {
            row: self.row(operation, "allow", reason),
        }
    }

    /// Commits every row in one insert, counting each decision once. Nothing may be answered
    /// about these rows (no URL, no change) before this returns.
    pub async fn commit(self) -> Result<(), ApiError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        use tracing::Instrument;
        for row in &self.rows {
            self.state.metrics.decision(row.decision);
        }
        let rows = self.rows.len();
        let span = crate::telemetry::traces::inner(|| tracing::info_span!("audit_commit", rows));
        Ok(self.state.audit.record(self.rows).instrument(span).await?)
    }

    /// Commits the refusals recorded so far and gives back the error to answer (or the
    /// audit's own failure, which wins: an unrecorded refusal is not answered as one).
    pub async fn fail(self, error: ApiError) -> ApiError {
        match self.commit().await {
            Ok(()) => error,
            Err(audit_failed) => audit_failed,
        }
    }
}

/// A decision that allowed an operation; its audit row is written by what the handler does
/// with it, exactly once.
#[must_use = "an allowed operation is recorded by signed, changed or refuse"]
pub struct Allowed {
    row: AuditEvent,
}

impl Allowed {
    /// Says in the audit how the operation came about ("prefix manifest"), before the reason.
    pub fn noting(mut self, note: &str) -> Self {
        self.row.reason = format!("{note}; {}", self.row.reason);
        self
    }

    /// A URL or policy was signed, valid until `expires_at`.
    pub fn signed(mut self, trail: &mut AuditTrail<'_>, expires_at: OffsetDateTime) {
        self.row.expires_at = Some(expires_at);
        trail.rows.push(self.row);
    }

    /// The operation was done, and changed nothing the decisions read (a listing answered, a
    /// bucket already gone).
    pub fn done(self, trail: &mut AuditTrail<'_>) {
        trail.rows.push(self.row);
    }

    /// Refused after all, by a rule checked once the decision allowed it (a class limit, a
    /// grant beyond what the caller holds): recorded as a denial, `error` answered.
    pub fn refuse(
        mut self,
        trail: &mut AuditTrail<'_>,
        reason: String,
        error: ApiError,
    ) -> ApiError {
        self.row.decision = "deny";
        self.row.reason = reason;
        trail.rows.push(self.row);
        error
    }

    /// [`Self::refuse`], and commits `trail`: for a request that ends here.
    pub async fn fail(
        self,
        mut trail: AuditTrail<'_>,
        reason: String,
        error: ApiError,
    ) -> ApiError {
        let error = self.refuse(&mut trail, reason, error);
        trail.fail(error).await
    }

    /// Refused by a limit of the bucket's class: a denial, answered 400 with the limit's code.
    pub fn exceeds(self, trail: &mut AuditTrail<'_>, limit: LimitExceeded) -> ApiError {
        let error = ApiError::bad_request(limit.code(), limit.to_string());
        self.refuse(trail, format!("class limit: {limit}"), error)
    }

    /// The change was made and has committed: drops what this replica cached about it (so the
    /// caller's next request never sees the old answer), then records it, before the answer
    /// leaves. `what` says what changed; the decision's reason follows it.
    pub async fn changed(mut self, mut trail: AuditTrail<'_>, what: &str) -> Result<(), ApiError> {
        trail
            .state
            .cache
            .changed(cache_change(self.row.method, self.row.bucket.as_deref()))
            .await;
        self.row.reason = format!("{what}; {}", self.row.reason);
        trail.rows.push(self.row);
        trail.commit().await
    }
}

/// What a change makes stale in the decision cache.
fn cache_change(method: Option<&str>, bucket: Option<&str>) -> CacheChange {
    match (method, bucket) {
        (Some("CREATE_GRANT" | "DELETE_GRANT"), Some(bucket)) => CacheChange::grant(bucket),
        (Some("CREATE_BUCKET" | "DELETE_BUCKET"), Some(bucket)) => CacheChange::bucket(bucket),
        // Projects and members reach into every bucket of the project (and anything new falls
        // here too): drop every cached decision.
        _ => CacheChange::members(),
    }
}

/// A bucket as one caller sees it, with their grants and memberships.
#[derive(Clone)]
pub struct BucketAccess<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    /// The name asked for (which the audit records, whether or not it exists).
    name: Arc<str>,
    context: Arc<AccessContext>,
}

/// An operation on a bucket that was allowed, with the bucket and its class.
pub struct Granted<'b> {
    pub record: &'b BucketRecord,
    pub class: &'b BucketClass,
    pub allowed: Allowed,
}

impl<'a> BucketAccess<'a> {
    /// Loads `bucket` for `caller` (from the cache when it is live).
    pub async fn resolve(
        state: &'a AppState,
        caller: &'a Caller,
        bucket: &str,
    ) -> Result<Self, ApiError> {
        use tracing::Instrument;
        let context = state
            .cache
            .access_context(
                &state.store,
                bucket,
                &caller.grant_principals,
                &caller.member_keys,
            )
            .instrument(crate::telemetry::traces::inner(|| {
                tracing::info_span!("decision", bucket)
            }))
            .await?;
        Ok(Self::with_context(state, caller, bucket, context))
    }

    /// `bucket` for `caller`, from a context already loaded (a batch loads each bucket once).
    pub fn with_context(
        state: &'a AppState,
        caller: &'a Caller,
        bucket: &str,
        context: Arc<AccessContext>,
    ) -> Self {
        Self {
            state,
            caller,
            name: bucket.into(),
            context,
        }
    }

    /// The bucket, if it exists (visible to the caller or not: ask [`Self::authorize`]).
    pub fn record(&self) -> Option<&BucketRecord> {
        self.context.bucket.as_ref()
    }

    /// The bucket, grants and memberships this access decides with.
    pub fn context(&self) -> Arc<AccessContext> {
        self.context.clone()
    }

    /// The grants on the bucket that name the caller.
    pub fn grants(&self) -> &[crate::policy::Grant] {
        &self.context.grants
    }

    /// Whether the bucket exists but names a class or level the policies lack (logged).
    pub fn misconfigured(&self) -> bool {
        self.record().is_some() && self.facts().is_none()
    }

    /// Whether the bucket, or its class, refuses every write and delete.
    pub fn read_only(&self) -> bool {
        self.facts().is_some_and(|(_, _, facts)| facts.read_only)
    }

    /// What the decision knows of the bucket and its class; `None` when the bucket does not
    /// exist, or names a class or level the policies no longer have (an operator's mistake,
    /// logged: such a bucket is refused to everyone until the policies name it again).
    fn facts(&self) -> Option<(&BucketRecord, &BucketClass, BucketFacts<'_>)> {
        let record = self.context.bucket.as_ref()?;
        let Some((class, level)) = self.state.class_of(record) else {
            tracing::error!(
                bucket = record.name,
                class = record.class,
                classification = record.classification,
                "bucket names a class or level the policies lack; refused to everyone"
            );
            return None;
        };
        let facts = BucketFacts {
            owner: record.owner.as_deref(),
            project: record.project.as_deref(),
            classification: level,
            read_only: record.read_only || class.read_only,
        };
        Some((record, class, facts))
    }

    fn decide(&self, facts: &BucketFacts<'_>, action: Action, scope: Scope<'_>) -> Decision {
        crate::policy::decide(
            &self.caller.as_policy_caller(&self.context.memberships),
            facts,
            &self.context.grants,
            &self.state.policies.roles,
            action,
            scope,
            OffsetDateTime::now_utc(),
        )
    }

    fn operation<'s>(
        &'s self,
        action: Action,
        scope: Scope<'s>,
        method: &'static str,
    ) -> Operation<'s> {
        Operation {
            action,
            bucket: Some(&self.name),
            object: Some(scope.as_str()),
            method,
        }
    }

    /// Decides `action` on `scope` (`Scope::Prefix("")` for the bucket itself) and settles it in
    /// `trail`. A bucket that does not exist is not found, like one the caller may not see; one
    /// whose class the policies lack is refused (500, logged).
    pub fn authorize(
        &self,
        trail: &mut AuditTrail<'_>,
        action: Action,
        scope: Scope<'_>,
        method: &'static str,
    ) -> Result<Granted<'_>, ApiError> {
        let operation = self.operation(action, scope, method);
        if self.record().is_none() {
            let row = trail.row(&operation, "not_found", "no such bucket".into());
            trail.rows.push(row);
            return Err(ApiError::NotFound);
        }
        let Some((record, class, facts)) = self.facts() else {
            let row = trail.row(
                &operation,
                "deny",
                "bucket class missing from the policies".into(),
            );
            trail.rows.push(row);
            return Err(ApiError::Internal);
        };
        let allowed = trail.settle(operation, self.decide(&facts, action, scope))?;
        Ok(Granted {
            record,
            class,
            allowed,
        })
    }

    /// Decides every one of `actions` on `scope` and settles them as one operation, recorded
    /// as the last action (the strongest, for `[Read, Write, Delete]`): the first refusal is the
    /// answer; all allowed, one allowance. For what needs several rights at once (vended
    /// credentials).
    pub fn authorize_all(
        &self,
        trail: &mut AuditTrail<'_>,
        actions: &[Action],
        scope: Scope<'_>,
        method: &'static str,
    ) -> Result<Granted<'_>, ApiError> {
        let (&last, earlier) = actions.split_last().ok_or(ApiError::Internal)?;
        if let Some((_, _, facts)) = self.facts() {
            for &action in earlier {
                let decision = self.decide(&facts, action, scope);
                if !matches!(decision, Decision::Allow(_)) {
                    let operation = self.operation(action, scope, method);
                    return Err(match trail.settle(operation, decision) {
                        Err(error) => error,
                        Ok(_) => ApiError::Internal,
                    });
                }
            }
        }
        self.authorize(trail, last, scope, method)
    }

    /// Until when the caller holds every one of `actions` on `scope` (through which grants);
    /// `None` when they do not hold them all.
    pub fn holding(&self, actions: Actions, scope: Scope<'_>) -> Option<crate::policy::Holding> {
        let (_, _, facts) = self.facts()?;
        crate::policy::held_until(
            &self.caller.as_policy_caller(&self.context.memberships),
            &facts,
            &self.context.grants,
            &self.state.policies.roles,
            actions,
            scope,
            OffsetDateTime::now_utc(),
        )
    }

    /// Authorizes a listing of `prefix`: anyone who can see the bucket may list it, and sees
    /// only the objects they may read ([`Self::permits`]).
    pub fn authorize_listing(
        &self,
        trail: &mut AuditTrail<'_>,
        prefix: &str,
        method: &'static str,
    ) -> Result<Granted<'_>, ApiError> {
        let scope = Scope::Prefix(prefix);
        let Some((record, class, facts)) = self.facts() else {
            // Not found, or a class the policies lack: as for any operation.
            return self.authorize(trail, Action::Read, scope, method);
        };
        let decision = match self.decide(&facts, Action::Read, scope) {
            Decision::Deny(reason) => Decision::Allow(format!(
                "sees the bucket ({reason}): the listing shows readable objects only"
            )),
            other => other,
        };
        let allowed = trail.settle(self.operation(Action::Read, scope, method), decision)?;
        Ok(Granted {
            record,
            class,
            allowed,
        })
    }

    /// Whether the caller may do `action` on `scope`. A view: it authorizes nothing.
    pub fn permits(&self, action: Action, scope: Scope<'_>) -> bool {
        self.facts().is_some_and(|(_, _, facts)| {
            matches!(self.decide(&facts, action, scope), Decision::Allow(_))
        })
    }

    /// What the caller may do on the whole bucket, or `None` when they may not see it. A view:
    /// it authorizes nothing.
    pub fn actions(&self) -> Option<Actions> {
        let (_, _, facts) = self.facts()?;
        if let Decision::NotFound(_) = self.decide(&facts, Action::Read, Scope::Prefix("")) {
            return None;
        }
        Some(
            Action::ALL
                .into_iter()
                .filter(|a| {
                    matches!(
                        self.decide(&facts, *a, Scope::Prefix("")),
                        Decision::Allow(_)
                    )
                })
                .collect(),
        )
    }

    /// Checks a grant of `role` on `scope` until `expires_at` that `granted` (the caller's
    /// `share` on that scope) allowed: nobody grants more, or longer, than they hold.
    pub fn check_grant(
        &self,
        trail: &mut AuditTrail<'_>,
        granted: Granted<'_>,
        role: &str,
        scope: Scope<'_>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Allowed, ApiError> {
        let Some((_, _, facts)) = self.facts() else {
            return Err(granted.allowed.refuse(
                trail,
                "bucket vanished".into(),
                ApiError::Internal,
            ));
        };
        let checked = crate::policy::may_grant(
            &self.caller.as_policy_caller(&self.context.memberships),
            &facts,
            &self.context.grants,
            &self.state.policies.roles,
            role,
            scope,
            expires_at,
            OffsetDateTime::now_utc(),
        );
        match checked {
            Ok(()) => Ok(granted.allowed),
            Err(GrantRefused::MoreThanHeld(reason)) => {
                Err(granted.allowed.refuse(trail, reason, ApiError::Forbidden))
            }
            Err(GrantRefused::LongerThanHeld(end)) => {
                let end = crate::signing::rfc3339_seconds(end);
                let reason = format!(
                    "cannot grant {role} beyond {end}: the caller holds it only through grants ending then"
                );
                let error = ApiError::bad_request(
                    "expiry_exceeds_holding",
                    format!(
                        "you hold this role here only until {end}, through grants that end then; give an expires_at at or before it"
                    ),
                );
                Err(granted.allowed.refuse(trail, reason, error))
            }
        }
    }
}

/// Authorizes making a bucket: `bucket.project`'s memberships are read for a project bucket.
pub async fn authorize_new_bucket(
    trail: &mut AuditTrail<'_>,
    name: &str,
    bucket: NewBucket<'_>,
) -> Result<Allowed, ApiError> {
    let (state, caller) = (trail.state, trail.caller);
    let memberships = match bucket.project {
        Some(_) if !caller.admin => state.store.memberships(&caller.member_keys).await?,
        _ => Vec::new(),
    };
    let decision = crate::policy::may_create_bucket(
        &caller.as_policy_caller(&memberships),
        &state.policies.roles,
        bucket,
    );
    let operation = Operation {
        action: Action::Admin,
        bucket: Some(name),
        object: None,
        method: "CREATE_BUCKET",
    };
    trail.settle(operation, decision)
}

/// Authorizes a change to `project`'s members: giving `member` the role `role`, or (`None`)
/// removing them.
pub async fn authorize_member_change(
    trail: &mut AuditTrail<'_>,
    project: &str,
    member: &str,
    role: Option<&str>,
) -> Result<Allowed, ApiError> {
    let (state, caller) = (trail.state, trail.caller);
    let memberships = state.store.memberships(&caller.member_keys).await?;
    let decision = crate::policy::may_change_members(
        &caller.as_policy_caller(&memberships),
        &state.policies.roles,
        project,
        role,
    );
    let operation = Operation {
        action: Action::Share,
        bucket: None,
        object: Some(member),
        method: if role.is_some() {
            "PUT_MEMBER"
        } else {
            "DELETE_MEMBER"
        },
    };
    trail.settle(operation, decision)
}
