-- Seeds a broker database for the decision benchmark (benches/decision.rs), or for trying things
-- at scale:  psql "$DATABASE_URL" -v users=100000 -v projects=10000 -v grants=1000000 -f bench/seed.sql
-- Users user-1..N, each with a personal bucket u-user-N and two groups; projects proj-1..M with
-- ten members each (users and groups) and a bucket p-proj-M; grants spread over all buckets to
-- users, groups, projects, realm roles and `authenticated`, a tenth of them expiring.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO buckets (name, class, owner, backend_bucket, backend_prefix, classification, created_by)
SELECT 'u-user-' || i, 'personal', 'user-' || i, 'storage-broker-data', 'users/user-' || i || '/', 'unclassified', 'user-' || i
FROM generate_series(1, :users) AS i;

INSERT INTO projects (slug, name, created_by)
SELECT 'proj-' || p, 'Project ' || p, 'user-' || (1 + p % :users) FROM generate_series(1, :projects) AS p;

INSERT INTO project_members (project, member, role, added_by)
SELECT 'proj-' || p,
       CASE WHEN k < 8 THEN 'user:user-' || (1 + (p * 7919 + k * 104729) % :users) ELSE 'group:/g-' || ((p + k) % 1000) END,
       (ARRAY['viewer', 'editor', 'owner'])[1 + (p + k) % 3],
       'seed'
FROM generate_series(1::bigint, :projects) AS p, generate_series(0, 9) AS k
ON CONFLICT DO NOTHING;

INSERT INTO buckets (name, class, project, backend_bucket, backend_prefix, classification, created_by)
SELECT 'p-proj-' || p, 'project', 'proj-' || p, 'storage-broker-data', 'projects/proj-' || p || '/', 'unclassified', 'seed'
FROM generate_series(1, :projects) AS p;

INSERT INTO grants (id, bucket, prefix, principal, role, expires_at, created_by)
SELECT gen_random_uuid(),
       CASE WHEN g % 10 = 0 THEN 'p-proj-' || (1 + (g * 31) % :projects) ELSE 'u-user-' || (1 + (g * 2654435761::bigint) % :users) END,
       'shared/' || (g % 100) || '/',
       CASE g % 5
           WHEN 0 THEN 'group:/g-' || (g % 1000)
           WHEN 1 THEN 'project:proj-' || (1 + g % :projects)
           WHEN 2 THEN 'role:r-' || (g % 50)
           WHEN 3 THEN 'authenticated'
           ELSE 'user:user-' || (1 + (g * 40503) % :users)
       END,
       (ARRAY['viewer', 'editor'])[1 + g % 2],
       CASE WHEN g % 10 = 3 THEN now() + interval '30 days' END,
       'seed'
FROM generate_series(1::bigint, :grants) AS g;
COMMIT;
ANALYZE;
