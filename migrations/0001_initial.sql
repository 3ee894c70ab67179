-- Projects and who belongs to them.
CREATE TABLE projects (
    slug        text PRIMARY KEY,
    name        text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A member is a user's subject, or `group:<path>` for everyone in a group.
CREATE TABLE project_members (
    project     text NOT NULL REFERENCES projects (slug) ON DELETE CASCADE,
    member      text NOT NULL,
    role        text NOT NULL,
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, member)
);
CREATE INDEX project_members_by_member ON project_members (member);

-- Logical buckets: what users see, mapped to a prefix of a GCS bucket by their class.
CREATE TABLE buckets (
    name            text PRIMARY KEY,
    class           text NOT NULL,
    owner           text,
    project         text REFERENCES projects (slug),
    backend_bucket  text NOT NULL,
    backend_prefix  text NOT NULL,
    classification  text NOT NULL,
    read_only       boolean NOT NULL DEFAULT false,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- One personal bucket per user: two concurrent first requests cannot make two.
CREATE UNIQUE INDEX buckets_one_personal_per_owner ON buckets (owner) WHERE class = 'personal';
CREATE INDEX buckets_by_project ON buckets (project) WHERE project IS NOT NULL;

-- Grants: role on objects starting with prefix, for a principal, until expires_at.
CREATE TABLE grants (
    id          uuid PRIMARY KEY,
    bucket      text NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    prefix      text NOT NULL,
    principal   text NOT NULL,
    role        text NOT NULL,
    expires_at  timestamptz,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The decision query: one bucket's grants for a caller's principals.
CREATE INDEX grants_by_bucket_principal ON grants (bucket, principal);
-- Which buckets a caller can see.
CREATE INDEX grants_by_principal ON grants (principal);

-- Every decision that issued a URL, and every denial.
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    request_id  text NOT NULL,
    subject     text,
    client      text,
    action      text NOT NULL,
    bucket      text,
    object      text,
    method      text,
    expires_at  timestamptz,
    decision    text NOT NULL CHECK (decision IN ('allow', 'deny', 'not_found')),
    reason      text NOT NULL
);
CREATE INDEX audit_events_by_at ON audit_events (at);
CREATE INDEX audit_events_by_subject ON audit_events (subject, at);
