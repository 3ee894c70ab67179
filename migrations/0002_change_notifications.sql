-- Every change to what decisions depend on is published on the `storage_broker_changes` channel,
-- whoever makes it (the API, an operator's psql, a restore), so that every broker replica drops
-- what it cached. Payloads: {"kind": "grant" | "bucket" | "member" | "project", "bucket": …,
-- "owner": …, "project": …}. NOTIFY is delivered at commit, so a replica never drops a cache
-- entry before the change is visible to its next query.

CREATE FUNCTION storage_broker_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_data jsonb;
    payload jsonb;
BEGIN
    row_data := to_jsonb(COALESCE(NEW, OLD));
    payload := CASE TG_TABLE_NAME
        WHEN 'grants' THEN jsonb_build_object('kind', 'grant', 'bucket', row_data->>'bucket')
        WHEN 'buckets' THEN jsonb_build_object('kind', 'bucket', 'bucket', row_data->>'name',
                                               'owner', row_data->>'owner', 'project', row_data->>'project')
        WHEN 'project_members' THEN jsonb_build_object('kind', 'member', 'project', row_data->>'project')
        ELSE jsonb_build_object('kind', 'project', 'project', row_data->>'slug')
    END;
    PERFORM pg_notify('storage_broker_changes', payload::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER grants_changed AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION storage_broker_notify();
CREATE TRIGGER buckets_changed AFTER INSERT OR UPDATE OR DELETE ON buckets
    FOR EACH ROW EXECUTE FUNCTION storage_broker_notify();
CREATE TRIGGER project_members_changed AFTER INSERT OR UPDATE OR DELETE ON project_members
    FOR EACH ROW EXECUTE FUNCTION storage_broker_notify();
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE ON projects
    FOR EACH ROW EXECUTE FUNCTION storage_broker_notify();
