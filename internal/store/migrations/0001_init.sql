-- Hangar metadata schema, version 1.
CREATE TABLE orgs (
    name        text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    email       text NOT NULL DEFAULT '',
    org         text NOT NULL REFERENCES orgs(name) ON UPDATE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refresh_tokens (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

CREATE TABLE db_instances (
    id              text PRIMARY KEY,
    org             text NOT NULL REFERENCES orgs(name) ON UPDATE CASCADE,
    name            text NOT NULL,
    status          text NOT NULL,
    host            text NOT NULL DEFAULT '',
    port            integer NOT NULL DEFAULT 0,
    admin_user      text NOT NULL,
    admin_password  text NOT NULL,
    is_linked       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org, name)
);

CREATE TABLE apps (
    id              text PRIMARY KEY,
    org             text NOT NULL REFERENCES orgs(name) ON UPDATE CASCADE,
    name            text NOT NULL,
    db_instance_id  text NOT NULL REFERENCES db_instances(id),
    app_db_name     text NOT NULL,
    language        text NOT NULL,
    status          text NOT NULL,
    version         text NOT NULL DEFAULT '',
    memory_mib      integer NOT NULL,
    min_vms         integer NOT NULL DEFAULT 1,
    max_vms         integer NOT NULL DEFAULT 1,
    db_role         text NOT NULL,
    db_password     text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org, name)
);

CREATE TABLE versions (
    id              text PRIMARY KEY,
    app_id          text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    archive_digest  text NOT NULL DEFAULT '',
    status          text NOT NULL,
    error           text NOT NULL DEFAULT '',
    deployed_by     text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX versions_app_created ON versions (app_id, created_at DESC);
