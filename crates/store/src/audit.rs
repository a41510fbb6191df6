//! The audit log: security events as a hash chain with a keyed MAC.
//!
//! Each record carries the MAC of the record before it (`prev`) and its own MAC over every
//! field and `prev`: `mac = HMAC-SHA256(key, "conclave-audit-v1" | seq | at | kind | actor |
//! target | room | address | detail | prev)`. The key is a file outside the database
//! (`[audit] key_file`), so someone who can write the database but not read the key cannot
//! change, remove or insert a record without [`Store::audit_verify`] naming it. After every
//! append the newest seq and MAC are also written to a head file beside the key, which shows
//! records cut off at the end (the one change a chain alone cannot show).
//!
//! Retention deletes the oldest records and keeps, in `audit_anchor`, where the chain now
//! starts (MAC'd with the same key).

use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use rand::RngCore;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::pseudonyms::{hex, unhex, write_private};
use crate::{Error, Store, from_unix, unix};

const DOMAIN: &[u8] = b"conclave-audit-v1";
const ANCHOR_DOMAIN: &[u8] = b"conclave-audit-anchor-v1";

/// What happened; the caller fills in the stored forms (no display names, no content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// What kind of event, e.g. `signin.failure`, `moderation.remove`, `config.loosened`.
    pub kind: String,
    /// Who did it: `account:alice`, `token:<subject>`, `participant:<id>`, `cli`, `admin-api`,
    /// `server`.
    pub actor: String,
    /// Whom or what it was done to (empty when nothing).
    pub target: String,
    /// The room, in its logged form (empty when none).
    pub room: String,
    /// The client address, in its logged form (empty when none).
    pub address: String,
    /// Anything else, as short text (no personal data).
    pub detail: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When.
    pub at: OffsetDateTime,
    /// What.
    pub event: AuditEvent,
    /// The MAC of the record before.
    pub prev: Vec<u8>,
    /// This record's MAC.
    pub mac: Vec<u8>,
}

/// The audit key (and where the head file is).
pub struct AuditKey {
    key: hmac::Key,
    head: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

/// What [`Store::audit_verify`] found wrong, one entry per record where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// The record's MAC does not match its fields, but the chain goes on from its MAC: its
    /// fields were changed.
    Changed {
        /// The record.
        seq: i64,
    },
    /// A record that is not part of the chain (the next record links to the one before it,
    /// its seq repeats one already seen, or it lies beyond the end).
    Inserted {
        /// The seq it claims.
        seq: i64,
    },
    /// A record whose MAC does not match and whose place in the chain cannot be told.
    Invalid {
        /// The record.
        seq: i64,
    },
    /// Records missing from the chain.
    Removed {
        /// The first missing seq.
        from: i64,
        /// The last missing seq.
        to: i64,
    },
    /// A valid record that appears more than once.
    Duplicated {
        /// The record.
        seq: i64,
    },
    /// The record after a gap links to a different predecessor (records were removed and the
    /// rest renumbered, or the chain was spliced).
    Broken {
        /// The first record after the break.
        seq: i64,
    },
    /// The anchor (where the chain starts after retention) does not verify.
    Anchor,
    /// The head file names a newer record than the database holds, or a different one.
    Head {
        /// The seq in the head file.
        seq: i64,
    },
}

impl std::fmt::Display for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tamper::Changed { seq } => write!(
                f,
                "record {seq}: changed (its MAC does not match its fields)"
            ),
            Tamper::Inserted { seq } => write!(f, "record {seq}: inserted (not part of the chain)"),
            Tamper::Invalid { seq } => {
                write!(f, "record {seq}: MAC does not match (changed or inserted)")
            }
            Tamper::Removed { from, to } if from == to => write!(f, "record {from}: removed"),
            Tamper::Removed { from, to } => write!(f, "records {from} to {to}: removed"),
            Tamper::Duplicated { seq } => {
                write!(f, "record {seq}: appears more than once (copied)")
            }
            Tamper::Broken { seq } => write!(
                f,
                "record {seq}: links to a record that is not the one before it (records removed or reordered)"
            ),
            Tamper::Anchor => write!(
                f,
                "the retention anchor was changed (the oldest records may have been removed)"
            ),
            Tamper::Head { seq } => write!(
                f,
                "the head file names record {seq}, which the database does not hold as written (records removed at the end)"
            ),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerdict {
    /// Records read.
    pub records: usize,
    /// The seq the chain starts at (1, or after the records retention deleted).
    pub first_seq: i64,
    /// The newest valid seq (0 when empty).
    pub last_seq: i64,
    /// Everything wrong, in chain order. Empty: intact.
    pub problems: Vec<Tamper>,
}

