//! The connection log: per participant session the client address, the room, and when it
//! joined and left, each as the operator configured (in full, truncated or keyed hash; the
//! caller passes the finished strings). Nothing else about a participant is stored.

use rusqlite::params;
use time::OffsetDateTime;

use crate::{Error, Store, from_unix, unix};

/// One connection-log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedConnection {
    /// Row number.
    pub id: i64,
    /// The address in its stored form.
    pub address: String,
    /// The room in its stored form.
    pub room: String,
    /// When the participant entered the room.
    pub joined_at: OffsetDateTime,
    /// When it left; `None` while connected.
    pub left_at: Option<OffsetDateTime>,
}

/// Which rows to list. Empty `addresses`/`rooms` match everything.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Stored forms of the addresses to match (any of them).
    pub addresses: Vec<String>,
    /// Stored forms of the rooms to match (any of them).
    pub rooms: Vec<String>,
    /// Only sessions that joined at or after this time.
    pub since: Option<OffsetDateTime>,
}

impl Store {
    /// Record that a participant from `address` entered `room` at `now`; the row's ID, for
    /// [`Store::log_leave`].
    pub fn log_join(&self, address: &str, room: &str, now: OffsetDateTime) -> Result<i64, Error> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO connection_log (address, room, joined_at) VALUES (?1, ?2, ?3)",
            params![address, room, unix(now)],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Record that the session of row `id` ended at `now` (once; later calls change nothing).
    pub fn log_leave(&self, id: i64, now: OffsetDateTime) -> Result<(), Error> {
        self.lock().execute(
            "UPDATE connection_log SET left_at = ?2 WHERE id = ?1 AND left_at IS NULL",
            params![id, unix(now)],
        )?;
        Ok(())
    }

    /// At start: sessions of a previous run that never got a leave time end at `now` (the
    /// latest they can have ended). How many.
    pub fn close_open_connections(&self, now: OffsetDateTime) -> Result<usize, Error> {
        Ok(self.lock().execute(
            "UPDATE connection_log SET left_at = ?1 WHERE left_at IS NULL",
            params![unix(now)],
        )?)
    }

    /// Delete the rows of sessions that joined before `before` (retention). How many.
    pub fn purge_connections(&self, before: OffsetDateTime) -> Result<usize, Error> {
        Ok(self.lock().execute(
            "DELETE FROM connection_log WHERE joined_at < ?1",
            params![unix(before)],
        )?)
    }

    /// The rows that match, oldest first.
    pub fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<LoggedConnection>, Error> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, address, room, joined_at, left_at FROM connection_log
             WHERE joined_at >= ?1 ORDER BY joined_at, id",
        )?;
        let since = filter.since.map_or(i64::MIN, unix);
        let rows = stmt.query_map(params![since], |r| {
            Ok(LoggedConnection {
                id: r.get(0)?,
                address: r.get(1)?,
                room: r.get(2)?,
                joined_at: from_unix(3, r.get(3)?)?,
                left_at: r
                    .get::<_, Option<i64>>(4)?
                    .map(|t| from_unix(4, t))
                    .transpose()?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            let address_ok = filter.addresses.is_empty() || filter.addresses.contains(&row.address);
            let room_ok = filter.rooms.is_empty() || filter.rooms.contains(&row.room);
            if address_ok && room_ok {
                out.push(row);
            }
        }
        Ok(out)
    }
}
