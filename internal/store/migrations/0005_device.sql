-- Version 5: device authorizations (OAuth 2.0 device flow, RFC 8628), with
-- which `dbos-cloud login` signs in through Hangar's approval page.

-- The device code is a bearer secret until it is redeemed, so only its
-- sha256 is stored. The user code is what a person types on the page: it
-- grants nothing by itself (approving needs a signed-in user), so it is kept
-- as is, upper case without the dash, unique among the rows kept (expired
-- rows are deleted when a new code is created).
CREATE TABLE device_codes (
    code_hash    bytea PRIMARY KEY,
    user_code    text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    interval_s   integer NOT NULL,                    -- the polling interval; slow_down adds 5 s
    polled_at    timestamptz,                         -- the last poll, to answer slow_down
    user_id      text REFERENCES users(id) ON DELETE CASCADE,  -- who approved or denied
    decision     text CHECK (decision IN ('approved', 'denied')),
    decided_at   timestamptz,
    used_at      timestamptz                          -- when the approval was redeemed (once)
);
CREATE INDEX device_codes_expires ON device_codes (expires_at);
