-- The audit is partitioned by day (UTC), so that a day past its retention is dropped as a table
-- (no DELETE, no bloat, no vacuum) once `storage-broker audit maintain` has exported it.
-- Partitions are named audit_events_YYYYMMDD and made ahead of time by the broker at start and
-- every hour, by `audit maintain`, and by the audit writer itself when a row finds none
-- (audit_ensure_partitions, below, is the one way to make them).
--
-- This converts an existing table: its rows are copied into the partitions, ids kept, and the
-- ids go on from the largest. The copy runs inside the migration's transaction; on a large table
-- it takes about as long as inserting the rows did in bulk (README, "Audit retention and
-- export").

ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned DROP CONSTRAINT audit_events_pkey;
DROP INDEX audit_events_by_at, audit_events_by_subject, audit_events_by_bucket,
    audit_events_by_bucket_subject, audit_events_refusals, audit_events_by_bucket_object;

CREATE SEQUENCE audit_event_ids AS bigint;
CREATE TABLE audit_events (
    id          bigint NOT NULL DEFAULT nextval('audit_event_ids'),
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
) PARTITION BY RANGE (at);
ALTER SEQUENCE audit_event_ids OWNED BY audit_events.id;
SELECT setval('audit_event_ids', COALESCE((SELECT max(id) FROM audit_events_unpartitioned), 0) + 1, false);

-- Makes the daily partitions for the UTC days first_day..last_day that do not exist yet; how many
-- it made. Concurrent callers (replicas, the maintenance job) wait on one lock, and each day's
-- check and creation happen under it.
CREATE FUNCTION audit_ensure_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    made integer := 0;
BEGIN
    IF last_day - first_day > 3660 THEN
        RAISE EXCEPTION 'audit_ensure_partitions: % days asked for', last_day - first_day;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('storage_broker.audit_partitions'));
    FOR day IN SELECT d::date FROM generate_series(first_day, last_day, interval '1 day') AS d LOOP
        IF to_regclass(format('audit_events_%s', to_char(day, 'YYYYMMDD'))) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                           'audit_events_' || to_char(day, 'YYYYMMDD'),
                           day::timestamp AT TIME ZONE 'UTC',
                           (day + 1)::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END;
$$;

-- The days of the rows there are, and a week ahead.
SELECT audit_ensure_partitions(
    (LEAST((SELECT min(at) FROM audit_events_unpartitioned), now()) AT TIME ZONE 'UTC')::date,
    ((now() AT TIME ZONE 'UTC') + interval '7 days')::date);

INSERT INTO audit_events (id, at, request_id, subject, client, action, bucket, object, method,
                          expires_at, decision, reason)
SELECT id, at, request_id, subject, client, action, bucket, object, method, expires_at, decision, reason
FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;

-- The indexes of 0001 and 0005, on every partition; (at, id) is the key and serves what
-- audit_events_by_at did.
ALTER TABLE audit_events ADD PRIMARY KEY (at, id);
CREATE INDEX audit_events_by_subject ON audit_events (subject, at);
CREATE INDEX audit_events_by_bucket ON audit_events (bucket, at DESC, id DESC);
CREATE INDEX audit_events_by_bucket_subject ON audit_events (bucket, subject, at DESC, id DESC);
CREATE INDEX audit_events_refusals ON audit_events (bucket, at DESC, id DESC) WHERE decision <> 'allow';
CREATE INDEX audit_events_by_bucket_object ON audit_events (bucket, object text_pattern_ops);

-- Which closed days `audit maintain` exported, where to, and how many rows: a day is dropped
-- after its retention only once it was exported with the rows it still has (or when no export is
-- configured).
CREATE TABLE audit_exports (
    day         date PRIMARY KEY,
    rows        bigint NOT NULL,
    objects     text[] NOT NULL,
    bytes       bigint NOT NULL,
    exported_at timestamptz NOT NULL DEFAULT now()
);
