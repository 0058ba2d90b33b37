-- Version 6: passwords. A user may have a password to sign in on the device
-- approval page (GET/POST /device) instead of pasting a refresh token. Only
-- its argon2id hash is kept, in the PHC string format
-- ($argon2id$v=19$m=…,t=…,p=…$salt$hash), whose parameters let them be raised
-- later without breaking older hashes. NULL: the user has no password.
ALTER TABLE users ADD COLUMN password_hash text;
