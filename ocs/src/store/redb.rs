//! The embedded durable store: one redb file and its log ([`wal`]), kept in memory
//! ([`Mem`]) behind one lock ([`State`]) and written by one writer thread that commits
//! concurrent operations together (group commit).
//!
//! **A CCR is decided where it arrives** ([`RedbStore::inline`]): on the runtime's thread,
//! under the lock, from memory — its changes made there and its journal entry (below)
//! encoded as a log record into a pending buffer, in the order of the entries' numbers.
//! Without `durable` it is answered at once; with it, once its record and every one
//! before it is on the disk. The writer takes the pending records under the lock and
//! writes them without it — one `pwrite` and, with `durable`, one `fdatasync` for all the
//! CCRs decided meanwhile — then answers those waiting (one wake of the runtime per round).
//! So no CCR crosses to another thread and back to be decided, and the lock is held for a
//! decision, not for a disk write. The visited role's session records are journal
//! entries in the log too, encoded and written by the writer in the order they are made.
//!
//! **Every other operation** (provisioning, the operator's reads and changes, the sweep) is
//! queued for the writer, which runs the queued ones in turn under the lock (each sees the
//! effects of those before it), in one redb write transaction when one writes a table (its
//! journal entry then in the `journal` table), and answers them after the commit. An
//! operation reads first and writes after, so one that fails leaves nothing behind; a
//! failed write fails the round's operations and the CCRs decided after them, and memory is
//! read again from the file. Each round is atomic on the disk: a log record is read back
//! only when whole (checksummed), a redb commit is atomic. A `kill -9` at any moment
//! leaves, with `durable`, every CCR answered; no answer was sent for anything not on the
//! disk.
//!
//! Not every commit is durable: without `durable` none are, and with it a round of reads
//! and lazy writes ([`RedbStore::put_visited_lazy`], written as without `durable`) is not.
//! A crash takes the redb file back to its last durable commit, so the writer makes one at
//! most `checkpoint_interval` after the first write that was not synced (with the round
//! that finds it due, or alone when no request comes), folding the journal with it. Without
//! `durable`, the writer puts answered CCRs' records in the log within a few milliseconds
//! ([`FLUSH_EVERY`]); a crash of the machine then loses at most the CCRs of the last
//! interval, answered or not; a `kill -9` loses the redb commits of the interval and the
//! records not yet written, not what was written to the log (the page cache outlives the
//! process), and the journal is read back up to its first missing entry.
//!
//! Tables:
//! - `accounts`: account id → account
//! - `subscribers`: `imsi:…` / `msisdn:…` / `nai:…` → account id
//! - `sessions`: Session-Id → session (with its reservations)
//! - `answers`: (Session-Id, CC-Request-Number) → stored answer (with its expiry)
//! - `meta`: the number of the first journal entry not folded; counters (sessions,
//!   reservations) as of the last fold
//! - `journal`: batch number → the changes of accounts, sessions, stored answers and
//!   visited session records of a batch committed through redb, not yet folded into their
//!   tables
//! - `visited_sessions`: the PCEF's Session-Id → the visited role's session record
//!
//! The writer reads no table for a CCR: it keeps every account and live session in memory
//! ([`Mem`]), read from the file at open, and writes each change to the file and to memory.
//! The file is what a restart reads; memory is what the decisions read. The stored answers
//! stay in the file only (they are read back for retransmissions, which are rare), and so
//! does the Subscription-Id index (read at CCR-I and by the operator's commands). The
//! sessions of an account (re-authorised on a top-up) are indexed in memory; those of a
//! client that restarted are found by walking the sessions.
//!
//! **The journal.** No CCR updates the `accounts`, `sessions` and `answers` B-trees: each
//! such insert copies and rebuilds a page of redb's copy-on-write tree, three per CCR-U.
//! Its changes, encoded one after the other, are one journal entry, numbered in order,
//! in the log (or, for an operation run in a redb transaction, the `journal` table). Once
//! the journal holds `fold_changes` changes or its oldest is `fold_interval` old, the
//! writer folds it into the tables ([`Fold`]): under the lock it takes what is unfolded
//! and encodes each changed account and session once, however often it changed; without
//! the lock it writes them and the answers (in key order) in a redb transaction that
//! empties the `journal` table and records the number of the next entry as the first not
//! folded. Memory knows what is not folded yet ([`Unfolded`], and the fold being written):
//! a retransmission's answer is looked up there first. After a durable fold the log starts
//! over from its beginning (every record in it is folded; those decided meanwhile are
//! still pending). At open the tables are read, then the journal's entries (from the table
//! and the log, by number, from the first not folded up to the first missing) over them;
//! each change is a whole record, so a change older than what a fold wrote is overwritten
//! by a later one. Then everything is folded, durably, and the log starts over. A clean
//! close folds everything, so an older version (which does not read the log) opens a
//! cleanly closed file correctly, not a crashed one.
//!
//! The sweep's index of sessions by Tcc deadline is not a table: every CCR moves a
//! session's deadline, and the index follows from the sessions table, so the writer keeps
//! it in memory ([`Leases`]), built at open by reading every session.
//!
//! Nor is there an index of stored answers by expiry (earlier versions wrote one, the
//! `answer_expiry` table, an insert per CCR; it is deleted at open): the sweep walks the
//! `answers` table in key order a slice at a time, reading each answer's expiry, and
//! forgets the expired ones ([`Tables::sweep`]). An answer is kept `answer_retention`
//! seconds, and forgotten within about half that again. (An older version opening a file
//! written by this one finds no `answer_expiry` entries and forgets none of its answers.)

use super::wal::{self, Wal};
use super::{
    AccountChange, Applied, ChargingStore, Counts, SessionRef, StoreError, StoreFuture, SweepReport,
};
use crate::engine::{self, Decision, Policy, SessionWrite, rc};
use crate::model::{Account, CcAnswer, CcRequest, NumberCheck, Session, UnixMillis};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const ACCOUNTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("accounts");
const SUBSCRIBERS: TableDefinition<'_, &str, &str> = TableDefinition::new("subscribers");
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
/// The on-disk lease index of earlier versions, deleted at open (see [`Leases`]).
const OLD_LEASES: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("leases");
/// The session indexes by account and by client of earlier versions, deleted at open (the
/// writer keeps the first in memory, [`Mem::by_account`], and scans the sessions for the
/// second).
const OLD_ACCOUNT_SESSIONS: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("account_sessions");
const OLD_CLIENT_SESSIONS: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("client_sessions");
const ANSWERS: TableDefinition<'_, (&str, u32), &[u8]> = TableDefinition::new("answers");
/// The index of stored answers by expiry of earlier versions, deleted at open (see the
/// module documentation).
const OLD_ANSWER_EXPIRY: TableDefinition<'_, (u64, &str, u32), ()> =
    TableDefinition::new("answer_expiry");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The changes of each batch not yet folded into the tables above, by batch number.
const JOURNAL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("journal");
/// The `meta` key of the number of the first journal entry not folded into the tables.
const JOURNAL_START: &str = "journal_start";
/// The visited role's sessions ([`crate::visited::store::DurableVisitedStore`]), by the
/// PCEF's Session-Id, each written whole.
const VISITED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("visited_sessions");

/// Most expired sessions (and answers) one sweep handles, so a sweep's transaction stays
/// short; the next sweep takes the rest.
const SWEEP_LIMIT: usize = 4096;

/// Fewest and most stored answers one sweep reads ([`Tables::forget_answers`]).
const ANSWER_SCAN_MIN: usize = 4096;
const ANSWER_SCAN_MAX: usize = 65_536;

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct RedbOptions {
    /// Most queued operations (all but CCRs, which are decided where they arrive) per
    /// round of the writer.
    pub max_batch: usize,
    /// fsync every commit.
    pub durable: bool,
    /// The longest a commit made without an fsync waits for a durable commit.
    pub checkpoint_interval: Duration,
    /// The journal is folded into the tables once it holds this many changes ...
    pub fold_changes: usize,
    /// ... or its oldest change is this old.
    pub fold_interval: Duration,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            max_batch: 512,
            durable: true,
            checkpoint_interval: Duration::from_secs(1),
            fold_changes: 1024,
            fold_interval: Duration::from_secs(1),
        }
    }
}

/// A stored answer and when it is forgotten (the sweep reads `expires` alone, the first
/// field: [`expires_of`]).
#[derive(Deserialize)]
struct StoredAnswer {
    _expires: UnixMillis,
    answer: CcAnswer,
}

/// [`StoredAnswer`] as written (the same encoding), without a copy of the answer.
#[derive(Serialize)]
struct StoredAnswerRef<'a> {
    expires: UnixMillis,
    answer: &'a CcAnswer,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(StoreError::from_err)
}

/// Encodes into `buf` (cleared first), so a batch reuses one allocation.
fn enc_into<'b, T: Serialize>(v: &T, buf: &'b mut Vec<u8>) -> Result<&'b [u8], StoreError> {
    buf.clear();
    *buf = postcard::to_extend(v, std::mem::take(buf)).map_err(StoreError::from_err)?;
    Ok(buf)
}

fn dec<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(StoreError::from_err)
}

/// The expiry of a stored answer, from its first field; None when it does not decode.
fn expires_of(stored: &[u8]) -> Option<UnixMillis> {
    postcard::take_from_bytes::<UnixMillis>(stored)
        .ok()
        .map(|(t, _)| t)
}

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError::from_err(e)
}

/// The sweep's index: (Tcc deadline, Session-Id) of every live session.
#[derive(Default)]
struct Leases {
    set: BTreeSet<(UnixMillis, String)>,
}

impl Leases {
    /// Moves a session's entry from `old` (None: it had none) to `new`.
    fn set(&mut self, sid: &str, old: Option<UnixMillis>, new: UnixMillis) {
        let key = match old {
            Some(t) if t == new => return,
            Some(t) => match self.set.take(&(t, sid.to_string())) {
                Some((_, id)) => id,
                None => sid.to_string(),
            },
            None => sid.to_string(),
        };
        self.set.insert((new, key));
    }

    fn remove(&mut self, sid: &str, at: UnixMillis) {
        self.set.remove(&(at, sid.to_string()));
    }

