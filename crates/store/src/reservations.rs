//! Room reservations (the admin API): a room ID with an owner, a time window, an optional
//! password and the lobby setting.

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Error, Store, from_unix, unix};

/// A reserved room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The room ID (validated by the caller).
    pub room: String,
    /// Who it is for (an account name or any label the API caller chooses).
    pub owner: String,
    /// No one gets in before this.
    pub opens_at: OffsetDateTime,
    /// The meeting ends for everyone at this time.
    pub closes_at: OffsetDateTime,
    /// The room password, if any.
    pub password: Option<String>,
    /// Whether guests wait in the lobby.
    pub lobby: bool,
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reservation> {
    Ok(Reservation {
        room: r.get(0)?,
        owner: r.get(1)?,
        opens_at: from_unix(2, r.get(2)?)?,
        closes_at: from_unix(3, r.get(3)?)?,
        password: r.get(4)?,
        lobby: r.get::<_, i64>(5)? != 0,
    })
}

const COLUMNS: &str = "room, owner, opens_at, closes_at, password, lobby";

impl Store {
    /// Reserve a room. `Err(Error::ReservationExists)` if the room is already reserved.
    pub fn add_reservation(&self, r: &Reservation, now: OffsetDateTime) -> Result<(), Error> {
        let inserted = self.lock().execute(
            "INSERT INTO reservations (room, owner, opens_at, closes_at, password, lobby, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                r.room,
                r.owner,
                unix(r.opens_at),
                unix(r.closes_at),
                r.password,
                i64::from(r.lobby),
                unix(now)
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::ReservationExists(r.room.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every reservation, by opening time.
    pub fn list_reservations(&self) -> Result<Vec<Reservation>, Error> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM reservations ORDER BY opens_at, room"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One reservation.
    pub fn reservation(&self, room: &str) -> Result<Option<Reservation>, Error> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM reservations WHERE room = ?1"),
                [room],
                from_row,
            )
            .optional()?)
    }

    /// Delete a reservation; whether there was one.
    pub fn remove_reservation(&self, room: &str) -> Result<bool, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM reservations WHERE room = ?1", [room])?
            > 0)
    }

    /// Delete reservations that closed before `now`; how many.
    pub fn purge_ended_reservations(&self, now: OffsetDateTime) -> Result<usize, Error> {
        Ok(self.lock().execute(
            "DELETE FROM reservations WHERE closes_at <= ?1",
            [unix(now)],
        )?)
    }
}
