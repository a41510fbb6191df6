-- Schema version 2: account expiry, password-change time, sign-in sessions.
-- expires_at NULL: the account never expires. password_changed_at NULL: never changed
-- since it was created (or the account predates version 2).
ALTER TABLE users ADD COLUMN expires_at INTEGER;
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;

-- Only the SHA-256 of a session token is stored: a copy of the database does not let
-- anyone sign in.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
