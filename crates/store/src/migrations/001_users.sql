-- Schema version 1: local accounts.
-- Times are unix seconds (UTC). Usernames are stored lowercase; NOCASE makes the uniqueness
-- case-insensitive even for rows written by other tools.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;
