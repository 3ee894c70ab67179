-- Audit reads (GET /v1/buckets/{bucket}/audit, GET /v1/audit), newest first with (at, id) as the
-- page cursor: a bucket's rows, a bucket's rows by subject, and refusals (rare, so a small partial
-- index) per bucket, and a bucket's rows by object prefix (LIKE 'prefix%' with text_pattern_ops,
-- whatever the database's collation). All buckets at once use audit_events_by_at and
-- audit_events_by_subject.
CREATE INDEX audit_events_by_bucket ON audit_events (bucket, at DESC, id DESC);
CREATE INDEX audit_events_by_bucket_subject ON audit_events (bucket, subject, at DESC, id DESC);
CREATE INDEX audit_events_refusals ON audit_events (bucket, at DESC, id DESC) WHERE decision <> 'allow';
CREATE INDEX audit_events_by_bucket_object ON audit_events (bucket, object text_pattern_ops);
