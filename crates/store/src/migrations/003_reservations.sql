-- Schema version 3: room reservations made over the admin API. A reserved room takes its
-- password and lobby setting from here when it opens, lets no one in before `opens_at`, and
-- closes itself (everyone gets "ended") at `closes_at`.
-- owner: an account name (not a foreign key: removing the account keeps the reservation).
-- password: the room password in clear text, because the server must compare it and hand
-- it to no one; the database file is the server's own (mode 0600). NULL: no password.
CREATE TABLE reservations (
    room       TEXT    PRIMARY KEY CHECK (length(room) BETWEEN 16 AND 64),
    owner      TEXT    NOT NULL,
    opens_at   INTEGER NOT NULL,
    closes_at  INTEGER NOT NULL CHECK (closes_at > opens_at),
    password   TEXT,
    lobby      INTEGER NOT NULL CHECK (lobby IN (0, 1)),
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX reservations_by_close ON reservations (closes_at);
