-- The TLS host policy asks whether an app owns a host name at every
-- handshake for a name that is not served yet, unauthenticated: an index,
-- so that a flood of such handshakes costs index lookups, not scans.
CREATE INDEX apps_host ON apps (lower(org || '-' || name));
