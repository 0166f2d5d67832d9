//! The latency phase of `hoard-bench read`: every kind of 4 KiB operation, warmed up (with the
//! bytes checked), then timed in alternating rounds.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::cli::{IO_BYTES, ReadPlan};
use crate::hoard_side::{HoardFixture, WireReader};
use crate::latency::{LatencyRecorder, LatencySummary, Subject, warm_up};
use crate::memcached::{self, Memcached};
use crate::procs::ProcStats;

/// The latencies of one run.
#[derive(Debug)]
pub struct Latencies {
    /// hoard, `OpenFile::read` over TCP.
    pub read: LatencySummary,
    /// hoard, `OpenFile::read` over shared memory.
    pub shm_read: LatencySummary,
    /// hoard, `Client::read` (stat + read).
    pub client_read: LatencySummary,
    /// hoard, `Client::stat`.
    pub stat: LatencySummary,
    /// hoard, a read request on a bare wire connection.
    pub wire: LatencySummary,
    /// memcached GET.
    pub memcached: LatencySummary,
    /// Rounds cut short by the time limit.
    pub truncated_rounds: u32,
}

/// The kinds of operation, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenFileRead,
    ShmRead,
    MemcachedGet,
    ClientRead,
    Stat,
    WireRead,
}

const KINDS: [Kind; 6] = [
    Kind::OpenFileRead,
    Kind::ShmRead,
    Kind::MemcachedGet,
    Kind::ClientRead,
    Kind::Stat,
    Kind::WireRead,
];

/// Everything the operations need; `kind` picks the operation, `check` compares the bytes.
struct Ops<'a> {
    kind: Kind,
    check: bool,
    hoard: &'a HoardFixture,
    wire: &'a WireReader,
    mc: &'a mut Memcached,
    offsets: &'a [u64],
    keys: &'a [u64],
}

impl Subject for Ops<'_> {
    async fn op(&mut self, i: u64) -> anyhow::Result<()> {
        let (offset, key) = (self.offsets[i as usize], self.keys[i as usize]);
        match (self.kind, self.check) {
            (Kind::OpenFileRead, false) => self.hoard.read_4k(offset).await,
            (Kind::OpenFileRead, true) => self.hoard.read_4k_checked(offset).await,
            (Kind::ShmRead, check) => self.hoard.read_4k_shm(offset, check).await,
            (Kind::MemcachedGet, false) => self.mc.client.get(key).await.map(|_| ()),
            (Kind::MemcachedGet, true) => self.mc.get_checked(key).await,
            (Kind::ClientRead, _) => self.hoard.read_4k_with_stat(offset).await,
            (Kind::Stat, _) => self.hoard.stat().await,
            (Kind::WireRead, _) => self.wire.read_4k(offset).await,
        }
    }
}

/// Warm up every kind (checking bytes where the kind can), then time `plan.ops` operations of
/// each kind in `plan.rounds` alternating rounds.
///
/// # Errors
/// The first failing operation, or one stuck past the time limit.
pub async fn latency_phase(plan: &ReadPlan, hoard: &HoardFixture, mc: &mut Memcached) -> anyhow::Result<Latencies> {
    let total = plan.warmup_ops + plan.ops;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6c_6174);
    let offsets: Vec<u64> = (0..total)
        .map(|_| rng.random_range(0..plan.size_bytes / IO_BYTES) * IO_BYTES)
        .collect();
    let keys: Vec<u64> = (0..total).map(|_| rng.random_range(0..memcached::KEYS)).collect();
    let wire = hoard.wire_reader().await?;
    let mut ops = Ops {
        kind: Kind::OpenFileRead,
        check: true,
        hoard,
        wire: &wire,
        mc,
        offsets: &offsets,
        keys: &keys,
    };
    for kind in KINDS {
        ops.kind = kind;
        warm_up(&mut ops, plan.warmup_ops, plan.time_limit).await?;
    }
    ops.check = false;
    let mut recorders: [LatencyRecorder; KINDS.len()] = std::array::from_fn(|_| LatencyRecorder::new());
    let deadline = Instant::now() + plan.time_limit;
    let per_round = plan.ops.div_ceil(u64::from(plan.rounds));
    let mut first = plan.warmup_ops;
    while first < total && Instant::now() < deadline {
        let n = per_round.min(total - first);
        for (kind, recorder) in KINDS.iter().zip(&mut recorders) {
            ops.kind = *kind;
            let server = if *kind == Kind::MemcachedGet {
                ops.mc.pid()
            } else {
                hoard.worker_pid()
            };
            let before = (ProcStats::of(std::process::id()), ProcStats::of(server));
            recorder.run(&mut ops, first, n, deadline).await?;
            let (client_now, server_now) = (ProcStats::of(std::process::id()), ProcStats::of(server));
            recorder.add_proc_stats(client_now.since(before.0), server_now.since(before.1));
        }
        first += n;
    }
    let truncated_rounds = recorders.iter().map(|r| r.truncated_rounds).sum();
    if truncated_rounds > 0 || first < total {
        eprintln!("hoard-bench: warning: the latency phase reached its time limit and stopped early");
    }
    let summary =
        |kind: Kind| recorders[KINDS.iter().position(|k| *k == kind).expect("every kind is listed")].summary();
    Ok(Latencies {
        read: summary(Kind::OpenFileRead)?,
        shm_read: summary(Kind::ShmRead)?,
        client_read: summary(Kind::ClientRead)?,
        stat: summary(Kind::Stat)?,
        wire: summary(Kind::WireRead)?,
        memcached: summary(Kind::MemcachedGet)?,
        truncated_rounds,
    })
}
