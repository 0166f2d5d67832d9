//! Client side of RDMA: the process's device (completion queue, registered buffers, completion
//! thread) and one queue pair per connection to a worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::server::PortEnd;
use super::verbs::{Buffer, BufferPool, Completion, InFlight, QueuePair, RemoteRead, device_names};
use super::{ClientSettings, RdmaError, ReadFailure};
use crate::Transport;
use crate::tcp::TcpTransport;
use crate::wire::{PageLocation, Payload, RdmaConnected, RdmaRegion, Request, Response};

/// Bytes of page data one registered buffer holds (plus room for the generation words).
const BUFFER_DATA: usize = 1 << 20;
/// Most pages one chain of READs covers (two READs each).
const MAX_CHAIN_PAGES: usize = 128;
/// Room for the generation words at the head of a buffer.
const WORDS_BYTES: usize = MAX_CHAIN_PAGES * 8;
/// Send-queue depth of a client's queue pair.
const SEND_DEPTH: u32 = 512;

/// What a completion hands its waiter: the buffer, and whether the chain succeeded.
type Done = (Buffer, Result<(), String>);

/// What rides with a posted buffer: its waiter and the send-queue room it takes.
#[derive(Debug)]
struct Waiter {
    tx: oneshot::Sender<Done>,
    _room: OwnedSemaphorePermit,
}

/// A 24-bit starting packet sequence number, different for every queue pair.
pub(super) fn new_psn(qpn: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (xxhash_rust::xxh3::xxh3_64(format!("{nanos}-{qpn}").as_bytes()) & 0x00ff_ffff) as u32
}

/// This process's RDMA device, shared by every connection of every client in the process: one
/// completion queue, one pool of registered buffers, one completion thread.
#[derive(Debug)]
pub struct ClientDevice {
    end: PortEnd,
    pool: Arc<BufferPool>,
    table: InFlight<Waiter>,
    busy_poll: Duration,
    /// Fence the generation words' READs behind the bytes' (see [`ClientSettings::fence`]).
    fence: bool,
    /// Held while polling the queue (one poller at a time, so completions are handed out once).
    polling: Mutex<()>,
    /// Readers past their spin, waiting for the completion thread.
    sleepers: AtomicUsize,
    next_id: AtomicU64,
}

/// The process's open devices, with the id of the process that opened them. A child forked from
/// the process (a PyTorch `DataLoader` worker) inherits the map but not the completion threads,
/// and must not share the parent's verbs objects: it finds another process id here, leaks the
/// inherited devices (closing them could touch the parent's resources) and opens its own.
static DEVICES: OnceLock<Mutex<(u32, DeviceMap)>> = OnceLock::new();

/// The open devices of a process, by the name asked for (empty: the first usable one).
type DeviceMap = HashMap<String, Arc<ClientDevice>>;

impl ClientDevice {
    /// The process's device as `settings` ask (opened, with its completion thread started, on
    /// first use; shared after).
    ///
    /// # Errors
    /// [`RdmaError::Unavailable`] with the reason (no kernel stack, no device, no active port),
    /// or a registration error (the locked-memory limit).
    pub fn shared(settings: &ClientSettings) -> Result<Arc<ClientDevice>, RdmaError> {
        let key = settings.device.clone().unwrap_or_default();
        let devices = DEVICES.get_or_init(Default::default);
        let mut guard = devices.lock();
        let (pid, devices) = &mut *guard;
        if *pid != std::process::id() {
            std::mem::forget(std::mem::take(devices));
            *pid = std::process::id();
        }
        if let Some(device) = devices.get(&key) {
            return Ok(device.clone());
        }
        let device = Self::open(settings)?;
        let poller = device.clone();
        std::thread::Builder::new()
            .name(format!("hoard-rdma-{}", device.end.context.name()))
            .spawn(move || poller.completion_thread())
            .map_err(|e| RdmaError::Verbs {
                call: "spawn the completion thread",
                source: e,
            })?;
        devices.insert(key, device.clone());
        Ok(device)
    }

