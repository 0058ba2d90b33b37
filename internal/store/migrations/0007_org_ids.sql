-- Version 7: a stable ID per organization. Orgs are keyed by their name,
-- which a rename changes and a new org may then take; what must never pass
-- from one org to another under a reused name (the dependency cache's
-- partitions) is keyed by this ID instead.
ALTER TABLE orgs ADD COLUMN id text NOT NULL DEFAULT gen_random_uuid()::text;
ALTER TABLE orgs ADD CONSTRAINT orgs_id_key UNIQUE (id);