    /// Sessions whose lease ended before `now`, at most `limit`.
    fn expired(&self, now: UnixMillis, limit: usize) -> Vec<String> {
        self.set
            .range(..(now, String::new()))
            .take(limit)
            .map(|(_, sid)| sid.clone())
            .collect()
    }
}

/// What the store's operations read instead of the file: every account and every live
/// session, with the changes not yet on the disk, and the sweep's index of sessions by Tcc
/// deadline. The file is what a restart reads, but a CCR reads no table: the `accounts` and
/// `sessions` tables are read once, at open. A failure leaves this ahead of the file
/// (`stale`); it is then read again from the file before the next operation.
#[derive(Default)]
struct Mem {
    accounts: HashMap<String, Account>,
    sessions: HashMap<String, Session>,
    /// Account id → its live sessions' ids (re-authorised on a top-up).
    by_account: HashMap<String, Vec<String>>,
    /// Reservations of the live sessions.
    reservations: u64,
    leases: Leases,
    /// What changed since the journal was last folded into the tables: accounts and
    /// sessions (written, or removed when no longer in memory) and the stored answers.
    unfolded: Unfolded,
    /// The stored answers of a fold being committed (still looked up here until it is).
    folding: Option<Arc<Answers>>,
    /// The number of the next batch written to the journal (the `journal` table or the
    /// log).
    journal_next: u64,
    stale: bool,
    /// The last stored answer the sweep read; None: it starts at the beginning.
    answers_cursor: Option<(String, u32)>,
    /// When the sweep last read stored answers.
    answers_scanned_at: UnixMillis,
}

/// One change of the journal (written as [`ChangeRef`]).
#[derive(Deserialize)]
enum Change {
    Account(Account),
    Session(Session),
    SessionGone(String),
    Answer(String, u32, Vec<u8>),
    Visited(String, Vec<u8>),
    VisitedGone(String),
}

/// [`Change`] as written (the same encoding), without copies.
#[derive(Serialize)]
enum ChangeRef<'a> {
    Account(&'a Account),
    Session(&'a Session),
    SessionGone(&'a str),
    /// Session-Id, CC-Request-Number, the encoded [`StoredAnswer`].
    Answer(&'a str, u32, &'a [u8]),
    /// The visited role's session record (the PCEF's Session-Id, the encoded record).
    Visited(&'a str, &'a [u8]),
    VisitedGone(&'a str),
}

/// Stored answers by (Session-Id, CC-Request-Number), encoded [`StoredAnswer`]s.
type Answers = BTreeMap<(String, u32), Vec<u8>>;

/// Records by id, encoded (None: removed).
type Encoded = Vec<(String, Option<Vec<u8>>)>;

/// What the journal holds that the tables do not yet.
#[derive(Default)]
struct Unfolded {
    accounts: HashSet<String>,
    sessions: HashSet<String>,
    /// Sorted, so a fold inserts neighbours one after the other.
    answers: Answers,
    /// The visited role's session records, encoded (None: removed). Memory keeps no
    /// other copy: the visited store reads them once, at open, after the fold of the
    /// journal.
    visited: HashMap<String, Option<Vec<u8>>>,
    /// Changes since the last fold.
    changes: usize,
    /// When the first of them was made.
    since: Option<Instant>,
}

impl Mem {
    /// What `db` holds: the tables, then the journal's changes in order — the entries of
    /// the `journal` table and the log's `records` together, by number, from the first not
    /// folded up to the first missing one.
    fn load(db: &Database, records: wal::Records) -> Result<Self, StoreError> {
        let txn = db.begin_read().map_err(se)?;
        let mut mem = Self::default();
        let accounts = txn.open_table(ACCOUNTS).map_err(se)?;
        for row in accounts.iter().map_err(se)? {
            let (_, v) = row.map_err(se)?;
            let a: Account = dec(v.value())?;
            mem.accounts.insert(a.id.clone(), a);
        }
        let sessions = txn.open_table(SESSIONS).map_err(se)?;
        for row in sessions.iter().map_err(se)? {
            let (_, v) = row.map_err(se)?;
            let s: Session = dec(v.value())?;
            mem.index(&s);
            mem.sessions.insert(s.id.clone(), s);
        }
        // Without the key (a file of an earlier version, which kept no log), the journal
        // table's first entry is the first not folded.
        let start = txn
            .open_table(META)
            .map_err(se)?
            .get(JOURNAL_START)
            .map_err(se)?
            .map(|v| v.value());
        let mut entries: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for row in txn.open_table(JOURNAL).map_err(se)?.iter().map_err(se)? {
            let (k, v) = row.map_err(se)?;
            entries.insert(k.value(), v.value().to_vec());
        }
        let newest_logged = records.last().map(|r| r.0);
        for (seq, payload) in records {
            entries.entry(seq).or_insert(payload);
        }
        let mut next = start;
        for (seq, bytes) in entries {
            match next {
                Some(n) if seq < n => continue,
                Some(n) if seq > n => {
                    // Only without `durable`: a batch committed to the file without an
                    // fsync was lost, and the log holds later ones. They are not read (a
                    // session's later record without its creation would be half a state).
                    tracing::warn!(
                        missing = n,
                        "the store journal ends early; later batches lost"
                    );
                    break;
                }
                _ => {}
            }
            next = Some(seq + 1);
            let mut rest = bytes.as_slice();
            while !rest.is_empty() {
                let (change, tail) =
                    postcard::take_from_bytes::<Change>(rest).map_err(StoreError::from_err)?;
                rest = tail;
                match change {
                    Change::Account(a) => mem.put_account(a),
                    Change::Session(s) => mem.put_session(s),
                    Change::SessionGone(sid) => mem.delete_session(&sid),
                    Change::Answer(sid, n, stored) => mem.put_answer(sid, n, stored),
                    Change::Visited(id, record) => mem.put_visited(id, Some(record)),
                    Change::VisitedGone(id) => mem.put_visited(id, None),
                }
            }
        }
        // Past every number the log holds, read or not, so no record it still holds can
        // pass for a new one ([`wal`]).
        mem.journal_next = next
            .unwrap_or(0)
            .max(start.unwrap_or(0))
            .max(newest_logged.map_or(0, |n| n + 1));
        Ok(mem)
    }

    /// Adds a live session to the indexes.
    fn index(&mut self, s: &Session) {
        self.leases.set.insert((s.lease_until, s.id.clone()));
        self.by_account
            .entry(s.account.clone())
            .or_default()
            .push(s.id.clone());
        self.reservations += s.reservations.len() as u64;
    }

    /// An account changed (in the journal, not yet in the table).
    fn put_account(&mut self, a: Account) {
        self.unfolded.touch();
        if !self.unfolded.accounts.contains(&a.id) {
            self.unfolded.accounts.insert(a.id.clone());
        }
        match self.accounts.get_mut(&a.id) {
            Some(slot) => *slot = a,
            None => {
                self.accounts.insert(a.id.clone(), a);
            }
        }
    }

    /// A session written (new or changed).
    fn put_session(&mut self, s: Session) {
        self.unfolded.touch();
        if !self.unfolded.sessions.contains(&s.id) {
            self.unfolded.sessions.insert(s.id.clone());
        }
        let old = self
            .sessions
            .get(&s.id)
            .map(|o| (o.reservations.len(), o.lease_until));
        match old {
            Some((reservations, lease)) => {
                self.leases.set(&s.id, Some(lease), s.lease_until);
                self.reservations = (self.reservations + s.reservations.len() as u64)
                    .saturating_sub(reservations as u64);
            }
            None => self.index(&s),
        }
        match self.sessions.get_mut(&s.id) {
            Some(slot) => *slot = s,
            None => {
                self.sessions.insert(s.id.clone(), s);
            }
        }
    }

    /// A session forgotten.
    fn delete_session(&mut self, sid: &str) {
        let Some(s) = self.sessions.remove(sid) else {
            return;
        };
        self.unfolded.touch();
        self.leases.remove(&s.id, s.lease_until);
        if let Some(ids) = self.by_account.get_mut(&s.account) {
            ids.retain(|id| *id != s.id);
            if ids.is_empty() {
                self.by_account.remove(&s.account);
            }
        }
        self.reservations = self
            .reservations
            .saturating_sub(s.reservations.len() as u64);
        self.unfolded.sessions.insert(s.id);
    }

    /// A stored answer (encoded [`StoredAnswer`]) of (Session-Id, CC-Request-Number).
    fn put_answer(&mut self, sid: String, n: u32, stored: Vec<u8>) {
        self.unfolded.touch();
        self.unfolded.answers.insert((sid, n), stored);
    }

    /// A visited session record written (or, None, removed).
    fn put_visited(&mut self, id: String, record: Option<Vec<u8>>) {
        self.unfolded.touch();
        self.unfolded.visited.insert(id, record);
    }
}

impl Unfolded {
    fn touch(&mut self) {
        self.changes += 1;
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }
}

/// What the operations of one batch work on: memory, and the file's tables through a
/// transaction begun by the first operation that reads or writes one. A batch without one
/// (CCRs of sessions and subscribers known to memory) writes only its journal entry.
struct Tables<'t> {
    db: &'t Database,
    mem: &'t mut Mem,
    /// The batch's write transaction, once an operation wrote or read a table.
    txn: Option<redb::WriteTransaction>,
    /// Reads before that (a CCR-I's subscriber lookup): the last commit, which is what
    /// the batch has written so far (nothing).
    read: Option<redb::ReadTransaction>,
    /// Encoding buffer.
    scratch: Vec<u8>,
    /// The batch's changes of accounts, sessions and stored answers, which go to the log
    /// or the `journal` table as one entry (encoded [`Change`]s one after the other).
    journal: Vec<u8>,
}

/// The batch's write transaction, begun if it is not yet (a function of the two fields,
/// so the caller may still use the others).
fn write_txn<'a>(
    db: &Database,
    txn: &'a mut Option<redb::WriteTransaction>,
) -> Result<&'a redb::WriteTransaction, StoreError> {
    if txn.is_none() {
        *txn = Some(db.begin_write().map_err(se)?);
    }
    txn.as_ref()
        .ok_or_else(|| StoreError("no write transaction".into()))
}

