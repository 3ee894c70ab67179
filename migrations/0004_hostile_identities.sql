-- Identities are hostile strings (issue 12). This migration:
--
-- 1. Puts members in key spaces of their own: `user:<sub>` beside `group:<path>`, so that a
--    token whose `sub` is `group:/vision` is no member of what the group belongs to. Rows that
--    already name a group stay groups; every other row names a user.
-- 2. Re-renders personal buckets' backend prefixes with the subject percent-encoded (every byte
--    outside A-Z a-z 0-9 - _), as the broker now renders them: `users/alice/x/` (owner
--    `alice/x`, inside alice's) becomes `users/alice%2Fx/`. Subjects made of those bytes alone
--    (Keycloak's UUIDs) do not change. Only prefixes that end with `<owner>/` (the shipped
--    template `users/{owner}/` and any `…/{owner}/`) can be rewritten here; others are left and
--    reported as a WARNING. The broker never moves objects: see the README ("Hostile identities").
-- 3. Makes the database refuse two buckets whose backend locations overlap, whoever inserts them.
-- 4. Drops a project's grants with the project, so that a later project of the same slug does not
--    inherit them.
-- 5. Keeps the broker's own secrets (the page-token key), shared by every replica.

UPDATE project_members SET member = 'user:' || member WHERE member NOT LIKE 'group:%';

CREATE FUNCTION storage_broker_owner_segment(subject text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    bytes bytea := convert_to(subject, 'UTF8');
    out text := '';
    b int;
BEGIN
    FOR i IN 0 .. length(bytes) - 1 LOOP
        b := get_byte(bytes, i);
        IF (b BETWEEN 48 AND 57) OR (b BETWEEN 65 AND 90) OR (b BETWEEN 97 AND 122) OR b = 45 OR b = 95 THEN
            out := out || chr(b);
        ELSE
            out := out || '%' || upper(lpad(to_hex(b), 2, '0'));
        END IF;
    END LOOP;
    RETURN out;
END;
$$;

DO $$
DECLARE
    bucket record;
    encoded text;
BEGIN
    FOR bucket IN SELECT name, owner, backend_prefix FROM buckets
                  WHERE class = 'personal' AND owner IS NOT NULL AND owner !~ '^[A-Za-z0-9_-]*$'
    LOOP
        encoded := storage_broker_owner_segment(bucket.owner);
        IF right(bucket.backend_prefix, length(bucket.owner) + 1) = bucket.owner || '/' THEN
            UPDATE buckets
            SET backend_prefix = left(backend_prefix, length(backend_prefix) - length(bucket.owner) - 1)
                                 || encoded || '/',
                updated_at = now()
            WHERE name = bucket.name;
            RAISE NOTICE 'personal bucket % moved from % to its encoded prefix (objects stay where they are)',
                bucket.name, bucket.backend_prefix;
        ELSE
            RAISE WARNING 'personal bucket % (owner %): backend prefix % does not end with its owner; re-render it by hand',
                bucket.name, bucket.owner, bucket.backend_prefix;
        END IF;
    END LOOP;
END;
$$;

DROP FUNCTION storage_broker_owner_segment(text);

-- Two logical buckets never map to overlapping prefixes of one backend bucket. Inserts and
-- updates of one backend bucket are serialised (an advisory lock until commit), so that two
-- concurrent ones cannot both pass the check. Every backend prefix is empty or ends with '/', so
-- a prefix that contains the new one is the new one cut after one of its '/' (an index lookup),
-- and one inside it matches `LIKE new%` (an index range, planned with the value: EXECUTE).
CREATE INDEX buckets_by_backend_location ON buckets (backend_bucket, backend_prefix text_pattern_ops);

-- (enable_seqscan off: within a bulk insert the planner's statistics still say the table is
-- empty, and a scan per row would make inserting n buckets take n² time.)
CREATE FUNCTION storage_broker_no_overlap() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    containing text[] := ARRAY[''];
    inside boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('storage_broker_backend:' || NEW.backend_bucket));
    FOR i IN 1 .. length(NEW.backend_prefix) LOOP
        IF substr(NEW.backend_prefix, i, 1) = '/' THEN
            containing := containing || left(NEW.backend_prefix, i);
        END IF;
    END LOOP;
    EXECUTE format(
        'SELECT EXISTS (SELECT 1 FROM buckets WHERE backend_bucket = %L AND name <> %L
                          AND (backend_prefix = ANY (%L::text[]) OR backend_prefix LIKE %L))',
        NEW.backend_bucket, NEW.name, containing,
        replace(replace(replace(NEW.backend_prefix, '\', '\\'), '%', '\%'), '_', '\_') || '%')
    INTO inside;
    IF inside THEN
        RAISE EXCEPTION 'backend location %/% overlaps another bucket''s', NEW.backend_bucket, NEW.backend_prefix
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER buckets_no_overlap BEFORE INSERT OR UPDATE OF backend_bucket, backend_prefix ON buckets
    FOR EACH ROW EXECUTE FUNCTION storage_broker_no_overlap();

CREATE FUNCTION storage_broker_project_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM grants WHERE principal = 'project:' || OLD.slug;
    RETURN OLD;
END;
$$;
CREATE TRIGGER projects_drop_grants AFTER DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION storage_broker_project_gone();

CREATE TABLE broker_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
