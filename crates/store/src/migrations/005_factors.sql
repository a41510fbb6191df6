-- Schema version 5: account roles, second factors (TOTP, recovery codes), and which factor
-- a session was signed in with.

-- 'moderator': opens rooms and moderates them (what every account was before version 5);
-- 'member': signs in and joins with the account's name, without moderating.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'moderator'
    CHECK (role IN ('moderator', 'member'));

-- 'password': the password alone (a half session when a second factor is due);
-- 'totp', 'recovery': the password and that second factor.
ALTER TABLE sessions ADD COLUMN factor TEXT NOT NULL DEFAULT 'password'
    CHECK (factor IN ('password', 'totp', 'recovery'));

-- One TOTP secret per account, AES-256-GCM sealed with the key in data_dir/factors.key
-- (nonce | ciphertext | tag, bound to the account id). confirmed_at NULL: enrolment started
-- but no code was given yet; such a secret does not sign anyone in. last_step: the newest
-- time step accepted (RFC 6238 section 5.2: a code is accepted once).
CREATE TABLE totp (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed       BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER NOT NULL DEFAULT -1
) STRICT;

-- Recovery codes: only the SHA-256 of each is stored; used_at is set when it is spent.
CREATE TABLE recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL CHECK (length(code_hash) = 32),
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;
