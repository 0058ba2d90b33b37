-- Version 2: version details for redeploys, and one modifying operation per app.
ALTER TABLE versions
    ADD COLUMN app_version        text NOT NULL DEFAULT '',   -- DBOS__APPVERSION its executors run with
    ADD COLUMN restored_from      text NOT NULL DEFAULT '',   -- the version a --previous-version deploy restores
    ADD COLUMN config             jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN schema_fingerprint text NOT NULL DEFAULT '',
    ADD COLUMN steps              jsonb NOT NULL DEFAULT '[]', -- [{name, started_at, duration_ms, error}]
    ADD COLUMN finished_at        timestamptz;
UPDATE versions SET app_version = id WHERE app_version = '';

ALTER TABLE apps
    ADD COLUMN operation         text NOT NULL DEFAULT '',    -- the running modifying operation's workflow ID
    ADD COLUMN operation_started timestamptz;
