-- Schema version 6: accounts whose password (and name and role) live in a directory or an
-- identity provider. source 'local': a password account of this server (every account
-- before version 6). 'ldap:NAME' / 'oidc:NAME': signed in through the [[ldap]] / [[oidc]]
-- provider NAME; subject is the provider's stable id of the person (the directory entry's
-- DN, the OpenID "sub"), password_hash is '!' and never verifies.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'
    CHECK (source = 'local' OR source LIKE 'ldap:_%' OR source LIKE 'oidc:_%');
ALTER TABLE users ADD COLUMN subject TEXT
    CHECK ((source = 'local') = (subject IS NULL));
CREATE UNIQUE INDEX users_by_subject ON users (source, subject) WHERE subject IS NOT NULL;

-- Passkeys (WebAuthn credentials) of local accounts. id: the credential ID the
-- authenticator chose; public_key: its SubjectPublicKeyInfo (DER); alg: the COSE algorithm
-- (-7 ES256, -8 EdDSA, -257 RS256); sign_count: the authenticator's counter at the last
-- use (0: the authenticator keeps none).
CREATE TABLE passkeys (
    id           BLOB    PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 1023),
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    public_key   BLOB    NOT NULL,
    alg          INTEGER NOT NULL CHECK (alg IN (-7, -8, -257)),
    sign_count   INTEGER NOT NULL DEFAULT 0,
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- Sessions may now be signed in with a passkey: SQLite cannot change a CHECK, so the table
-- is rebuilt with the same rows.
CREATE TABLE sessions_v6 (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    factor     TEXT    NOT NULL DEFAULT 'password'
        CHECK (factor IN ('password', 'totp', 'recovery', 'passkey'))
) STRICT, WITHOUT ROWID;
INSERT INTO sessions_v6 (token_hash, user_id, created_at, expires_at, factor)
    SELECT token_hash, user_id, created_at, expires_at, factor FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v6 RENAME TO sessions;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
