-- Schema version 4: the connection log and the audit log (issue 14).
--
-- connection_log: per participant session only where from, which room, when in and out.
-- address: the client address as configured: in full ("192.0.2.7"), truncated
-- ("192.0.2.0/24") or a keyed hash ("k20441:3f9c..."; the key is in the data directory and
-- rotates with the retention). room: the room ID in full or a keyed hash the same way.
-- left_at NULL: still connected, or the server stopped before it could write the time (the
-- next start sets it to the start time). Rows older than [privacy] retention_days are deleted.
CREATE TABLE connection_log (
    id        INTEGER PRIMARY KEY,
    address   TEXT    NOT NULL,
    room      TEXT    NOT NULL,
    joined_at INTEGER NOT NULL,
    left_at   INTEGER
) STRICT;

CREATE INDEX connection_log_by_join ON connection_log (joined_at);

-- audit_log: security events in a hash chain. mac = HMAC-SHA256(key, seq, at, kind, actor,
-- target, room, address, detail, prev), where prev is the mac of the record before it (32 zero
-- bytes for the first record ever) and the key is a file outside the database. seq is not a
-- key on purpose: the verifier must see an inserted duplicate, not have SQLite refuse it.
CREATE TABLE audit_log (
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    actor   TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    address TEXT    NOT NULL,
    detail  TEXT    NOT NULL,
    prev    BLOB    NOT NULL,
    mac     BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_log_by_seq ON audit_log (seq);
CREATE INDEX audit_log_by_time ON audit_log (at);

-- Where the chain starts after retention deleted its oldest records: the first kept seq and
-- the mac of the last deleted record, with a mac over both (so deleting the oldest records
-- and rewriting this row needs the key, like any other change).
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    first_seq INTEGER NOT NULL,
    prev      BLOB    NOT NULL,
    mac       BLOB    NOT NULL
) STRICT;
