-- Version 3: accounts. Sign-up accounts that have not registered yet, disabled
-- users, org admins, single-use org invites and encrypted app secrets. The
-- JWT signing key set lives in settings ("jwt_keys").

-- A row with a NULL name is an account created by `hangar users signup`: its
-- refresh token works, but it has no username or org until it registers
-- (PUT /v1alpha1/user).
ALTER TABLE users
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN org DROP NOT NULL,
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN joined_at   timestamptz NOT NULL DEFAULT now(),  -- when the user joined its current org
    ADD CONSTRAINT users_registered CHECK ((name IS NULL) = (org IS NULL));
UPDATE users SET joined_at = created_at;

-- The admin is the org's creator; only the admin invites, removes and renames.
ALTER TABLE orgs ADD COLUMN admin_id text REFERENCES users(id) ON DELETE SET NULL;
UPDATE orgs o SET admin_id = (
    SELECT u.id FROM users u WHERE u.org = o.name ORDER BY u.created_at, u.id LIMIT 1);

-- Invite secrets are stored as sha256 hashes; each is used at most once.
CREATE TABLE org_invites (
    secret_hash  bytea PRIMARY KEY,
    org          text NOT NULL REFERENCES orgs(name) ON UPDATE CASCADE ON DELETE CASCADE,
    created_by   text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    used_by      text REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX org_invites_org ON org_invites (org);

-- Secret values are sealed (AES-256-GCM, key file outside the database),
-- bound to app_id and name.
CREATE TABLE app_secrets (
    app_id      text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name        text NOT NULL,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, name)
);