/// Reads `$key` of table `$def` as the batch sees it, with `$f` applied to the value.
macro_rules! read_table {
    ($t:expr, $def:expr, $key:expr, $f:expr) => {{
        let t = &mut *$t;
        match &t.txn {
            Some(txn) => txn
                .open_table($def)
                .map_err(se)?
                .get($key)
                .map_err(se)?
                .map(|v| $f(v.value())),
            None => {
                if t.read.is_none() {
                    t.read = Some(t.db.begin_read().map_err(se)?);
                }
                match &t.read {
                    Some(r) => r
                        .open_table($def)
                        .map_err(se)?
                        .get($key)
                        .map_err(se)?
                        .map(|v| $f(v.value())),
                    None => None,
                }
            }
        }
    }};
}

/// A read failed in a way that aborts nothing (inner) or the storage failed (outer: the
/// batch is aborted).
type OpResult<T> = Result<Result<T, StoreError>, StoreError>;

macro_rules! tryop {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl<'t> Tables<'t> {
    /// No transaction yet; `scratch` for encoding, `journal` (empty) for the batch's entry.
    fn new(db: &'t Database, mem: &'t mut Mem, (scratch, journal): (Vec<u8>, Vec<u8>)) -> Self {
        Self {
            db,
            mem,
            txn: None,
            read: None,
            scratch,
            journal,
        }
    }

    fn account_by_id(&self, id: &str) -> OpResult<Option<Account>> {
        Ok(Ok(self.mem.accounts.get(id).cloned()))
    }

    /// An account id from an account id, an index key, or a bare IMSI/MSISDN/NAI.
    fn resolve(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        if self.mem.accounts.contains_key(key) {
            return Ok(Some(key.to_string()));
        }
        if let Some(id) = self.subscriber(key)? {
            return Ok(Some(id));
        }
        for p in ["imsi", "msisdn", "nai", "sip", "private"] {
            if let Some(id) = self.subscriber(&format!("{p}:{key}"))? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The account id of a Subscription-Id index key.
    fn subscriber(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(read_table!(self, SUBSCRIBERS, key, |v: &str| v.to_string()))
    }

    fn session(&self, id: &str) -> OpResult<Option<Session>> {
        Ok(Ok(self.mem.sessions.get(id).cloned()))
    }

    /// Adds a change to the batch's journal entry.
    fn journal(&mut self, change: ChangeRef<'_>) -> Result<(), StoreError> {
        self.journal = postcard::to_extend(&change, std::mem::take(&mut self.journal))
            .map_err(StoreError::from_err)?;
        Ok(())
    }

    fn put_account(&mut self, a: Account) -> Result<(), StoreError> {
        self.journal(ChangeRef::Account(&a))?;
        self.mem.put_account(a);
        Ok(())
    }

    /// Writes a session (new or changed), keeping the indexes in step.
    fn put_session(&mut self, s: Session) -> Result<(), StoreError> {
        self.journal(ChangeRef::Session(&s))?;
        self.mem.put_session(s);
        Ok(())
    }

    /// Writes (or, None, removes) a visited session record.
    fn put_visited(&mut self, id: String, record: Option<Vec<u8>>) -> Result<(), StoreError> {
        self.journal(match &record {
            Some(r) => ChangeRef::Visited(&id, r),
            None => ChangeRef::VisitedGone(&id),
        })?;
        self.mem.put_visited(id, record);
        Ok(())
    }

    fn delete_session(&mut self, sid: &str) -> Result<(), StoreError> {
        if !self.mem.sessions.contains_key(sid) {
            return Ok(());
        }
        self.journal(ChangeRef::SessionGone(sid))?;
        self.mem.delete_session(sid);
        Ok(())
    }

    /// The stored answer of (Session-Id, CC-Request-Number), encoded: from the journal
    /// when it is not folded yet, else from the `answers` table.
    fn stored_answer(&mut self, sid: &str, n: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let key = (sid.to_string(), n);
        if let Some(v) = self.mem.unfolded.answers.get(&key) {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = self.mem.folding.as_ref().and_then(|f| f.get(&key)) {
            return Ok(Some(v.clone()));
        }
        Ok(read_table!(self, ANSWERS, (sid, n), |v: &[u8]| v.to_vec()))
    }

    /// The one atomic operation of a CCR.
    fn credit_control(
        &mut self,
        policy: &Policy,
        req: &CcRequest,
        now: UnixMillis,
    ) -> OpResult<Applied> {
        let sid = req.session_id.as_str();
        // A stored answer of (Session-Id, CC-Request-Number) is looked up in the file only
        // when there may be one: every answer kept for a live session marked its number
        // handled ([`Session::mark_number`]), except a refused second CCR-I, whose
        // decision comes out the same again while the session lives. So a request that
        // is new to its live session (the common case: every CCR-U) has none.
        let may_be_stored = self
            .mem
            .sessions
            .get(sid)
            .is_none_or(|s| s.check_number(req.request_number) != NumberCheck::New);
        if may_be_stored && let Some(stored) = self.stored_answer(sid, req.request_number)? {
            let stored: StoredAnswer = tryop!(dec(&stored));
            let answer = if stored.answer.request_type == req.request_type {
                stored.answer
            } else {
                // Same key, different request: not a retransmission, and nothing to apply.
                let mut a = CcAnswer::bare(req, rc::UNABLE_TO_COMPLY);
                a.error_message = Some("CC-Request-Number already used by another request".into());
                a
            };
            return Ok(Ok(Applied {
                answer,
                duplicate: true,
            }));
        }
        let mut found = None;
        if !self.mem.sessions.contains_key(sid) {
            for sub in &req.subscriptions {
                found = self.subscriber(&sub.index_key())?;
                if found.is_some() {
                    break;
                }
            }
        }
        let mem = &*self.mem;
        let session = mem.sessions.get(sid);
        let account_id = match session {
            Some(s) => Some(s.account.as_str()),
            None => found.as_deref(),
        };
        let account = account_id.and_then(|id| mem.accounts.get(id));
        let d: Decision = engine::decide(policy, req, session, account, now);
        if !d.keeps_answer() {
            return Ok(Ok(Applied {
                answer: d.answer,
                duplicate: false,
            }));
        }
        let Decision {
            answer,
            session: write,
            account,
        } = d;
        match write {
            SessionWrite::Keep => {}
            SessionWrite::Put(s) => self.put_session(s)?,
            SessionWrite::Delete => self.delete_session(sid)?,
        }
        if let Some(a) = account {
            self.put_account(a)?;
        }
        let expires = now.saturating_add(policy.answer_retention_ms);
        let stored = enc_into(
            &StoredAnswerRef {
                expires,
                answer: &answer,
            },
            &mut self.scratch,
        )?
        .to_vec();
        self.journal(ChangeRef::Answer(sid, req.request_number, &stored))?;
        self.mem
            .put_answer(sid.to_string(), req.request_number, stored);
        Ok(Ok(Applied {
            answer,
            duplicate: false,
        }))
    }

    fn sweep(&mut self, now: UnixMillis, retention_ms: u64) -> OpResult<SweepReport> {
        let mut report = SweepReport::default();
        let expired = self.mem.leases.expired(now, SWEEP_LIMIT);
        for sid in expired {
            self.release_session(&sid, &mut report)?;
        }
        self.forget_answers(now, retention_ms, &mut report)?;
        Ok(Ok(report))
    }

    /// Walks the next slice of the `answers` table (from where the last sweep stopped, in
    /// key order; back to the start after the end) and forgets the answers expired before
    /// `now`, at most [`SWEEP_LIMIT`]. A slice is the share of the table that makes one
    /// pass every half retention (at least [`ANSWER_SCAN_MIN`], at most
    /// [`ANSWER_SCAN_MAX`] entries), so each answer is read about three times in its life
    /// and none is kept much past 1.5 × the retention while the limits keep up.
    fn forget_answers(
        &mut self,
        now: UnixMillis,
        retention_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let mut answers = write_txn(self.db, &mut self.txn)?
            .open_table(ANSWERS)
            .map_err(se)?;
        let len = answers.len().map_err(se)?;
        let since = now.saturating_sub(self.mem.answers_scanned_at);
        self.mem.answers_scanned_at = now;
        let half = u128::from((retention_ms / 2).max(1));
        let share = u128::from(len).saturating_mul(u128::from(since)) / half;
        let want = usize::try_from(share)
            .unwrap_or(usize::MAX)
            .clamp(ANSWER_SCAN_MIN, ANSWER_SCAN_MAX);
        let mut expired: Vec<(String, u32)> = Vec::new();
        let mut last = None;
        let mut scanned = 0usize;
        {
            let from = match &self.mem.answers_cursor {
                Some((sid, n)) => Bound::Excluded((sid.as_str(), *n)),
                None => Bound::Unbounded,
            };
            for row in answers.range((from, Bound::Unbounded)).map_err(se)? {
                let (k, v) = row.map_err(se)?;
                let (sid, n) = k.value();
                scanned += 1;
                if expires_of(v.value()).is_none_or(|t| t < now) {
                    // An answer that does not decode is of no use to a retransmission.
                    expired.push((sid.to_string(), n));
                }
                if scanned >= want || expired.len() >= SWEEP_LIMIT {
                    last = Some((sid.to_string(), n));
                    break;
                }
            }
        }
        // None: the end of the table was reached; the next sweep starts at the beginning.
        self.mem.answers_cursor = last;
        for (sid, n) in expired {
            answers.remove((sid.as_str(), n)).map_err(se)?;
            report.answers_forgotten += 1;
        }
        Ok(())
    }

    /// Releases a session's reservations and forgets it (RFC 4006 §13 Tcc; RFC 6733 §8.16
    /// for a client that restarted).
    fn release_session(&mut self, sid: &str, report: &mut SweepReport) -> Result<(), StoreError> {
        let Some(s) = self.mem.sessions.get(sid) else {
            return Ok(());
        };
        let released = s.reservations.len() as u64;
        if let Some(mut a) = self.mem.accounts.get(&s.account).cloned() {
            for r in &s.reservations {
                let b = a.balances.entry(r.kind).or_default();
                b.reserved = b.reserved.saturating_sub(r.amount);
                b.available = b
                    .available
                    .saturating_add(i64::try_from(r.amount).unwrap_or(i64::MAX));
            }
            self.put_account(a)?;
        }
        report.sessions_expired += 1;
        report.reservations_released += released;
        self.delete_session(sid)
    }

    /// A session's lease is its last request plus Tcc ([`engine`]): one used before
    /// `before_ms` has a lease ending before `before_ms` + Tcc.
    fn release_client(
        &mut self,
        origin_host: &str,
        before_ms: UnixMillis,
        tcc_ms: u64,
    ) -> OpResult<SweepReport> {
        // A walk over every live session: a client restarts rarely, and an index by client
        // would cost memory and work on every CCR-I and CCR-T.
        let stale_before = before_ms.saturating_add(tcc_ms);
        let ids: Vec<String> = self
            .mem
            .sessions
            .values()
            .filter(|s| {
                s.origin_host.eq_ignore_ascii_case(origin_host) && s.lease_until < stale_before
            })
            .map(|s| s.id.clone())
            .collect();
        let mut report = SweepReport::default();
        for sid in ids {
            self.release_session(&sid, &mut report)?;
        }
        Ok(Ok(report))
    }

    fn provision(&mut self, a: &Account) -> OpResult<bool> {
        if self.mem.accounts.contains_key(&a.id) {
            return Ok(Ok(false));
        }
        self.put_account(a.clone())?;
        let mut subscribers = write_txn(self.db, &mut self.txn)?
            .open_table(SUBSCRIBERS)
            .map_err(se)?;
        for s in &a.subscriptions {
            let key = s.index_key();
            if let Some(other) = subscribers.get(key.as_str()).map_err(se)? {
                tracing::warn!(subscription = %key, account = %other.value(), "already indexed; not moved");
                continue;
            }
            subscribers
                .insert(key.as_str(), a.id.as_str())
                .map_err(se)?;
        }
        Ok(Ok(true))
    }

    fn modify(
        &mut self,
        key: &str,
        change: AccountChange,
    ) -> OpResult<Option<(Account, Vec<SessionRef>)>> {
        let Some(id) = self.resolve(key)? else {
            return Ok(Ok(None));
        };
        let Some(mut a) = tryop!(self.account_by_id(&id)?) else {
            return Ok(Ok(None));
        };
        let mut sessions = Vec::new();
        for sid in self.mem.by_account.get(&id).into_iter().flatten() {
            if let Some(s) = self.mem.sessions.get(sid) {
                sessions.push(SessionRef {
                    session_id: s.id.clone(),
                    origin_host: s.origin_host.clone(),
                    origin_realm: s.origin_realm.clone(),
                });
            }
        }
        match change {
            AccountChange::Adjust { kind, delta } => {
                let b = a.balances.entry(kind).or_default();
                b.available = b.available.saturating_add(delta);
            }
            AccountChange::SetBarred(barred) => a.barred = barred,
        }
        self.put_account(a.clone())?;
        Ok(Ok(Some((a, sessions))))
    }
}

/// One queued operation.
trait Job: Send {
    /// Runs inside the batch's transaction; an error aborts the batch.
    fn run(&mut self, t: &mut Tables<'_>, policy: &Policy) -> Result<(), StoreError>;
    /// Answers once the batch is committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// Whether its batch must reach the disk before it is answered (with `durable` on).
    fn needs_sync(&self) -> bool;
    /// Whether it may change the file (false for a read).
    fn writes(&self) -> bool;
}

struct Op<T, F> {
    /// False for a read, and for a write a crash may lose (see
    /// [`RedbStore::put_visited_lazy`]).
    sync: bool,
    /// False for a read.
    writes: bool,
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Op<T, F>
where
    T: Send,
    F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send,
{
    fn run(&mut self, t: &mut Tables<'_>, policy: &Policy) -> Result<(), StoreError> {
        if let Some(f) = self.f.take() {
            self.result = Some(f(t, policy)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let r = match commit {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError("not run".into()))),
            Err(e) => Err(e),
        };
        let _ = self.reply.send(r);
    }

    fn needs_sync(&self) -> bool {
        self.sync
    }

    fn writes(&self) -> bool {
        self.writes
    }
}

/// A CCR decided on a runtime thread ([`RedbStore::inline`]): its result, sent once its
/// log record and every one before it is on the disk.
struct Decided<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Job for Decided<T> {
    fn run(&mut self, _: &mut Tables<'_>, _: &Policy) -> Result<(), StoreError> {
        Ok(())
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let _ = self.reply.send(commit.and(self.result));
    }

    fn needs_sync(&self) -> bool {
        true
    }

    fn writes(&self) -> bool {
        true
    }
}

/// What the writer thread receives.
enum Msg {
    Job(Box<dyn Job>),
    /// Work waits in [`State`].
    Wake,
    /// Finish what is queued before it, close the file cleanly, then answer.
    Close(oneshot::Sender<()>),
}

/// The log beside the data file `path`: `path` with `.wal` added.
pub fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".wal");
    p.into()
}

/// The embedded store (see the module documentation).
pub struct RedbStore {
    shared: Arc<Shared>,
    origin_state_id: u32,
}

/// What the runtime's threads (deciding CCRs) and the writer thread (writing, and running
/// every other operation) share.
struct Shared {
    state: Mutex<State>,
    policy: Arc<Policy>,
    options: RedbOptions,
    queue: mpsc::Sender<Msg>,
}

/// Memory, and what waits for the disk. A CCR is decided under this lock on the thread that
/// received it: memory changed, its journal entry encoded as a log record into `pending`.
/// The writer takes `pending` under the lock and writes it without; so records reach the
/// log in the order of their numbers, which is the order memory changed in.
struct State {
    /// None once closed.
    db: Option<Arc<Database>>,
    mem: Mem,
    /// Log records not yet written.
    pending: Vec<u8>,
    /// The CCRs in them.
    pending_ops: usize,
    /// The buffer `pending` was before, written and emptied, for the next swap.
    spare: Vec<u8>,
    /// Answers waiting for the records up to theirs to be on the disk (with `durable`).
    waiting: Vec<Box<dyn Job>>,
    /// Every journal entry numbered below this is on the disk.
    durable_next: u64,
    /// False while the writer sleeps without a deadline (or is about to): the next CCR
    /// that needs it wakes it.
    writer_awake: bool,
    /// When the sleeping writer comes back by itself (a checkpoint, a fold or a flush due).
    writer_due: Option<Instant>,
    /// Lazy visited records ([`RedbStore::put_visited_lazy`]), run first by the next round:
    /// any later write of the same record is sent after them.
    deferred: Vec<Box<dyn Job>>,
    /// Buffers a CCR reuses.
    scratch: Vec<u8>,
    journal: Vec<u8>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // Nothing panics while holding it; if something did, the state is still whole (memory
    // changes only after every read and check), and the writer's next failure reloads it.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wakes the writer unless it is awake.
fn wake(shared: &Shared, st: &mut State) {
    if !st.writer_awake {
        st.writer_awake = true;
        let _ = shared.queue.send(Msg::Wake);
    }
}

/// Log records this large are written without waiting for the writer's next round.
const PENDING_MAX: usize = 1 << 20;
/// Without `durable`, how long a CCR's record may wait in memory before the writer puts it
/// in the log.
const FLUSH_EVERY: Duration = Duration::from_millis(2);

impl RedbStore {
    /// Opens (or creates) the data file and starts the writer thread.
    pub fn open(
        path: &Path,
        options: RedbOptions,
        policy: Arc<Policy>,
    ) -> Result<Self, StoreError> {
        let db =
            Database::create(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        // Create the tables so read paths find them.
        let txn = db.begin_write().map_err(se)?;
        let origin_state_id = {
            txn.open_table(ACCOUNTS).map_err(se)?;
            txn.open_table(SUBSCRIBERS).map_err(se)?;
            txn.delete_table(OLD_LEASES).map_err(se)?;
            txn.delete_table(OLD_ACCOUNT_SESSIONS).map_err(se)?;
            txn.delete_table(OLD_CLIENT_SESSIONS).map_err(se)?;
            txn.open_table(ANSWERS).map_err(se)?;
            txn.delete_table(OLD_ANSWER_EXPIRY).map_err(se)?;
            txn.open_table(VISITED).map_err(se)?;
            txn.open_table(JOURNAL).map_err(se)?;
            txn.open_table(SESSIONS).map_err(se)?;
            let mut m = txn.open_table(META).map_err(se)?;
            let stored = m.get("origin_state_id").map_err(se)?.map(|v| v.value());
            let osi = match stored {
                Some(v) => v,
                None => {
                    // Seconds since the epoch when this state began; kept as long as the
                    // state is.
                    let v = crate::server::now_ms() / 1000;
                    m.insert("origin_state_id", v).map_err(se)?;
                    v
                }
            };
            u32::try_from(osi).unwrap_or(u32::MAX)
        };
        txn.commit().map_err(se)?;
        let log = wal_path(path);
        let (mut wal, records) =
            Wal::open(&log).map_err(|e| StoreError(format!("{}: {e}", log.display())))?;
        let mut mem = Mem::load(&db, records)?;
        // What was read is folded, durably, and the log starts over.
        let snapshot = Fold::take(&mut mem)?;
        let mut txn = db.begin_write().map_err(se)?;
        txn.set_durability(Durability::Immediate).map_err(se)?;
        snapshot.write(&txn)?;
        txn.commit().map_err(se)?;
        mem.folding = None;
        wal.restart();
        crate::metrics::set_sizes(mem.sessions.len() as u64, mem.reservations);
        let (tx, rx) = mpsc::channel();
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                db: Some(db.clone()),
                durable_next: mem.journal_next,
                mem,
                pending: Vec::new(),
                spare: Vec::new(),
                pending_ops: 0,
                waiting: Vec::new(),
                writer_awake: true,
                writer_due: None,
                deferred: Vec::new(),
                scratch: Vec::with_capacity(1024),
                journal: Vec::with_capacity(1024),
            }),
            policy,
            options,
            queue: tx,
        });
        let replies = Replies::new();
        let for_writer = shared.clone();
        std::thread::Builder::new()
            .name("ocs-store".into())
            .spawn(move || writer(db, wal, for_writer, rx, replies))
            .map_err(se)?;
        Ok(Self {
            shared,
            origin_state_id,
        })
    }

    /// A CCR decided on the calling thread ([`RedbStore::inline`]).
    fn decide(&self, req: CcRequest, now: UnixMillis) -> StoreFuture<'static, Applied> {
        self.inline(move |t, p| t.credit_control(p, &req, now))
    }

    /// An operation of memory and the journal only (a CCR) run on the calling thread under
    /// the lock ([`State`]): its changes in memory and its journal entry among the pending
    /// log records. With `durable` it is answered once every record up to its own is on the
    /// disk (also one that wrote nothing — a retransmission's answer, a refusal — may rest
    /// on a record not there yet); without, at once. While memory is stale, or once closed,
    /// it goes to the writer as any operation.
    fn inline<T, F>(&self, op: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send + 'static,
    {
        let shared = &*self.shared;
        let mut guard = lock(shared);
        let st = &mut *guard;
        let db = match st.db.as_deref() {
            Some(db) if !st.mem.stale => db,
            _ => {
                drop(guard);
                return self.submit_with(true, true, op);
            }
        };
        let buffers = (
            std::mem::take(&mut st.scratch),
            std::mem::take(&mut st.journal),
        );
        let mut t = Tables::new(db, &mut st.mem, buffers);
        let ran = op(&mut t, &shared.policy);
        let (scratch, mut journal) = (
            std::mem::take(&mut t.scratch),
            std::mem::take(&mut t.journal),
        );
        drop(t);
        let result = match ran {
            Ok(r) => r,
            Err(e) => {
                // Storage failed, perhaps after memory changed: the writer reads it again.
                st.mem.stale = true;
                journal.clear();
                wake(shared, st);
                Err(e)
            }
        };
        let (pending_before, changes_before) = (st.pending.len(), st.mem.unfolded.changes);
        if !journal.is_empty() {
            let seq = st.mem.journal_next;
            st.mem.journal_next += 1;
            wal::encode(seq, &journal, &mut st.pending);
            st.pending_ops += 1;
            journal.clear();
        }
        st.scratch = scratch;
        st.journal = journal;
        if shared.options.durable && st.mem.journal_next > st.durable_next {
            let (reply, rx) = oneshot::channel();
            st.waiting.push(Box::new(Decided { result, reply }));
            wake(shared, st);
            drop(guard);
            return Box::pin(async move {
                rx.await
                    .unwrap_or_else(|_| Err(StoreError("store writer stopped".into())))
            });
        }
        // Answered now: the writer puts the record in the log within `FLUSH_EVERY`, woken
        // if it sleeps without a deadline, and at once for a large backlog or a fold due.
        let crossed = |before: usize, after: usize, limit: usize| before < limit && after >= limit;
        if crossed(pending_before, st.pending.len(), PENDING_MAX)
            || crossed(
                changes_before,
                st.mem.unfolded.changes,
                shared.options.fold_changes,
            )
        {
            st.writer_awake = true;
            let _ = shared.queue.send(Msg::Wake);
        } else if st.pending.len() > pending_before {
            wake(shared, st);
        }
        drop(guard);
        Box::pin(std::future::ready(result))
    }

    /// Commits what is queued and closes the data file cleanly (a file closed this way
    /// opens without the repair a crash needs). Operations sent afterwards fail.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.queue.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The visited role: writes a session record whole, answered (with `durable`) once on
    /// the disk. Like a CCR it is a journal entry, in the log: one `pwrite` and one
    /// `fdatasync` shared with whatever else the round writes, not a redb commit. The
    /// record is encoded on the writer thread, not the caller's.
    ///
    /// The visited role's writes ([`RedbStore::put_visited_lazy`] and
    /// [`RedbStore::remove_visited`] too) are journaled in the order they are made.
    pub fn put_visited<T>(&self, id: String, record: Arc<T>) -> StoreFuture<'static, ()>
    where
        T: Serialize + Send + Sync + 'static,
    {
        self.submit_with(true, true, write_visited(id, Some(record)))
    }

    /// The visited role: as [`RedbStore::put_visited`], without waiting for it. A crash
    /// may lose it: the writer takes it with its next round (another operation's, or a
    /// checkpoint, fold or flush due, within `checkpoint_interval`; it is not woken for it
    /// when it has such a deadline — a wake-up per record costs the caller more than the
    /// write), so it is only for a record whose durable predecessor lets the lost change be
    /// made again. If its round fails (the writer logs that), the record before it stands.
    pub fn put_visited_lazy<T>(&self, id: String, record: Arc<T>)
    where
        T: Serialize + Send + Sync + 'static,
    {
        // Nobody waits for its answer.
        let (job, _) = job(false, true, write_visited(id, Some(record)));
        let shared = &*self.shared;
        let mut st = lock(shared);
        st.deferred.push(job);
        let rides = st
            .writer_due
            .is_some_and(|d| d <= Instant::now() + shared.options.checkpoint_interval);
        if !rides {
            wake(shared, &mut st);
        }
    }

    /// The visited role: forgets a session record.
    pub fn remove_visited(&self, id: String) -> StoreFuture<'static, ()> {
        self.submit_with(true, true, write_visited::<()>(id, None))
    }

    /// The visited role: every session record (read once, at start): the table's, with
    /// the journal's not yet folded over them (the writer runs this between rounds, so
    /// no fold is half done). A record that does not decode is an error (a file written by
    /// an incompatible version), not skipped.
    pub fn visited_records<T: DeserializeOwned + Send + 'static>(&self) -> StoreFuture<'_, Vec<T>> {
        self.read(|t, _| {
            let mut records: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            // Only a fold writes the table, and none is under way: the last commit is
            // what the batch sees.
            let read = t.db.begin_read().map_err(se)?;
            let visited = read.open_table(VISITED).map_err(se)?;
            for row in visited.iter().map_err(se)? {
                let (k, v) = row.map_err(se)?;
                records.insert(k.value().to_string(), v.value().to_vec());
            }
            for (id, record) in &t.mem.unfolded.visited {
                match record {
                    Some(r) => records.insert(id.clone(), r.clone()),
                    None => records.remove(id),
                };
            }
            let mut out = Vec::with_capacity(records.len());
            for bytes in records.values() {
                out.push(tryop!(dec::<T>(bytes)));
            }
            Ok(Ok(out))
        })
    }

    fn submit<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send + 'static,
    {
        self.submit_with(true, true, f)
    }

    /// An operation that changes nothing: its batch needs no fsync for it.
    fn read<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send + 'static,
    {
        self.submit_with(false, false, f)
    }

    fn submit_with<T, F>(&self, sync: bool, writes: bool, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send + 'static,
    {
        let (job, rx) = job(sync, writes, f);
        let sent = self.shared.queue.send(Msg::Job(job)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError("store writer stopped".into()));
            }
            rx.await
                .unwrap_or_else(|_| Err(StoreError("store writer stopped".into())))
        })
    }
}