impl AuditKey {
    /// Load the key from `path`, or create it (32 random bytes, 0600) when missing and the
    /// log is still empty. A missing key with records in the log is an error: a new key would
    /// make every record fail verification. The head file is `path` with extension `head`.
    pub fn load_or_create(path: &Path, store: &Store) -> Result<AuditKey, Error> {
        let key_err = |source| Error::AuditKey {
            path: path.to_owned(),
            source,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let n = store.audit_count()?;
                if n > 0 {
                    return Err(Error::AuditKeyMissing {
                        path: path.to_owned(),
                        records: n,
                    });
                }
                let mut k = vec![0u8; 32];
                rand::rng().fill_bytes(&mut k);
                write_private(path, &k).map_err(key_err)?;
                k
            }
            Err(e) => return Err(key_err(e)),
        };
        if bytes.len() < 32 {
            return Err(key_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the key has {} bytes, at least 32 are needed", bytes.len()),
            )));
        }
        Ok(AuditKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            head: path.with_extension("head"),
        })
    }

    fn mac(&self, seq: i64, at: i64, e: &AuditEvent, prev: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(&seq.to_be_bytes());
        ctx.update(&at.to_be_bytes());
        for field in [&e.kind, &e.actor, &e.target, &e.room, &e.address, &e.detail] {
            // Length-prefixed, so no two different records encode alike.
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field.as_bytes());
        }
        ctx.update(prev);
        ctx.sign().as_ref().to_vec()
    }

    fn anchor_mac(&self, first_seq: i64, prev: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(ANCHOR_DOMAIN);
        ctx.update(&first_seq.to_be_bytes());
        ctx.update(prev);
        ctx.sign().as_ref().to_vec()
    }

    fn valid(&self, r: &AuditRecord) -> bool {
        let want = self.mac(r.seq, unix(r.at), &r.event, &r.prev);
        // Constant time is not needed for verification of stored data, but costs nothing.
        aws_lc_rs::constant_time::verify_slices_are_equal(&want, &r.mac).is_ok()
    }

    fn write_head(&self, seq: i64, mac: &[u8]) {
        // Best effort: a head that lags behind the database is harmless (verify reports only
        // a head newer than the database), so a failed write must not fail the append.
        let _ = write_private(&self.head, format!("{seq} {}\n", hex(mac)).as_bytes());
    }

    fn read_head(&self) -> Option<(i64, Vec<u8>)> {
        let text = std::fs::read_to_string(&self.head).ok()?;
        let (s, m) = text.trim().split_once(' ')?;
        Some((s.parse().ok()?, unhex(m)?))
    }
}

const ZERO: [u8; 32] = [0; 32];

