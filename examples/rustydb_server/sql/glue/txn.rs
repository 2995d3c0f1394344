//! Transactions: one writer at a time, and an undo log of row changes.
//!
//! The [`Gate`] gives writing to one owner at a time — a server transaction
//! from its first write to `commit`/`rollback`, or a single autocommit
//! statement; whoever waits longer than the gate's timeout gets a conflict.
//! Readers do not take it (they read snapshots, see `mod.rs`).
//! Changes go to the pages in place; each is logged with its inverse
//! ([`Undo`]) and rollback applies the inverses newest first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use gluesql_core::data::{Key, Value};

use crate::server::sql::glue::catalog::TableMeta;

/// Who holds the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A server transaction.
    Txn(u64),
    /// One autocommit statement (a per-call ticket).
    Statement(u64),
}

/// The database's single-owner lock, held across calls (a transaction
/// begins on one thread and commits on another, so this is not a guard).
#[derive(Debug)]
pub struct Gate {
    owner: Mutex<(Option<Owner>, u64)>,
    freed: Condvar,
    timeout: Duration,
    waiting: AtomicU64,
    waits: AtomicU64,
    timeouts: AtomicU64,
}

/// The gate's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Whether someone holds it.
    pub held: bool,
    /// Waiting now.
    pub waiting: u64,
    /// Acquisitions that had to wait, since start.
    pub waits: u64,
    /// Waits that gave up.
    pub timeouts: u64,
}

impl Gate {
    /// A free gate; waiters give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            owner: Mutex::new((None, 0)),
            freed: Condvar::new(),
            timeout,
            waiting: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    /// Its figures.
    pub fn stats(&self) -> GateStats {
        GateStats {
            held: self
                .owner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .is_some(),
            waiting: self.waiting.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }

    /// A fresh statement ticket.
    pub fn ticket(&self) -> Owner {
        let mut g = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        Owner::Statement(g.1)
    }

    /// Waits until the gate is free (or already `who`'s) and takes it.
    pub fn acquire(&self, who: Owner) -> Result<(), String> {
        let mut g = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        match g.0 {
            None => {
                g.0 = Some(who);
                return Ok(());
            }
            Some(o) if o == who => return Ok(()),
            Some(_) => {}
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.timeout;
        let r = loop {
            match g.0 {
                None => {
                    g.0 = Some(who);
                    break Ok(());
                }
                Some(o) if o == who => break Ok(()),
                Some(o) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.timeouts.fetch_add(1, Ordering::Relaxed);
                        let holder = match o {
                            Owner::Txn(id) => format!("transaction {id}"),
                            Owner::Statement(_) => "another statement".to_string(),
                        };
                        break Err(format!(
                            "the database is held by {holder} (one writer at a time); gave up after {:?}",
                            self.timeout
                        ));
                    }
                    g = self
                        .freed
                        .wait_timeout(g, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        r
    }

    /// Whether `who` holds the gate.
    pub fn holds(&self, who: Owner) -> bool {
        self.owner.lock().unwrap_or_else(|e| e.into_inner()).0 == Some(who)
    }

    /// Releases the gate if `who` holds it.
    pub fn release(&self, who: Owner) {
        let mut g = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == Some(who) {
            g.0 = None;
            self.freed.notify_all();
        }
    }
}

/// The inverse of one change.
#[derive(Debug)]
pub enum Undo {
    /// A row was added: delete it.
    Inserted {
        /// Table.
        table: String,
        /// Row key.
        key: Key,
    },
    /// A row was replaced or deleted: put the old one back.
    Restore {
        /// Table.
        table: String,
        /// Row key.
        key: Key,
        /// The old values.
        old: Vec<Value>,
    },
    /// A table was created: drop it (its pages are freed).
    Created {
        /// Table.
        table: String,
    },
    /// A table's schema was replaced (ALTER TABLE): put the old one back.
    Schema {
        /// Table.
        table: String,
        /// The old schema.
        old: Box<gluesql_core::data::Schema>,
    },
    /// A table was dropped: bring it back (its pages are kept until commit).
    Dropped {
        /// Table.
        table: String,
        /// What the catalog had.
        meta: TableMeta,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_at_a_time() {
        let g = Gate::new(Duration::from_millis(50));
        let a = g.ticket();
        let t = Owner::Txn(7);
        g.acquire(a).unwrap();
        g.acquire(a).unwrap(); // re-entrant for its owner
        let err = g.acquire(t).unwrap_err();
        assert!(err.contains("another statement"), "{err}");
        g.release(t); // not the owner: no effect
        assert!(g.holds(a));
        g.release(a);
        g.acquire(t).unwrap();
        assert!(g.acquire(g.ticket()).unwrap_err().contains("transaction 7"));
        g.release(t);
        assert!(!g.holds(t));
    }
}