    fn open(settings: &ClientSettings) -> Result<Arc<ClientDevice>, RdmaError> {
        let names = device_names()?;
        let candidates: Vec<String> = match &settings.device {
            Some(name) if names.contains(name) => vec![name.clone()],
            Some(name) => {
                return Err(RdmaError::Unavailable(format!(
                    "no RDMA device named `{name}` (there are: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            None => names,
        };
        if candidates.is_empty() {
            return Err(RdmaError::Unavailable("no RDMA device on this host".into()));
        }
        let mut why = Vec::new();
        for name in candidates {
            // Room for a completion of every READ that may be outstanding (a queue pair moved to
            // the error state flushes them all, signalled or not).
            let depth = settings.buffers * 2 * MAX_CHAIN_PAGES + 256;
            let depth = u32::try_from(depth).unwrap_or(u32::MAX);
            let opened = PortEnd::open(&name, settings.gid_index, depth, true).and_then(|end| {
                let pool = BufferPool::new(&end.pd, settings.buffers, WORDS_BYTES + BUFFER_DATA)?;
                Ok(Arc::new(ClientDevice {
                    end,
                    pool,
                    table: InFlight::default(),
                    busy_poll: settings.busy_poll,
                    fence: settings.fence,
                    polling: Mutex::new(()),
                    sleepers: AtomicUsize::new(0),
                    next_id: AtomicU64::new(1),
                }))
            });
            match opened {
                Ok(device) => return Ok(device),
                Err(e @ RdmaError::Register { .. }) => return Err(e),
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        Err(RdmaError::Unavailable(format!(
            "no usable RDMA device ({})",
            why.join("; ")
        )))
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        self.end.context.name()
    }

    /// Poll the queue once and hand out what completed; `block` waits for another poller
    /// instead of leaving it to them. Whether anything completed.
    fn poll(&self, block: bool) -> bool {
        let guard = if block {
            Some(self.polling.lock())
        } else {
            self.polling.try_lock()
        };
        let Some(_guard) = guard else {
            return false;
        };
        let mut done: Vec<Completion<Waiter>> = Vec::new();
        let mut any = false;
        loop {
            match self.end.cq.poll(&self.table, &mut done) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(e) => {
                    tracing::error!(device = self.name(), "polling the RDMA completion queue failed: {e}");
                    break;
                }
            }
        }
        for completion in done {
            if completion.status.is_err() {
                // The queue pair is in error: its other requests are flushed.
                completion.done.queue_pair().fail();
            }
            let (buffer, waiter) = (completion.done.buffer, completion.done.attached);
            // A waiter that gave up (timed out) drops the buffer back into the pool here.
            let _ = waiter.tx.send((buffer, completion.status));
        }
        any
    }

    /// The completion thread: sleeps on the queue's event channel, wakes for readers that
    /// stopped spinning, hands them their completions.
    fn completion_thread(self: Arc<Self>) {
        loop {
            self.end.cq.wait(Duration::from_millis(200));
            self.poll(true);
            if self.sleepers.load(Ordering::Acquire) > 0 {
                if let Err(e) = self.end.cq.arm() {
                    tracing::error!(device = self.name(), "arming the RDMA completion queue failed: {e}");
                }
                self.poll(true);
            }
        }
    }

    /// Wait for a chain's completion: spin on the queue for `busy_poll`, then sleep until the
    /// completion thread hands it over, or `deadline`.
    async fn wait(&self, mut rx: oneshot::Receiver<Done>, deadline: Instant) -> Result<Done, RdmaError> {
        let started = Instant::now();
        let spin_until = started + self.busy_poll;
        loop {
            match rx.try_recv() {
                Ok(done) => return Ok(done),
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(RdmaError::Protocol("a completion was lost".into()));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if Instant::now() >= spin_until {
                break;
            }
            if !self.poll(false) {
                std::hint::spin_loop();
            }
        }
        self.sleepers.fetch_add(1, Ordering::AcqRel);
        // Counted down however this ends (a reader dropped while it sleeps included).
        let _sleeping = Sleeping(&self.sleepers);
        // Armed before the last poll: a completion after that poll raises an event.
        if let Err(e) = self.end.cq.arm() {
            tracing::error!(device = self.name(), "arming the RDMA completion queue failed: {e}");
        }
        self.poll(true);
        match tokio::time::timeout_at(deadline.into(), &mut rx).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(_)) => Err(RdmaError::Protocol("a completion was lost".into())),
            Err(_) => Err(RdmaError::Timeout(started.elapsed())),
        }
    }
}

/// A reader sleeping until its completion is handed over.
struct Sleeping<'a>(&'a AtomicUsize);

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A queue pair connected to one worker, tied to a TCP connection to it.
#[derive(Debug)]
pub struct RdmaLink {
    device: Arc<ClientDevice>,
    qp: Arc<QueuePair>,
    regions: HashMap<u32, RdmaRegion>,
    worker_device: String,
    /// Send-queue room (two READs per page).
    room: Arc<Semaphore>,
    failed: AtomicBool,
}

impl Drop for RdmaLink {
    fn drop(&mut self) {
        // Outstanding READs (of readers that gave up) complete with a flush error, returning
        // their buffers; the queue pair goes when the last of them has.
        self.qp.fail();
    }
}

/// One page of a read: where it is, and which of its bytes are wanted.
struct Part<'a> {
    at: &'a PageLocation,
    from: u64,
    to: u64,
}

impl RdmaLink {
    /// Set up a queue pair with the worker at the other end of `tcp` (which offered RDMA in its
    /// handshake).
    ///
    /// # Errors
    /// Verbs errors, the worker refusing (its reply as [`RdmaError::Protocol`]), or the
    /// connection failing.
    pub async fn connect(tcp: &TcpTransport, device: &Arc<ClientDevice>) -> Result<RdmaLink, RdmaError> {
        let end = &device.end;
        let qp = QueuePair::create(&end.pd, &end.cq, SEND_DEPTH, end.port.port, false)?;
        let psn = new_psn(qp.qpn());
        let ours = end.endpoint(&qp, psn);
        let reply = tcp
            .call(Request::RdmaConnect(ours), Payload::default())
            .await
            .map_err(|e| RdmaError::Protocol(format!("asking for a queue pair: {e}")))?;
        let RdmaConnected {
            device: worker_device,
            endpoint,
            regions,
        } = match reply.message {
            Response::RdmaConnected(c) => c,
            Response::Error(e) => return Err(RdmaError::Protocol(format!("the worker refused: {}", e.message))),
            other => return Err(RdmaError::Protocol(format!("unexpected answer {:?}", other.kind()))),
        };
        end.connect(&qp, &endpoint, psn)?;
        Ok(RdmaLink {
            device: device.clone(),
            qp,
            regions: regions.into_iter().map(|r| (r.id, r)).collect(),
            worker_device,
            room: Arc::new(Semaphore::new(SEND_DEPTH as usize)),
            failed: AtomicBool::new(false),
        })
    }

    /// The worker's device this link reads from.
    pub fn worker_device(&self) -> &str {
        &self.worker_device
    }

    /// Whether the queue pair failed (reads go another way from then on).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn fail(&self, e: RdmaError) -> ReadFailure {
        if !self.failed.swap(true, Ordering::AcqRel) {
            self.qp.fail();
        }
        ReadFailure::Failed(e)
    }

    /// Append bytes `range` of a file to `buf`, read with one-sided READs from
    /// the pages at `pages` (in order, covering the range) of a worker paging by `page_size`;
    /// with `verify`, the CRC32C of every page read whole is checked too. On an error `buf` is
    /// as it was.
    ///
    /// # Errors
    /// [`ReadFailure::Stale`] naming the first page that was no longer there (or whose location
    /// names no registered region); [`ReadFailure::Failed`] when the queue pair failed or the
    /// reads did not complete by `deadline` (the link is failed then).
    pub async fn read(
        &self,
        pages: &[PageLocation],
        page_size: u64,
        range: std::ops::Range<u64>,
        buf: &mut BytesMut,
        deadline: Instant,
        verify: bool,
    ) -> Result<(), ReadFailure> {
        if self.is_failed() {
            return Err(ReadFailure::Failed(RdmaError::Completion(
                "the queue pair failed earlier".into(),
            )));
        }
        let (offset, end) = (range.start, range.end);
        let mut parts = Vec::with_capacity(pages.len());
        for at in pages {
            let page_start = at.index * page_size;
            let from = offset.max(page_start) - page_start;
            let to = end.min(page_start + page_size) - page_start;
            if to <= from || at.len < to || self.remote(at).is_none() {
                return Err(ReadFailure::Stale(at.index));
            }
            parts.push(Part { at, from, to });
        }
        if let Some(big) = parts.iter().find(|p| (p.to - p.from) as usize > BUFFER_DATA) {
            return Err(ReadFailure::Elsewhere(format!(
                "{} bytes of page {} do not fit one {BUFFER_DATA}-byte RDMA buffer",
                big.to - big.from,
                big.at.index
            )));
        }
        // Chains of at most MAX_CHAIN_PAGES pages and BUFFER_DATA bytes.
        let mut chains: Vec<&[Part<'_>]> = Vec::new();
        let mut rest = &parts[..];
        while !rest.is_empty() {
            let mut n = 0;
            let mut bytes = 0;
            while n < rest.len() && n < MAX_CHAIN_PAGES {
                let size = (rest[n].to - rest[n].from) as usize;
                if n > 0 && bytes + size > BUFFER_DATA {
                    break;
                }
                bytes += size;
                n += 1;
            }
            let (chain, tail) = rest.split_at(n);
            chains.push(chain);
            rest = tail;
        }
        // In batches of as many chains as the pool has buffers, each batch's buffers taken at
        // once, all its chains posted before any is waited for.
        let start = buf.len();
        let outcome = self.read_chains(&chains, buf, deadline, verify).await;
        if outcome.is_err() {
            buf.truncate(start);
        }
        outcome
    }

    async fn read_chains(
        &self,
        chains: &[&[Part<'_>]],
        buf: &mut BytesMut,
        deadline: Instant,
        verify: bool,
    ) -> Result<(), ReadFailure> {
        for batch in chains.chunks(self.device.pool.count()) {
            let get = self.device.pool.get_many(batch.len());
            let Ok(buffers) = tokio::time::timeout_at(deadline.into(), get).await else {
                return Err(ReadFailure::Elsewhere("no free RDMA buffer in time".into()));
            };
            let mut waiting = Vec::with_capacity(batch.len());
            for (chain, buffer) in batch.iter().zip(buffers) {
                waiting.push(self.post(chain, buffer).await?);
            }
            let mut outcome = Ok(());
            for (chain, rx) in batch.iter().zip(waiting) {
                let done = self.device.wait(rx, deadline).await;
                if outcome.is_err() {
                    continue;
                }
                outcome = match done {
                    Err(e) => Err(self.fail(e)),
                    Ok((_, Err(status))) => Err(self.fail(RdmaError::Completion(status))),
                    Ok((buffer, Ok(()))) => check_and_append(chain, buffer.bytes(), buf, verify),
                };
            }
            outcome?;
        }
        Ok(())
    }

    /// Post one chain into `buffer`: the READs of the pages' wanted bytes and of their generation
    /// words, each word after its page's bytes; with `fence`, all the bytes first and the words
    /// fenced behind them.
    async fn post(&self, chain: &[Part<'_>], buffer: Buffer) -> Result<oneshot::Receiver<Done>, ReadFailure> {
        let room = self
            .room
            .clone()
            .acquire_many_owned((chain.len() * 2) as u32)
            .await
            .expect("never closed");
        let mut data = Vec::with_capacity(chain.len());
        let mut words = Vec::with_capacity(chain.len());
        let mut data_at = WORDS_BYTES;
        for (i, part) in chain.iter().enumerate() {
            let (region, word) = self.remote(part.at).expect("checked in `read`");
            let n = (part.to - part.from) as usize;
            data.push(RemoteRead {
                local_offset: data_at,
                len: n as u32,
                remote_addr: region.addr + part.at.offset + part.from,
                rkey: region.rkey,
                fence: false,
            });
            words.push(RemoteRead {
                local_offset: i * 8,
                len: 8,
                remote_addr: word.0,
                rkey: word.1,
                fence: self.device.fence && i == 0,
            });
            data_at += n;
        }
        let reads: Vec<RemoteRead> = if self.device.fence {
            data.into_iter().chain(words).collect()
        } else {
            data.into_iter().zip(words).flat_map(|(d, w)| [d, w]).collect()
        };
        let wr_id = self.device.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter { tx, _room: room };
        self.qp
            .post_reads(buffer, &reads, wr_id, waiter, &self.device.table)
            .map_err(|(_, e)| self.fail(e))?;
        Ok(rx)
    }

    /// The region a location names and its generation word (address, key), if the location
    /// lies inside a registered region that has generation words.
    fn remote(&self, at: &PageLocation) -> Option<(&RdmaRegion, (u64, u32))> {
        let region = self.regions.get(&at.region)?;
        let words = region.generations?;
        let end = at.offset.checked_add(at.len)?;
        if end > region.len || words.min_block == 0 {
            return None;
        }
        let word = (at.offset / words.min_block).checked_mul(8)?;
        if word + 8 > words.len {
            return None;
        }
        Some((region, (words.addr + word, words.rkey)))
    }
}

/// Check each page of a completed chain (its generation word, and with `verify` its CRC32C when
/// the whole page was read) and append the bytes to `buf`.
fn check_and_append(chain: &[Part<'_>], bytes: &[u8], buf: &mut BytesMut, verify: bool) -> Result<(), ReadFailure> {
    let mut data_at = WORDS_BYTES;
    for (i, part) in chain.iter().enumerate() {
        let word: [u8; 8] = bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes");
        let n = (part.to - part.from) as usize;
        let data = &bytes[data_at..data_at + n];
        let whole = verify && part.from == 0 && part.to == part.at.len;
        if u64::from_ne_bytes(word) != part.at.generation || (whole && crc32c::crc32c(data) != part.at.crc32c) {
            return Err(ReadFailure::Stale(part.at.index));
        }
        buf.extend_from_slice(data);
        data_at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: u64, generation: u64, page: &[u8]) -> PageLocation {
        PageLocation {
            index,
            region: 0,
            offset: index * 8192,
            len: page.len() as u64,
            generation,
            crc32c: crc32c::crc32c(page),
        }
    }

    /// A completed chain's buffer: the generation words, then the pages' bytes.
    fn landed(words: &[u64], parts: &[&[u8]]) -> Vec<u8> {
        let mut buffer = vec![0u8; WORDS_BYTES];
        for (i, w) in words.iter().enumerate() {
            buffer[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
        }
        for p in parts {
            buffer.extend_from_slice(p);
        }
        buffer
    }

    #[test]
    fn a_page_is_returned_only_with_its_generation_and_when_read_whole_its_crc() {
        let (a, b) = (vec![1u8; 8192], vec![2u8; 5000]);
        let (la, lb) = (at(0, 4, &a), at(1, 6, &b));
        let chain = [
            Part {
                at: &la,
                from: 0,
                to: 8192,
            },
            Part {
                at: &lb,
                from: 100,
                to: 300,
            },
        ];
        let mut buf = BytesMut::new();
        let bytes = landed(&[4, 6], &[&a, &b[100..300]]);
        assert!(check_and_append(&chain, &bytes, &mut buf, true).is_ok());
        assert_eq!(buf.len(), 8192 + 200);
        assert!(buf[..8192] == a[..] && buf[8192..] == b[100..300]);

        // The second page's slot was given back meanwhile: its word moved on.
        let bytes = landed(&[4, 7], &[&a, &b[100..300]]);
        let got = check_and_append(&chain, &bytes, &mut BytesMut::new(), true);
        assert!(matches!(got, Err(ReadFailure::Stale(1))), "{got:?}");

        // A whole page whose bytes are not the located page's (torn, or another page) fails its
        // CRC even with the right word, unless checksums are off.
        let mut torn = a.clone();
        torn[5000] ^= 0xff;
        let bytes = landed(&[4, 6], &[&torn, &b[100..300]]);
        let got = check_and_append(&chain, &bytes, &mut BytesMut::new(), true);
        assert!(matches!(got, Err(ReadFailure::Stale(0))), "{got:?}");
        assert!(check_and_append(&chain, &bytes, &mut BytesMut::new(), false).is_ok());
    }
}