impl Store {
    /// Append `events` at `now`, in one transaction; their seqs. When this returns, they are
    /// on disk (WAL, synchronous = FULL).
    pub fn audit_append(
        &self,
        key: &AuditKey,
        now: OffsetDateTime,
        events: &[AuditEvent],
    ) -> Result<Vec<i64>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, mac FROM audit_log ORDER BY seq DESC, rowid DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (mut seq, mut prev) = match last {
            Some(l) => l,
            None => match anchor(&tx)? {
                Some((first, prev, _)) => (first - 1, prev),
                None => (0, ZERO.to_vec()),
            },
        };
        let at = unix(now);
        let mut seqs = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare(
                "INSERT INTO audit_log (seq, at, kind, actor, target, room, address, detail, prev, mac)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for e in events {
                seq += 1;
                let mac = key.mac(seq, at, e, &prev);
                insert.execute(params![
                    seq, at, e.kind, e.actor, e.target, e.room, e.address, e.detail, prev, mac
                ])?;
                seqs.push(seq);
                prev = mac;
            }
        }
        tx.commit()?;
        drop(conn);
        key.write_head(seq, &prev);
        Ok(seqs)
    }

    /// How many records the log holds.
    pub fn audit_count(&self) -> Result<usize, Error> {
        let n: i64 = self
            .lock()
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Every record in chain order (seq, then insertion order).
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>, Error> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT seq, at, kind, actor, target, room, address, detail, prev, mac
             FROM audit_log ORDER BY seq, rowid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                at: from_unix(1, r.get(1)?)?,
                event: AuditEvent {
                    kind: r.get(2)?,
                    actor: r.get(3)?,
                    target: r.get(4)?,
                    room: r.get(5)?,
                    address: r.get(6)?,
                    detail: r.get(7)?,
                },
                prev: r.get(8)?,
                mac: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Check the whole chain with `key`: every record's MAC, the links, the seqs, the anchor
    /// and the head file.
    pub fn audit_verify(&self, key: &AuditKey) -> Result<AuditVerdict, Error> {
        let anchor = anchor(&self.lock())?;
        let records = self.audit_records()?;
        let mut problems = Vec::new();
        let (mut next_seq, mut last_mac) = match &anchor {
            Some((first, prev, mac)) => {
                if key.anchor_mac(*first, prev) != *mac {
                    problems.push(Tamper::Anchor);
                }
                (*first, prev.clone())
            }
            None => (1, ZERO.to_vec()),
        };
        let first_seq = next_seq;
        let mut last_seq = 0;
        let head = key.read_head();
        for (i, r) in records.iter().enumerate() {
            if key.valid(r) {
                if r.seq < next_seq {
                    problems.push(Tamper::Duplicated { seq: r.seq });
                    continue;
                }
                if r.seq > next_seq {
                    problems.push(Tamper::Removed {
                        from: next_seq,
                        to: r.seq - 1,
                    });
                } else if r.prev != last_mac {
                    problems.push(Tamper::Broken { seq: r.seq });
                }
                last_mac = r.mac.clone();
                next_seq = r.seq + 1;
                last_seq = r.seq;
                continue;
            }
            // A record that does not verify: changed in place, or put there. The record after
            // it tells which: it links to this record's MAC (changed) or to the one before
            // (inserted).
            let next = records.get(i + 1);
            let beyond_head = head.as_ref().is_some_and(|(h, _)| r.seq > *h);
            if r.seq < next_seq || beyond_head || next.is_some_and(|n| n.prev == last_mac) {
                problems.push(Tamper::Inserted { seq: r.seq });
            } else if next.is_some_and(|n| n.prev == r.mac)
                || (next.is_none() && head.as_ref().is_some_and(|h| *h == (r.seq, r.mac.clone())))
            {
                problems.push(Tamper::Changed { seq: r.seq });
                last_mac = r.mac.clone();
                next_seq = r.seq + 1;
                last_seq = r.seq;
            } else {
                problems.push(Tamper::Invalid { seq: r.seq });
                // Carry on as if it were the record at this place, so one bad record does not
                // make every later link look broken.
                last_mac = r.mac.clone();
                next_seq = r.seq + 1;
                last_seq = r.seq;
            }
        }
        if let Some((seq, mac)) = head {
            let held = records.iter().any(|r| r.seq == seq && r.mac == mac);
            if !held && !problems.iter().any(|p| p.covers(seq)) {
                problems.push(Tamper::Head { seq });
            }
        }
        Ok(AuditVerdict {
            records: records.len(),
            first_seq,
            last_seq,
            problems,
        })
    }

    /// Retention: delete the records older than `before`, keeping the chain verifiable from
    /// the first record left (the anchor). How many were deleted.
    pub fn audit_prune(&self, key: &AuditKey, before: OffsetDateTime) -> Result<usize, Error> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_old: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, mac FROM audit_log WHERE at < ?1 ORDER BY seq DESC, rowid DESC LIMIT 1",
                params![unix(before)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((seq, mac)) = last_old else {
            return Ok(0);
        };
        let n = tx.execute("DELETE FROM audit_log WHERE seq <= ?1", params![seq])?;
        let first = seq + 1;
        tx.execute(
            "INSERT INTO audit_anchor (id, first_seq, prev, mac) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET first_seq = ?1, prev = ?2, mac = ?3",
            params![first, mac, key.anchor_mac(first, &mac)],
        )?;
        tx.commit()?;
        Ok(n)
    }
}

impl Tamper {
    /// Whether this finding is about record `seq`.
    pub fn covers(&self, seq: i64) -> bool {
        match self {
            Tamper::Changed { seq: s }
            | Tamper::Inserted { seq: s }
            | Tamper::Invalid { seq: s }
            | Tamper::Duplicated { seq: s }
            | Tamper::Broken { seq: s }
            | Tamper::Head { seq: s } => *s == seq,
            Tamper::Removed { from, to } => (*from..=*to).contains(&seq),
            Tamper::Anchor => false,
        }
    }
}

/// The anchor row: first kept seq, the MAC before it, the row's own MAC.
type Anchor = (i64, Vec<u8>, Vec<u8>);

fn anchor(conn: &rusqlite::Connection) -> Result<Option<Anchor>, Error> {
    Ok(conn
        .query_row(
            "SELECT first_seq, prev, mac FROM audit_anchor WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}