/// A queued operation for the writer, and where its result comes.
fn job<T, F>(
    sync: bool,
    writes: bool,
    f: F,
) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Tables<'_>, &Policy) -> OpResult<T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job = Box::new(Op {
        sync,
        writes,
        f: Some(f),
        result: None,
        reply,
    });
    (job, rx)
}

/// The writer's operation for a visited session record written (encoded there) or, None,
/// removed.
fn write_visited<T>(
    id: String,
    record: Option<Arc<T>>,
) -> impl FnOnce(&mut Tables<'_>, &Policy) -> OpResult<()> + Send + 'static
where
    T: Serialize + Send + Sync + 'static,
{
    move |t, _| {
        let record = match record {
            Some(r) => Some(tryop!(enc(&*r))),
            None => None,
        };
        t.put_visited(id, record)?;
        Ok(Ok(()))
    }
}

/// What the writer hands back to the runtime: a finished batch, or the end.
enum Delivery {
    Batch(Vec<Box<dyn Job>>, Result<(), StoreError>),
    Closed(oneshot::Sender<()>),
}

impl Delivery {
    fn deliver(self) {
        match self {
            Self::Batch(jobs, commit) => {
                for job in jobs {
                    job.finish(commit.clone());
                }
            }
            Self::Closed(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Where the writer's answers go. Each answer wakes the task that waits for it; woken from
/// the writer thread, every task of a batch would be handed to the runtime from outside
/// (a push on its shared queue, often a worker unparked: system calls per CCR). So the
/// writer hands the whole batch to one task on the runtime, one wake per batch, and that
/// task answers them from inside. Without a runtime at open (or once it is gone) the writer
/// answers itself.
struct Replies(Option<tokio::sync::mpsc::UnboundedSender<Delivery>>);

impl Replies {
    fn new() -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Self(None);
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
        runtime.spawn(async move {
            while let Some(d) = rx.recv().await {
                d.deliver();
            }
        });
        Self(Some(tx))
    }

    fn send(&self, d: Delivery) {
        match &self.0 {
            Some(tx) => {
                if let Err(e) = tx.send(d) {
                    e.0.deliver();
                }
            }
            None => d.deliver(),
        }
    }
}

/// A fold of the journal into the tables ([`Fold::take`] under the lock, [`Fold::write`]
/// without it): each changed account and session encoded as memory holds it (None: gone),
/// and the stored answers in key order.
struct Fold {
    accounts: Encoded,
    sessions: Encoded,
    answers: Arc<Answers>,
    visited: Encoded,
    /// Every journal entry below this number is in it.
    next: u64,
    sessions_count: u64,
    reservations: u64,
}

impl Fold {
    /// Takes what is unfolded out of `mem`; its answers stay visible as `mem.folding` until
    /// the fold is committed.
    fn take(mem: &mut Mem) -> Result<Self, StoreError> {
        let unfolded = std::mem::take(&mut mem.unfolded);
        fn encoded<V: Serialize>(
            ids: HashSet<String>,
            now: &HashMap<String, V>,
        ) -> Result<Encoded, StoreError> {
            ids.into_iter()
                .map(|id| {
                    let v = now.get(&id).map(enc).transpose()?;
                    Ok((id, v))
                })
                .collect()
        }
        let answers = Arc::new(unfolded.answers);
        mem.folding = Some(answers.clone());
        Ok(Self {
            accounts: encoded(unfolded.accounts, &mem.accounts)?,
            sessions: encoded(unfolded.sessions, &mem.sessions)?,
            answers,
            visited: unfolded.visited.into_iter().collect(),
            next: mem.journal_next,
            sessions_count: mem.sessions.len() as u64,
            reservations: mem.reservations,
        })
    }

    /// Writes it into `txn`, empties the `journal` table, and records where the journal now
    /// starts.
    fn write(&self, txn: &redb::WriteTransaction) -> Result<(), StoreError> {
        for (def, changed) in [
            (ACCOUNTS, &self.accounts),
            (SESSIONS, &self.sessions),
            (VISITED, &self.visited),
        ] {
            let mut table = txn.open_table(def).map_err(se)?;
            for (id, v) in changed {
                match v {
                    Some(v) => table.insert(id.as_str(), v.as_slice()).map_err(se)?,
                    None => table.remove(id.as_str()).map_err(se)?,
                };
            }
        }
        let mut answers = txn.open_table(ANSWERS).map_err(se)?;
        for ((sid, n), stored) in self.answers.iter() {
            answers
                .insert((sid.as_str(), *n), stored.as_slice())
                .map_err(se)?;
        }
        txn.delete_table(JOURNAL).map_err(se)?;
        txn.open_table(JOURNAL).map_err(se)?;
        let mut meta = txn.open_table(META).map_err(se)?;
        meta.insert(JOURNAL_START, self.next).map_err(se)?;
        // For the operator's tools (the writer counts from memory).
        meta.insert("sessions", self.sessions_count).map_err(se)?;
        meta.insert("reservations", self.reservations).map_err(se)?;
        Ok(())
    }
}

/// The writer thread: rounds ([`round`]) while work comes, asleep otherwise.
fn writer(
    db: Arc<Database>,
    mut wal: Wal,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
    replies: Replies,
) {
    let options = shared.options.clone();
    let max = options.max_batch.max(1);
    let mut closing = None;
    // When a durable commit is due: `checkpoint_interval` after the first write since the
    // last durable commit that did not reach the disk. redb on `Durability::None`:
    // "Commits with this durability level will not be persisted to disk unless followed by
    // a commit with [`Durability::Immediate`]" — a crash takes the file back to the last
    // durable commit, however many non-durable ones followed it.
    let mut checkpoint_due: Option<Instant> = None;
    let mut last = Vec::new();
    let mut run = |jobs, checkpoint_due: &mut Option<Instant>, closing| {
        round(
            &db,
            &mut wal,
            &shared,
            jobs,
            checkpoint_due,
            closing,
            &replies,
        )
    };
    loop {
        // Asleep unless answers wait for the disk: until an operation or a wake comes, or
        // a checkpoint, a fold or (without `durable`) a flush of the log is due.
        let (busy, due) = {
            let mut st = lock(&shared);
            // (Records pending without answers waiting are lazy ones: they wait as without
            // `durable`.)
            let busy = !st.waiting.is_empty();
            // With records pending it comes back for them within `FLUSH_EVERY` unwoken.
            let queued = !st.pending.is_empty() || !st.deferred.is_empty();
            st.writer_awake = busy || queued;
            let fold_at = st.mem.unfolded.since.map(|t| t + options.fold_interval);
            let flush_at = queued.then(|| Instant::now() + FLUSH_EVERY);
            let due = [checkpoint_due, fold_at, flush_at]
                .into_iter()
                .flatten()
                .min();
            st.writer_due = due;
            (busy, due)
        };
        let mut jobs = Vec::new();
        if !busy {
            let next = match due {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(Msg::Job(j)) => jobs.push(j),
                Ok(Msg::Wake) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        while closing.is_none() && jobs.len() < max {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => jobs.push(j),
                Ok(Msg::Wake) => {}
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if closing.is_some() {
            last = jobs;
            break;
        }
        run(jobs, &mut checkpoint_due, false);
    }
    // A clean close: no CCR is decided from now on (they go to the queue, which closes
    // with this thread and fails them); what is queued and pending is written, then a
    // durable fold leaves no journal.
    lock(&shared).db = None;
    let mut jobs = last;
    while let Ok(m) = rx.try_recv() {
        if let Msg::Job(j) = m {
            jobs.push(j);
        }
    }
    run(jobs, &mut checkpoint_due, true);
    match Arc::try_unwrap(db) {
        Ok(db) => {
            if let Err(e) = db.close() {
                tracing::warn!(error = %e, "closing the data file");
            }
        }
        Err(_) => tracing::warn!("the data file is still in use at close"),
    }
    if let Some(done) = closing {
        // After the answers of the rounds before it.
        replies.send(Delivery::Closed(done));
    }
}

/// One round of the writer: under the lock, the queued operations run and the CCRs'
/// records waiting are taken (with a fold when one is due); then, without the lock, the
/// records go to the log and the rest to a redb transaction; then everything is answered.
fn round(
    db: &Database,
    wal: &mut Wal,
    shared: &Shared,
    mut jobs: Vec<Box<dyn Job>>,
    checkpoint_due: &mut Option<Instant>,
    closing: bool,
    replies: &Replies,
) {
    let options = &shared.options;
    let started = Instant::now();
    let checkpoint = closing || checkpoint_due.is_some_and(|due| started >= due);
    let mut guard = lock(shared);
    let st = &mut *guard;
    if !st.deferred.is_empty() {
        let mut first = std::mem::take(&mut st.deferred);
        first.append(&mut jobs);
        jobs = first;
    }
    // The CCRs decided since the last round: their records and (with `durable`) answers.
    let spare = std::mem::take(&mut st.spare);
    let mut records = std::mem::replace(&mut st.pending, spare);
    let decided_ops = std::mem::take(&mut st.pending_ops);
    let mut decided = std::mem::take(&mut st.waiting);
    if st.mem.stale {
        // Those CCRs were decided before memory went stale, on a whole state, and their
        // records are in order: written first, so the file read back holds them.
        let written = if records.is_empty() {
            Ok(())
        } else {
            wal.write_encoded(&records, options.durable).map_err(se)
        };
        records.clear();
        if !decided.is_empty() {
            replies.send(Delivery::Batch(
                std::mem::take(&mut decided),
                written.clone(),
            ));
        }
        let read = written
            .and_then(|()| wal.records().map_err(se))
            .and_then(|r| Mem::load(db, r));
        match read {
            Ok(m) => {
                st.durable_next = m.journal_next;
                st.mem = m;
            }
            Err(e) => {
                // Answering from a state the file does not hold would charge wrongly: the
                // operations fail (5012), and the next round reads the file again.
                tracing::error!(error = %e, "reading the data file after a failed commit");
                st.spare = records;
                drop(guard);
                crate::metrics::record_commit(jobs.len(), started.elapsed(), false);
                replies.send(Delivery::Batch(jobs, Err(e)));
                return;
            }
        }
    }
    let sync_jobs = jobs.iter().any(|j| j.needs_sync());
    let write_jobs = jobs.iter().any(|j| j.writes());
    let ran = {
        let mut t = Tables::new(db, &mut st.mem, Default::default());
        let mut ran = Ok(());
        for job in jobs.iter_mut() {
            ran = job.run(&mut t, &shared.policy);
            if ran.is_err() {
                break;
            }
        }
        ran.map(|()| (t.txn.take(), std::mem::take(&mut t.journal)))
    };
    let (txn, journal) = match ran {
        Ok(v) => v,
        Err(e) => {
            // Memory holds part of the failed operations: it is read again from the file
            // by the next round, which first writes the records of the CCRs decided before
            // them (put back; none came since, the lock is held).
            st.mem.stale = true;
            st.spare = std::mem::replace(&mut st.pending, records);
            st.pending_ops = decided_ops;
            st.waiting = decided;
            drop(guard);
            tracing::error!(error = %e, operations = jobs.len(), "store operation failed");
            crate::metrics::record_commit(jobs.len(), started.elapsed(), false);
            replies.send(Delivery::Batch(jobs, Err(e)));
            return;
        }
    };
    let mut ops = decided_ops + jobs.len();
    // A round of reads and lazy writes only goes without an fsync; operations waiting for
    // the disk (a retransmission's answer among them, which has no record) need one.
    let durable = (options.durable && (sync_jobs || !decided.is_empty())) || checkpoint;
    jobs.append(&mut decided);
    let fold_due = checkpoint
        || st.mem.unfolded.since.is_some_and(|since| {
            st.mem.unfolded.changes >= options.fold_changes
                || started >= since + options.fold_interval
        });
    // The operations' journal entry: in the log when they wrote no table, else in the
    // `journal` table with their transaction; none when a fold takes their changes.
    let mut entry = None;
    if !journal.is_empty() {
        let seq = st.mem.journal_next;
        st.mem.journal_next += 1;
        if txn.is_none() && !fold_due {
            wal::encode(seq, &journal, &mut records);
        } else if !fold_due {
            entry = Some((seq, journal));
        }
    }
    let fold = if fold_due {
        match Fold::take(&mut st.mem) {
            Ok(f) => Some(f),
            Err(e) => {
                st.mem.stale = true;
                drop(guard);
                crate::metrics::record_commit(ops, started.elapsed(), false);
                replies.send(Delivery::Batch(jobs, Err(e)));
                return;
            }
        }
    } else {
        None
    };
    let upto = st.mem.journal_next;
    drop(guard);

    // To the disk, without the lock: the runtime's threads go on deciding CCRs meanwhile.
    let committed = txn.is_some() || fold.is_some() || entry.is_some();
    let mut fold_took = None;
    let result = (|| -> Result<(), StoreError> {
        if !records.is_empty() {
            // A durable fold below takes their changes to the disk as well.
            let sync = durable && fold.is_none();
            wal.write_encoded(&records, sync).map_err(se)?;
        }
        if committed {
            let fold_started = Instant::now();
            let mut txn = match txn {
                Some(txn) => txn,
                None => db.begin_write().map_err(se)?,
            };
            txn.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            })
            .map_err(se)?;
            if let Some(f) = &fold {
                f.write(&txn)?;
            } else if let Some((seq, journal)) = &entry {
                txn.open_table(JOURNAL)
                    .map_err(se)?
                    .insert(*seq, journal.as_slice())
                    .map_err(se)?;
            }
            txn.commit().map_err(se)?;
            if fold.is_some() {
                fold_took = Some(fold_started.elapsed());
            }
        }
        Ok(())
    })();
    if let Some(took) = fold_took {
        crate::metrics::record_fold(took);
    }

    let mut guard = lock(shared);
    let st = &mut *guard;
    match &result {
        Ok(()) => {
            if fold.is_some() {
                st.mem.folding = None;
            }
            if durable {
                st.durable_next = st.durable_next.max(upto);
                if committed {
                    *checkpoint_due = None;
                }
                if fold.is_some() {
                    // Every record in the log is in the tables, on the disk.
                    wal.restart();
                }
            } else if (committed && write_jobs) || !records.is_empty() || fold.is_some() {
                checkpoint_due.get_or_insert(started + options.checkpoint_interval);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, operations = ops, "store commit failed");
            // The CCRs decided since were decided on what failed: they fail too.
            st.mem.stale = true;
            ops += st.pending_ops;
            st.pending.clear();
            st.pending_ops = 0;
            jobs.append(&mut st.waiting);
        }
    }
    crate::metrics::set_sizes(st.mem.sessions.len() as u64, st.mem.reservations);
    if records.capacity() <= 2 * PENDING_MAX {
        records.clear();
        st.spare = records;
    }
    drop(guard);
    if ops > 0 || committed {
        crate::metrics::record_commit(ops, started.elapsed(), result.is_ok());
    }
    if !jobs.is_empty() {
        replies.send(Delivery::Batch(jobs, result));
    }
}

impl ChargingStore for RedbStore {
    fn origin_state_id(&self) -> u32 {
        self.origin_state_id
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            Self::close(self).await;
            Ok(())
        })
    }

    fn credit_control(&self, req: CcRequest, now: UnixMillis) -> StoreFuture<'_, Applied> {
        self.decide(req, now)
    }

    fn sweep(&self, now: UnixMillis) -> StoreFuture<'_, SweepReport> {
        self.submit(move |t, p| t.sweep(now, p.answer_retention_ms))
    }

    fn release_session(&self, session_id: String) -> StoreFuture<'_, SweepReport> {
        self.submit(move |t, _| {
            let mut report = SweepReport::default();
            t.release_session(&session_id, &mut report)?;
            Ok(Ok(report))
        })
    }

    fn release_client(
        &self,
        origin_host: String,
        before_ms: UnixMillis,
    ) -> StoreFuture<'_, SweepReport> {
        self.submit(move |t, policy| t.release_client(&origin_host, before_ms, policy.tcc_ms))
    }

    fn provision(&self, account: Account) -> StoreFuture<'_, bool> {
        self.submit(move |t, _| t.provision(&account))
    }

    fn account(&self, key: String) -> StoreFuture<'_, Option<Account>> {
        self.read(move |t, _| match t.resolve(&key)? {
            Some(id) => t.account_by_id(&id),
            None => Ok(Ok(None)),
        })
    }

    fn session(&self, session_id: String) -> StoreFuture<'_, Option<Session>> {
        self.read(move |t, _| t.session(&session_id))
    }

    fn modify(
        &self,
        key: String,
        change: AccountChange,
    ) -> StoreFuture<'_, Option<(Account, Vec<SessionRef>)>> {
        self.submit(move |t, _| t.modify(&key, change))
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        self.read(move |t, _| {
            Ok(Ok(Counts {
                sessions: t.mem.sessions.len() as u64,
                reservations: t
                    .mem
                    .sessions
                    .values()
                    .map(|s| s.reservations.len() as u64)
                    .sum(),
                accounts: t.mem.accounts.len() as u64,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::{
        Balance, MsccRequest, RequestType, ServiceKey, SubscriptionId, SubscriptionType, UnitKind,
        Units,
    };

    fn ccr_i() -> CcRequest {
        CcRequest {
            session_id: "s1".into(),
            origin_host: "pcef".into(),
            origin_realm: "r".into(),
            request_type: RequestType::Initial,
            request_number: 0,
            subscriptions: vec![SubscriptionId {
                kind: SubscriptionType::Imsi,
                data: "1".into(),
            }],
            requested_action: None,
            single: None,
            visited: Vec::new(),
            mscc: vec![MsccRequest {
                service: ServiceKey {
                    rating_group: Some(1),
                    service_id: None,
                },
                requested: Some(Units::default()),
                used: None,
            }],
        }
    }

    fn ccr_u(n: u32, used: u64) -> CcRequest {
        let mut r = ccr_i();
        r.request_type = RequestType::Update;
        r.request_number = n;
        r.mscc[0].used = Some(Units {
            total_octets: Some(used),
            ..Units::default()
        });
        r
    }

    /// A store in `dir` without fsync, with account "a" (the subscriber of `ccr_i`) holding
    /// 10 MB: the store, its file, its options and policy (to open it again).
    async fn store_with_account(
        dir: &Path,
    ) -> (RedbStore, std::path::PathBuf, RedbOptions, Arc<Policy>) {
        let options = RedbOptions {
            max_batch: 8,
            durable: false,
            ..RedbOptions::default()
        };
        store_with_account_and(dir, options).await
    }

    /// [`store_with_account`] with these options.
    async fn store_with_account_and(
        dir: &Path,
        options: RedbOptions,
    ) -> (RedbStore, std::path::PathBuf, RedbOptions, Arc<Policy>) {
        let path = dir.join("ocs.redb");
        let policy = Arc::new(Policy::from_config(&Config::demo()));
        let store = RedbStore::open(&path, options.clone(), policy.clone()).unwrap();
        let mut account = Account {
            id: "a".into(),
            subscriptions: ccr_i().subscriptions,
            ..Account::default()
        };
        account.balances.insert(
            UnitKind::TotalOctets,
            Balance {
                available: 10_000_000,
                reserved: 0,
            },
        );
        assert!(store.provision(account).await.unwrap());
        (store, path, options, policy)
    }

    /// Sessions and accounts are read from memory, stored answers from the file: a
    /// retransmitted CCR-U gets its stored answer and is charged once, in the same process
    /// and after a restart (which reads the memory state back from the file).
    #[tokio::test]
    async fn a_retransmission_is_answered_from_the_file_and_charged_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path, options, policy) = store_with_account(dir.path()).await;
        let cc = |r: CcRequest| ChargingStore::credit_control(&store, r, 1_000);
        assert_eq!(cc(ccr_i()).await.unwrap().answer.result_code, rc::SUCCESS);
        let first = cc(ccr_u(1, 100)).await.unwrap();
        assert!(!first.duplicate);
        assert_eq!(first.answer.result_code, rc::SUCCESS);
        let total = |a: &Account| a.balances[&UnitKind::TotalOctets].total();
        let after_first = total(&store.account("a".into()).await.unwrap().unwrap());
        assert_eq!(after_first, 10_000_000 - 100);
        let again = cc(ccr_u(1, 100)).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.answer, first.answer);
        // The same number with another type: not a retransmission, nothing applied.
        let mut other = ccr_u(1, 100);
        other.request_type = RequestType::Termination;
        let other = cc(other).await.unwrap();
        assert_eq!(other.answer.result_code, rc::UNABLE_TO_COMPLY);
        assert_eq!(
            total(&store.account("a".into()).await.unwrap().unwrap()),
            after_first
        );
        RedbStore::close(&store).await;
        drop(store);

        let store = RedbStore::open(&path, options, policy).unwrap();
        let again = retransmitted_then_charged(&store, ccr_u(1, 100), ccr_u(2, 50)).await;
        assert_eq!(again, first.answer);
        assert_eq!(
            total(&store.account("a".into()).await.unwrap().unwrap()),
            after_first - 50
        );
        assert_eq!(store.counts().await.unwrap().sessions, 1);
        RedbStore::close(&store).await;
    }

    /// `store` answers `again` from what it stored (that answer is returned) and charges
    /// `next` as a new request.
    async fn retransmitted_then_charged(
        store: &RedbStore,
        again: CcRequest,
        next: CcRequest,
    ) -> CcAnswer {
        let again = ChargingStore::credit_control(store, again, 2_000)
            .await
            .unwrap();
        assert!(again.duplicate);
        let next = ChargingStore::credit_control(store, next, 2_000)
            .await
            .unwrap();
        assert!(!next.duplicate);
        again.answer
    }

    /// What a `kill -9` would leave of the file at `path` now (the process's memory gone,
    /// the file as written), opened.
    /// After a crash, the journal's changes are read back over the tables whether they were
    /// folded into them (every batch, now and then) or not (never): nothing charged twice,
    /// a retransmission answered from what was stored, the session still there.
    #[tokio::test]
    async fn the_journal_is_read_back_after_a_crash_folded_or_not() {
        for (n, fold_changes) in [1, 4, usize::MAX].into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let options = RedbOptions {
                max_batch: 8,
                durable: true,
                fold_changes,
                fold_interval: Duration::from_secs(3600),
                ..RedbOptions::default()
            };
            let (store, path, options, _) = store_with_account_and(dir.path(), options).await;
            let cc = |r: CcRequest| ChargingStore::credit_control(&store, r, 1_000);
            assert_eq!(cc(ccr_i()).await.unwrap().answer.result_code, rc::SUCCESS);
            let mut answers = Vec::new();
            for (number, used) in [(1, 100), (2, 50), (3, 7)] {
                let a = cc(ccr_u(number, used)).await.unwrap();
                assert_eq!(a.answer.result_code, rc::SUCCESS);
                answers.push(a.answer);
            }
            let total = |a: &Account| a.balances[&UnitKind::TotalOctets].total();
            let before = total(&store.account("a".into()).await.unwrap().unwrap());
            assert_eq!(before, 10_000_000 - 157, "fold_changes {fold_changes}");

            // No close: the file as a kill -9 leaves it.
            let copy = as_after_a_crash(&path, n, &options);
            assert_eq!(
                total(&copy.account("a".into()).await.unwrap().unwrap()),
                before,
                "fold_changes {fold_changes}"
            );
            assert_eq!(copy.counts().await.unwrap().sessions, 1);
            for (number, answer) in [1, 3].into_iter().zip([&answers[0], &answers[2]]) {
                let again = ChargingStore::credit_control(&copy, ccr_u(number, 1), 2_000)
                    .await
                    .unwrap();
                assert!(again.duplicate, "fold_changes {fold_changes}");
                assert_eq!(&again.answer, answer);
            }
            let next = ChargingStore::credit_control(&copy, ccr_u(4, 3), 2_000)
                .await
                .unwrap();
            assert!(!next.duplicate);
            assert_eq!(
                total(&copy.account("a".into()).await.unwrap().unwrap()),
                before - 3
            );
            RedbStore::close(&copy).await;
            RedbStore::close(&store).await;
        }
    }

    fn as_after_a_crash(path: &Path, n: usize, options: &RedbOptions) -> RedbStore {
        let copy = path.with_extension(format!("copy{n}"));
        std::fs::copy(path, &copy).unwrap();
        std::fs::copy(wal_path(path), wal_path(&copy)).unwrap();
        let policy = Arc::new(Policy::from_config(&Config::demo()));
        RedbStore::open(&copy, options.clone(), policy).unwrap()
    }

    /// Durable, folding every `changes` changes and never by time.
    fn durable_folding_every(changes: usize) -> RedbOptions {
        RedbOptions {
            max_batch: 8,
            durable: true,
            fold_changes: changes,
            fold_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        }
    }

    /// CCRs of a known subscriber go to the log, and the log starts over after each durable
    /// fold: it stays the size it was created with, and after a crash only its records not
    /// folded are read (the older ones after them are not), with the session indexes in
    /// memory built again (a top-up finds the session, a restarted client's is released).
    #[tokio::test]
    async fn the_log_starts_over_after_a_fold_and_is_read_back_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let options = durable_folding_every(7);
        let (store, path, options, _) = store_with_account_and(dir.path(), options).await;
        let cc = |r: CcRequest| ChargingStore::credit_control(&store, r, 1_000);
        assert_eq!(cc(ccr_i()).await.unwrap().answer.result_code, rc::SUCCESS);
        let mut used_total = 0i64;
        for number in 1..=40u32 {
            let used = u64::from(number) * 10;
            used_total += used as i64;
            let a = cc(ccr_u(number, used)).await.unwrap();
            assert_eq!(a.answer.result_code, rc::SUCCESS, "{number}");
        }
        let log = wal_path(&path);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), wal::PREALLOCATED);
        let total = |a: &Account| a.balances[&UnitKind::TotalOctets].total();
        let before = total(&store.account("a".into()).await.unwrap().unwrap());
        assert_eq!(before, 10_000_000 - used_total);

        let copy = as_after_a_crash(&path, 0, &options);
        assert_eq!(
            total(&copy.account("a".into()).await.unwrap().unwrap()),
            before
        );
        retransmitted_then_charged(&copy, ccr_u(40, 400), ccr_u(41, 1)).await;
        assert_eq!(
            total(&copy.account("a".into()).await.unwrap().unwrap()),
            before - 1
        );
        let (_, sessions) = copy
            .modify(
                "a".into(),
                AccountChange::Adjust {
                    kind: UnitKind::TotalOctets,
                    delta: 5,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].session_id, "s1");
        let released = copy.release_client("PCEF".into(), 2_001).await.unwrap();
        assert_eq!(released.sessions_expired, 1);
        assert_eq!(copy.counts().await.unwrap().sessions, 0);
        assert_eq!(
            total(&copy.account("a".into()).await.unwrap().unwrap()),
            before - 1 + 5
        );
        RedbStore::close(&copy).await;
        RedbStore::close(&store).await;
    }

    /// Without `durable` a CCR is answered before its record is written, and the writer
    /// puts it in the log soon after (and on the disk within `checkpoint_interval`), also
    /// when no other request follows: a `kill -9` a moment later keeps it.
    #[tokio::test]
    async fn without_durable_a_ccr_reaches_the_log_soon_after_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let options = RedbOptions {
            max_batch: 8,
            durable: false,
            checkpoint_interval: Duration::from_millis(50),
            fold_interval: Duration::from_secs(3600),
            ..RedbOptions::default()
        };
        let (store, path, options, _) = store_with_account_and(dir.path(), options).await;
        // The account's provisioning reaches the disk with a checkpoint.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cc = |r: CcRequest| ChargingStore::credit_control(&store, r, 1_000);
        assert_eq!(cc(ccr_i()).await.unwrap().answer.result_code, rc::SUCCESS);
        assert_eq!(
            cc(ccr_u(1, 70)).await.unwrap().answer.result_code,
            rc::SUCCESS
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let copy = as_after_a_crash(&path, 0, &options);
        let total = |a: &Account| a.balances[&UnitKind::TotalOctets].total();
        assert_eq!(
            total(&copy.account("a".into()).await.unwrap().unwrap()),
            10_000_000 - 70
        );
        assert_eq!(copy.counts().await.unwrap().sessions, 1);
        RedbStore::close(&copy).await;
        RedbStore::close(&store).await;
    }

    /// Without `durable`, what was committed reaches the disk within `checkpoint_interval`
    /// although no request follows it; with `durable`, so does a lazy write.
    #[tokio::test]
    async fn a_durable_commit_follows_within_the_checkpoint_interval() {
        let dir = tempfile::tempdir().unwrap();
        let interval = Duration::from_millis(150);
        for durable in [false, true] {
            let path = dir.path().join(format!("ocs-{durable}.redb"));
            let policy = Arc::new(Policy::from_config(&Config::demo()));
            let options = RedbOptions {
                max_batch: 8,
                durable,
                checkpoint_interval: interval,
                ..RedbOptions::default()
            };
            let store = RedbStore::open(&path, options.clone(), policy).unwrap();
            let account = Account {
                id: "a".into(),
                ..Account::default()
            };
            let written = Instant::now();
            assert!(store.provision(account).await.unwrap());
            store.put_visited_lazy("v".into(), Arc::new("lazy".to_string()));
            let copy = as_after_a_crash(&path, 0, &options);
            // (Only while the interval has not passed: a busy machine may have slept.)
            if !durable && written.elapsed() < interval / 2 {
                // Not on the disk yet: redb keeps non-durable commits in the process.
                assert!(copy.account("a".into()).await.unwrap().is_none());
            }
            RedbStore::close(&copy).await;
            tokio::time::sleep(interval * 3).await;
            let copy = as_after_a_crash(&path, 1, &options);
            assert!(copy.account("a".into()).await.unwrap().is_some());
            assert_eq!(
                copy.visited_records::<String>().await.unwrap(),
                vec!["lazy".to_string()]
            );
            RedbStore::close(&copy).await;
            RedbStore::close(&store).await;
        }
    }

    /// The visited role's records are journal entries in the log like a CCR's: a durable
    /// write is read back after a crash — before and after folds, the latest write of a
    /// record winning and a removed one staying removed — and a running store lists what
    /// is not folded yet too.
    #[tokio::test]
    async fn visited_records_go_to_the_log_and_are_read_back_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let options = durable_folding_every(5);
        let path = dir.path().join("visited.redb");
        let policy = Arc::new(Policy::from_config(&Config::demo()));
        let store = RedbStore::open(&path, options.clone(), policy).unwrap();
        for round in 0..4u32 {
            for id in ["v1", "v2", "v3"] {
                store
                    .put_visited(id.into(), Arc::new(format!("{id}/{round}")))
                    .await
                    .unwrap();
            }
        }
        // A lazy write is taken before any write made after it: the durable one after it
        // carries it to the disk, and a later write of the same record replaces it.
        store.put_visited_lazy("v3".into(), Arc::new("v3/lazy".to_string()));
        store.put_visited_lazy("v2".into(), Arc::new("v2/lazy".to_string()));
        store.remove_visited("v2".into()).await.unwrap();
        store.put_visited_lazy("v4".into(), Arc::new("v4/lazy".to_string()));
        store
            .put_visited("v4".into(), Arc::new("v4/0".to_string()))
            .await
            .unwrap();
        let expected = vec!["v1/3".to_string(), "v3/lazy".into(), "v4/0".into()];
        assert_eq!(store.visited_records::<String>().await.unwrap(), expected);
        let log = wal_path(&path);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), wal::PREALLOCATED);
        let copy = as_after_a_crash(&path, 0, &options);
        assert_eq!(copy.visited_records::<String>().await.unwrap(), expected);
        RedbStore::close(&copy).await;
        RedbStore::close(&store).await;
        // A clean close folds everything into the table.
        let store = RedbStore::open(
            &path,
            options,
            Arc::new(Policy::from_config(&Config::demo())),
        )
        .unwrap();
        assert_eq!(store.visited_records::<String>().await.unwrap(), expected);
        RedbStore::close(&store).await;
    }

    /// The lease index is not in the file: a session's Tcc still ends after a restart.
    #[tokio::test]
    async fn tcc_is_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path, options, policy) = store_with_account(dir.path()).await;
        let now = 1_000;
        let applied = ChargingStore::credit_control(&store, ccr_i(), now)
            .await
            .unwrap();
        assert_eq!(applied.answer.result_code, rc::SUCCESS);
        RedbStore::close(&store).await;
        drop(store);

        let store = RedbStore::open(&path, options, policy.clone()).unwrap();
        let lease_end = now + policy.tcc_ms;
        let early = store.sweep(lease_end - 1).await.unwrap();
        assert_eq!(early.sessions_expired, 0);
        let report = store.sweep(lease_end + 1).await.unwrap();
        assert_eq!(report.sessions_expired, 1);
        assert_eq!(report.reservations_released, 1);
        let a = store.account("a".into()).await.unwrap().unwrap();
        assert_eq!(a.balances[&UnitKind::TotalOctets].reserved, 0);
        assert!(store.session("s1".into()).await.unwrap().is_none());
        RedbStore::close(&store).await;
    }
}
