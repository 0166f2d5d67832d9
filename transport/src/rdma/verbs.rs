//! The verbs calls (libibverbs through `rdma-sys`): the only `unsafe` code of the RDMA transport.
//!
//! Every raw object has an owner type that frees it on drop, and owners hold `Arc`s of what they
//! were made from (a queue pair holds its protection domain and completion queue, a memory
//! region the memory it covers), so nothing is freed while something made from it lives.
//!
//! The contract that matters most: **a buffer posted to the device belongs to the device until
//! the completion of its work request is polled.** [`QueuePair::post_reads`] takes the
//! [`Buffer`] by value and parks it in the [`InFlight`] table; only [`CompletionQueue::poll`]
//! takes it out again, with the completion. No safe code can reach the bytes in between.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::time::Duration;

use memmap2::MmapRaw;
use parking_lot::Mutex;
use rdma_sys::*;

use super::RdmaError;
use crate::region::StableMemory;

/// The errno of the last failed call, as an [`RdmaError`] naming the call.
fn last_error(call: &'static str) -> RdmaError {
    RdmaError::Verbs {
        call,
        source: io::Error::last_os_error(),
    }
}

/// A verbs call's non-zero return (an errno value, as libibverbs returns them).
fn check(call: &'static str, rc: i32) -> Result<(), RdmaError> {
    if rc == 0 {
        return Ok(());
    }
    let errno = if rc > 0 {
        rc
    } else {
        io::Error::last_os_error().raw_os_error().unwrap_or(-rc)
    };
    Err(RdmaError::Verbs {
        call,
        source: io::Error::from_raw_os_error(errno),
    })
}

/// The names of the RDMA devices of this host.
///
/// # Errors
/// [`RdmaError::Unavailable`] when the kernel has no RDMA stack (`ENOSYS`) or the device list
/// cannot be read.
pub(crate) fn device_names() -> Result<Vec<String>, RdmaError> {
    let mut count = 0i32;
    // SAFETY: `count` is a valid out-pointer; the list is freed below.
    let list = unsafe { ibv_get_device_list(&mut count) };
    if list.is_null() {
        let e = io::Error::last_os_error();
        let why = if e.raw_os_error() == Some(libc::ENOSYS) {
            "the kernel has no RDMA stack (ibv_get_device_list: ENOSYS)".to_owned()
        } else {
            format!("ibv_get_device_list failed: {e}")
        };
        return Err(RdmaError::Unavailable(why));
    }
    let mut names = Vec::with_capacity(count.max(0) as usize);
    for i in 0..count.max(0) as usize {
        // SAFETY: the list holds `count` valid device pointers; the name is a NUL-terminated
        // string owned by the device, copied out before the list is freed.
        let name = unsafe { CStr::from_ptr(ibv_get_device_name(*list.add(i))) };
        names.push(name.to_string_lossy().into_owned());
    }
    // SAFETY: `list` came from ibv_get_device_list and is freed once.
    unsafe { ibv_free_device_list(list) };
    Ok(names)
}

/// An open RDMA device.
pub(crate) struct Context {
    raw: NonNull<ibv_context>,
    name: String,
}

// SAFETY: libibverbs contexts may be used from any thread (the library locks internally).
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("name", &self.name).finish()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed once; everything made from it holds an `Arc` of it.
        unsafe { ibv_close_device(self.raw.as_ptr()) };
    }
}

/// What a port says about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PortInfo {
    /// `IBV_PORT_ACTIVE`.
    pub active: bool,
    /// Its LID (0 on RoCE).
    pub lid: u16,
    /// Active MTU in bytes.
    pub mtu: u32,
    /// Entries of its GID table.
    pub gids: u32,
}

impl Context {
    /// Open the device named `name`.
    pub(crate) fn open(name: &str) -> Result<Arc<Context>, RdmaError> {
        let mut count = 0i32;
        // SAFETY: as in `device_names`.
        let list = unsafe { ibv_get_device_list(&mut count) };
        if list.is_null() {
            return Err(last_error("ibv_get_device_list"));
        }
        let mut opened = None;
        for i in 0..count.max(0) as usize {
            // SAFETY: the list holds `count` valid device pointers.
            let device = unsafe { *list.add(i) };
            // SAFETY: a valid device's name, NUL-terminated.
            let this = unsafe { CStr::from_ptr(ibv_get_device_name(device)) };
            if this.to_string_lossy() == name {
                // SAFETY: a valid device of the list (still allocated); the context outlives the
                // list by design of libibverbs.
                opened = Some(unsafe { ibv_open_device(device) });
                break;
            }
        }
        let open_error = io::Error::last_os_error();
        // SAFETY: freed once, after the last use of its devices.
        unsafe { ibv_free_device_list(list) };
        match opened {
            None => Err(RdmaError::Unavailable(format!("no RDMA device named `{name}`"))),
            Some(raw) => NonNull::new(raw)
                .map(|raw| {
                    Arc::new(Context {
                        raw,
                        name: name.to_owned(),
                    })
                })
                .ok_or(RdmaError::Verbs {
                    call: "ibv_open_device",
                    source: open_error,
                }),
        }
    }

    /// The device's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Port `port`'s state.
    pub(crate) fn port(&self, port: u8) -> Result<PortInfo, RdmaError> {
        // SAFETY: a zeroed `ibv_port_attr` is a valid out-buffer (plain integers).
        let mut attr: ibv_port_attr = unsafe { std::mem::zeroed() };
        // SAFETY: a valid context and out-pointer.
        let rc = unsafe { ___ibv_query_port(self.raw.as_ptr(), port, &mut attr) };
        check("ibv_query_port", rc)?;
        Ok(PortInfo {
            active: attr.state == ibv_port_state::IBV_PORT_ACTIVE,
            lid: attr.lid,
            mtu: mtu_bytes(attr.active_mtu),
            gids: u32::try_from(attr.gid_tbl_len).unwrap_or(0),
        })
    }

    /// Entry `index` of port `port`'s GID table.
    pub(crate) fn gid(&self, port: u8, index: u32) -> Result<[u8; 16], RdmaError> {
        let index = i32::try_from(index).map_err(|_| RdmaError::Unavailable(format!("GID index {index}")))?;
        // SAFETY: a zeroed GID is a valid out-buffer.
        let mut gid: ibv_gid = unsafe { std::mem::zeroed() };
        // SAFETY: a valid context and out-pointer.
        let rc = unsafe { ibv_query_gid(self.raw.as_ptr(), port, index, &mut gid) };
        check("ibv_query_gid", rc)?;
        // SAFETY: every bit pattern of the union is a valid `[u8; 16]`.
        Ok(unsafe { gid.raw })
    }

    /// A new protection domain.
    pub(crate) fn protection_domain(self: &Arc<Self>) -> Result<Arc<ProtectionDomain>, RdmaError> {
        // SAFETY: a valid context.
        let raw = unsafe { ibv_alloc_pd(self.raw.as_ptr()) };
        let raw = NonNull::new(raw).ok_or_else(|| last_error("ibv_alloc_pd"))?;
        Ok(Arc::new(ProtectionDomain {
            raw,
            context: self.clone(),
        }))
    }

    /// A completion queue of `depth` entries, with an event channel when `events` (to sleep on
    /// instead of polling).
    pub(crate) fn completion_queue(
        self: &Arc<Self>,
        depth: u32,
        events: bool,
    ) -> Result<Arc<CompletionQueue>, RdmaError> {
        let channel = if events {
            // SAFETY: a valid context.
            let raw = unsafe { ibv_create_comp_channel(self.raw.as_ptr()) };
            let raw = NonNull::new(raw).ok_or_else(|| last_error("ibv_create_comp_channel"))?;
            // SAFETY: the channel's fd is open while the channel lives; O_NONBLOCK only changes how
            // `ibv_get_cq_event` waits (we wait with poll(2) first).
            let fd = unsafe { (*raw.as_ptr()).fd };
            // SAFETY: as above.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            // SAFETY: as above.
            unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) };
            Some(Channel(raw))
        } else {
            None
        };
        let depth = i32::try_from(depth).unwrap_or(i32::MAX);
        let channel_ptr = channel.as_ref().map_or(ptr::null_mut(), |c| c.0.as_ptr());
        // SAFETY: a valid context; the channel (if any) outlives the queue (dropped after it).
        let raw = unsafe { ibv_create_cq(self.raw.as_ptr(), depth, ptr::null_mut(), channel_ptr, 0) };
        let raw = NonNull::new(raw).ok_or_else(|| last_error("ibv_create_cq"))?;
        Ok(Arc::new(CompletionQueue {
            raw,
            channel,
            _context: self.clone(),
        }))
    }
}

/// Bytes of an `ibv_mtu` value.
fn mtu_bytes(mtu: ibv_mtu::Type) -> u32 {
    match mtu {
        ibv_mtu::IBV_MTU_256 => 256,
        ibv_mtu::IBV_MTU_512 => 512,
        ibv_mtu::IBV_MTU_1024 => 1024,
        ibv_mtu::IBV_MTU_2048 => 2048,
        _ => 4096,
    }
}

/// The `ibv_mtu` value of `bytes` (rounded down to one the verbs know).
fn mtu_value(bytes: u32) -> ibv_mtu::Type {
    match bytes {
        0..512 => ibv_mtu::IBV_MTU_256,
        512..1024 => ibv_mtu::IBV_MTU_512,
        1024..2048 => ibv_mtu::IBV_MTU_1024,
        2048..4096 => ibv_mtu::IBV_MTU_2048,
        _ => ibv_mtu::IBV_MTU_4096,
    }
}

/// A protection domain: memory regions and queue pairs of one domain may work together.
pub(crate) struct ProtectionDomain {
    raw: NonNull<ibv_pd>,
    context: Arc<Context>,
}

// SAFETY: verbs objects may be used from any thread.
unsafe impl Send for ProtectionDomain {}
// SAFETY: as above.
unsafe impl Sync for ProtectionDomain {}

impl fmt::Debug for ProtectionDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectionDomain")
            .field("device", &self.context.name)
            .finish()
    }
}

impl Drop for ProtectionDomain {
    fn drop(&mut self) {
        // SAFETY: allocated in `protection_domain`, freed once; regions and queue pairs of the
        // domain hold an `Arc` of it, so none is left.
        unsafe { ibv_dealloc_pd(self.raw.as_ptr()) };
    }
}

/// What the device may do with a registered region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Remote peers may read it (a worker's regions).
    RemoteRead,
    /// The local device may write it (where READs land).
    LocalWrite,
}

impl ProtectionDomain {
    /// Register `memory` with the device. The region holds `memory` until it is dropped.
    ///
    /// # Errors
    /// `ibv_reg_mr`'s errno; `ENOMEM`/`EPERM` mostly mean the locked-memory limit is too low
    /// ([`RdmaError::Register`] says so).
    pub(crate) fn register(
        self: &Arc<Self>,
        memory: Arc<dyn StableMemory>,
        access: Access,
    ) -> Result<MemoryRegion, RdmaError> {
        let (ptr, len) = memory.memory();
        let flags = match access {
            Access::RemoteRead => ibv_access_flags::IBV_ACCESS_REMOTE_READ,
            Access::LocalWrite => ibv_access_flags::IBV_ACCESS_LOCAL_WRITE,
        };
        // SAFETY: `memory` promises the range stays mapped while it lives, and the region keeps it
        // alive (it is deregistered in `drop` before `memory` is released).
        let raw = unsafe { ibv_reg_mr(self.raw.as_ptr(), ptr.as_ptr().cast(), len, flags.0 as i32) };
        let raw = NonNull::new(raw).ok_or_else(|| RdmaError::Register {
            bytes: len as u64,
            source: io::Error::last_os_error(),
        })?;
        Ok(MemoryRegion {
            raw,
            addr: ptr.as_ptr() as u64,
            len: len as u64,
            _memory: memory,
            _pd: self.clone(),
        })
    }
}

/// Registered memory.
pub(crate) struct MemoryRegion {
    raw: NonNull<ibv_mr>,
    addr: u64,
    len: u64,
    _memory: Arc<dyn StableMemory>,
    _pd: Arc<ProtectionDomain>,
}

// SAFETY: verbs objects may be used from any thread.
unsafe impl Send for MemoryRegion {}
// SAFETY: as above.
unsafe impl Sync for MemoryRegion {}

impl fmt::Debug for MemoryRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRegion")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for MemoryRegion {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, deregistered once, before `_memory` is released.
        unsafe { ibv_dereg_mr(self.raw.as_ptr()) };
    }
}

impl MemoryRegion {
    /// Start address.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The key remote READs name it by.
    pub(crate) fn rkey(&self) -> u32 {
        // SAFETY: a valid region; `rkey` is a plain field set at registration.
        unsafe { (*self.raw.as_ptr()).rkey }
    }

    /// The key local work requests name it by.
    pub(crate) fn lkey(&self) -> u32 {
        // SAFETY: as for `rkey`.
        unsafe { (*self.raw.as_ptr()).lkey }
    }
}

/// A completion channel (the file descriptor a completion queue signals).
struct Channel(NonNull<ibv_comp_channel>);

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: created in `completion_queue`, destroyed once, after its queue.
        unsafe { ibv_destroy_comp_channel(self.0.as_ptr()) };
    }
}

/// A completion queue.
pub(crate) struct CompletionQueue {
    raw: NonNull<ibv_cq>,
    // Dropped after the queue (fields drop in order... the queue is destroyed in `drop` first).
    channel: Option<Channel>,
    _context: Arc<Context>,
}

// SAFETY: verbs objects may be used from any thread; polling is serialised by callers.
unsafe impl Send for CompletionQueue {}
// SAFETY: as above.
unsafe impl Sync for CompletionQueue {}

impl fmt::Debug for CompletionQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("events", &self.channel.is_some())
            .finish()
    }
}

impl Drop for CompletionQueue {
    fn drop(&mut self) {
        // SAFETY: created in `completion_queue`, destroyed once; queue pairs using it hold an
        // `Arc` of it. Its channel is destroyed after it (field drop, after this body).
        unsafe { ibv_destroy_cq(self.raw.as_ptr()) };
    }
}

/// One polled completion: its request's buffer, and whether it succeeded.
#[derive(Debug)]
pub(crate) struct Completion<T> {
    /// The buffer it was posted with, back in the caller's hands, and what was attached to it.
    pub done: Posted<T>,
    /// `Err` with the status's description when it failed.
    pub status: Result<(), String>,
}

impl CompletionQueue {
    /// Poll up to 16 completions, taking the buffers of their requests out of `table`
    /// (completions whose request is no longer there, for a chain that already completed, are
    /// dropped). Returns how many completions were polled.
    pub(crate) fn poll<T>(&self, table: &InFlight<T>, out: &mut Vec<Completion<T>>) -> Result<usize, RdmaError> {
        // SAFETY: a zeroed `ibv_wc` is valid (plain integers); the array is the out-buffer.
        let mut wcs: [ibv_wc; 16] = unsafe { std::mem::zeroed() };
        // SAFETY: a valid queue; `wcs` has room for 16 entries.
        let n = unsafe { ibv_poll_cq(self.raw.as_ptr(), wcs.len() as i32, wcs.as_mut_ptr()) };
        if n < 0 {
            return Err(RdmaError::Verbs {
                call: "ibv_poll_cq",
                source: io::Error::from_raw_os_error(-n),
            });
        }
        for wc in &wcs[..n as usize] {
            if let Some(done) = table.take(wc.wr_id) {
                let status = if wc.status == ibv_wc_status::IBV_WC_SUCCESS {
                    Ok(())
                } else {
                    // SAFETY: returns a static string for any status value.
                    let text = unsafe { CStr::from_ptr(ibv_wc_status_str(wc.status)) };
                    Err(format!("{} (status {})", text.to_string_lossy(), wc.status))
                };
                out.push(Completion { done, status });
            }
        }
        Ok(n as usize)
    }

    /// Ask for an event at the next completion.
    pub(crate) fn arm(&self) -> Result<(), RdmaError> {
        // SAFETY: a valid queue.
        check("ibv_req_notify_cq", unsafe { ibv_req_notify_cq(self.raw.as_ptr(), 0) })
    }

    /// Wait up to `timeout` for the event of an armed queue, and acknowledge it. `false` when
    /// none came (or the queue has no channel).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let Some(channel) = &self.channel else {
            std::thread::sleep(timeout);
            return false;
        };
        // SAFETY: the channel's fd is open while the channel lives.
        let fd = unsafe { BorrowedFd::borrow_raw((*channel.0.as_ptr()).fd) };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, millis) } <= 0 {
            return false;
        }
        let mut cq = ptr::null_mut();
        let mut context = ptr::null_mut();
        // SAFETY: a valid channel and out-pointers; non-blocking, so it fails instead of waiting.
        if unsafe { ibv_get_cq_event(channel.0.as_ptr(), &mut cq, &mut context) } != 0 {
            return false;
        }
        // SAFETY: `cq` is the queue the event came from (ours); each event is acknowledged once.
        unsafe { ibv_ack_cq_events(cq, 1) };
        true
    }
}

/// The address and key of remote memory, and how much of it to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteRead {
    /// Where the bytes land in the buffer.
    pub local_offset: usize,
    /// How many.
    pub len: u32,
    /// Remote address.
    pub remote_addr: u64,
    /// Remote key.
    pub rkey: u32,
    /// Start only after every earlier READ of the chain has completed (`IBV_SEND_FENCE`).
    pub fence: bool,
}

/// A remote end to connect to.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub qpn: u32,
    pub psn: u32,
    pub gid: [u8; 16],
    pub lid: u16,
    pub mtu: u32,
}

/// The local port a queue pair uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalPort {
    pub port: u8,
    pub gid_index: u8,
    pub mtu: u32,
}

/// Reads one queue pair may have outstanding at the responder (both ends agree on it).
const RD_ATOMIC: u8 = 16;

/// A reliable-connected queue pair.
pub(crate) struct QueuePair {
    raw: NonNull<ibv_qp>,
    _cq: Arc<CompletionQueue>,
    _pd: Arc<ProtectionDomain>,
}

// SAFETY: verbs objects may be used from any thread; posting is thread-safe in libibverbs.
unsafe impl Send for QueuePair {}
// SAFETY: as above.
unsafe impl Sync for QueuePair {}

impl fmt::Debug for QueuePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePair").field("qpn", &self.qpn()).finish()
    }
}

impl Drop for QueuePair {
    fn drop(&mut self) {
        // SAFETY: created in `create`, destroyed once. Requests posted on it hold an `Arc` of it
        // in the in-flight table until their completion, so none is outstanding here.
        unsafe { ibv_destroy_qp(self.raw.as_ptr()) };
    }
}

impl QueuePair {
    /// A new RC queue pair of `pd`, completing into `cq`, with room for `send_depth` requests,
    /// moved to INIT on `port` (remote reads allowed when `remote_read`).
    pub(crate) fn create(
        pd: &Arc<ProtectionDomain>,
        cq: &Arc<CompletionQueue>,
        send_depth: u32,
        port: u8,
        remote_read: bool,
    ) -> Result<Arc<QueuePair>, RdmaError> {
        // SAFETY: zeroed init attributes are valid; the fields that matter are set below.
        let mut init: ibv_qp_init_attr = unsafe { std::mem::zeroed() };
        init.send_cq = cq.raw.as_ptr();
        init.recv_cq = cq.raw.as_ptr();
        init.qp_type = ibv_qp_type::IBV_QPT_RC;
        init.sq_sig_all = 0;
        init.cap.max_send_wr = send_depth;
        init.cap.max_recv_wr = 1;
        init.cap.max_send_sge = 1;
        init.cap.max_recv_sge = 1;
        // SAFETY: a valid domain and attributes.
        let raw = unsafe { ibv_create_qp(pd.raw.as_ptr(), &mut init) };
        let raw = NonNull::new(raw).ok_or_else(|| last_error("ibv_create_qp"))?;
        let qp = Arc::new(QueuePair {
            raw,
            _cq: cq.clone(),
            _pd: pd.clone(),
        });
        // SAFETY: zeroed attributes are valid.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_INIT;
        attr.pkey_index = 0;
        attr.port_num = port;
        attr.qp_access_flags = if remote_read {
            ibv_access_flags::IBV_ACCESS_REMOTE_READ.0
        } else {
            0
        };
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_PKEY_INDEX
            | ibv_qp_attr_mask::IBV_QP_PORT
            | ibv_qp_attr_mask::IBV_QP_ACCESS_FLAGS;
        qp.modify("ibv_modify_qp(INIT)", &mut attr, mask)?;
        Ok(qp)
    }

    fn modify(&self, call: &'static str, attr: &mut ibv_qp_attr, mask: ibv_qp_attr_mask) -> Result<(), RdmaError> {
        // SAFETY: a valid queue pair and attributes.
        check(call, unsafe { ibv_modify_qp(self.raw.as_ptr(), attr, mask.0 as i32) })
    }

    /// Its number.
    pub(crate) fn qpn(&self) -> u32 {
        // SAFETY: `qp_num` is a plain field set at creation.
        unsafe { (*self.raw.as_ptr()).qp_num }
    }

    /// Connect to `remote`: INIT → RTR (receiving from it) → RTS (sending from `psn`).
    pub(crate) fn connect(&self, local: LocalPort, remote: &Remote, psn: u32) -> Result<(), RdmaError> {
        // SAFETY: zeroed attributes are valid.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTR;
        attr.path_mtu = mtu_value(local.mtu.min(remote.mtu));
        attr.dest_qp_num = remote.qpn;
        attr.rq_psn = remote.psn;
        attr.max_dest_rd_atomic = RD_ATOMIC;
        attr.min_rnr_timer = 12;
        attr.ah_attr.is_global = 1;
        attr.ah_attr.dlid = remote.lid;
        attr.ah_attr.port_num = local.port;
        attr.ah_attr.grh.dgid.raw = remote.gid;
        attr.ah_attr.grh.sgid_index = local.gid_index;
        attr.ah_attr.grh.hop_limit = 64;
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_AV
            | ibv_qp_attr_mask::IBV_QP_PATH_MTU
            | ibv_qp_attr_mask::IBV_QP_DEST_QPN
            | ibv_qp_attr_mask::IBV_QP_RQ_PSN
            | ibv_qp_attr_mask::IBV_QP_MAX_DEST_RD_ATOMIC
            | ibv_qp_attr_mask::IBV_QP_MIN_RNR_TIMER;
        self.modify("ibv_modify_qp(RTR)", &mut attr, mask)?;
        // SAFETY: zeroed attributes are valid.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTS;
        // 4.096 µs × 2^14 ≈ 67 ms per try, 7 tries: a dead peer fails a READ in about half a second.
        attr.timeout = 14;
        attr.retry_cnt = 7;
        attr.rnr_retry = 7;
        attr.sq_psn = psn;
        attr.max_rd_atomic = RD_ATOMIC;
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_TIMEOUT
            | ibv_qp_attr_mask::IBV_QP_RETRY_CNT
            | ibv_qp_attr_mask::IBV_QP_RNR_RETRY
            | ibv_qp_attr_mask::IBV_QP_SQ_PSN
            | ibv_qp_attr_mask::IBV_QP_MAX_QP_RD_ATOMIC;
        self.modify("ibv_modify_qp(RTS)", &mut attr, mask)
    }

    /// Move to the error state: outstanding requests complete with a flush error (so their
    /// buffers come back), new ones fail.
    pub(crate) fn fail(&self) {
        // SAFETY: zeroed attributes are valid.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_ERR;
        let _ = self.modify("ibv_modify_qp(ERR)", &mut attr, ibv_qp_attr_mask::IBV_QP_STATE);
    }

    /// Post `reads` into `buffer` as one chain of RDMA READs, all with id `wr_id`, only the last
    /// signalled. The buffer (with `attached`) goes into `table` before the chain is posted and
    /// comes out only with the chain's completion ([`CompletionQueue::poll`]).
    ///
    /// # Errors
    /// A read outside the buffer, or a post the device refuses: the buffer and `attached` come
    /// back with the error (nothing was posted).
    #[allow(clippy::result_large_err)]
    pub(crate) fn post_reads<T>(
        self: &Arc<Self>,
        buffer: Buffer,
        reads: &[RemoteRead],
        wr_id: u64,
        attached: T,
        table: &InFlight<T>,
    ) -> Result<(), (Posted<T>, RdmaError)> {
        let fits = reads.iter().all(|r| {
            r.local_offset
                .checked_add(r.len as usize)
                .is_some_and(|end| end <= buffer.capacity())
        });
        let posted = Posted {
            buffer,
            attached,
            qp: self.clone(),
        };
        if reads.is_empty() || !fits {
            return Err((posted, RdmaError::Protocol("RDMA reads outside their buffer".into())));
        }
        let base = posted.buffer.addr();
        let lkey = posted.buffer.lkey();
        let mut sges: Vec<ibv_sge> = reads
            .iter()
            .map(|r| ibv_sge {
                addr: base + r.local_offset as u64,
                length: r.len,
                lkey,
            })
            .collect();
        // SAFETY: zeroed work requests are valid; each is filled in below.
        let mut wrs: Vec<ibv_send_wr> = (0..reads.len()).map(|_| unsafe { std::mem::zeroed() }).collect();
        let count = wrs.len();
        let wrs_ptr = wrs.as_mut_ptr();
        let sges_ptr = sges.as_mut_ptr();
        for (i, (wr, read)) in wrs.iter_mut().zip(reads).enumerate() {
            wr.wr_id = wr_id;
            // SAFETY: `i < count == sges.len()`; `sges` outlives the post and is not moved.
            wr.sg_list = unsafe { sges_ptr.add(i) };
            wr.num_sge = 1;
            wr.opcode = ibv_wr_opcode::IBV_WR_RDMA_READ;
            let mut flags = 0;
            if i + 1 == count {
                flags |= ibv_send_flags::IBV_SEND_SIGNALED.0;
            }
            if read.fence {
                flags |= ibv_send_flags::IBV_SEND_FENCE.0;
            }
            wr.send_flags = flags;
            wr.wr.rdma.remote_addr = read.remote_addr;
            wr.wr.rdma.rkey = read.rkey;
            wr.next = if i + 1 < count {
                // SAFETY: `i + 1 < count` keeps the pointer inside `wrs`, which outlives the post.
                unsafe { wrs_ptr.add(i + 1) }
            } else {
                ptr::null_mut()
            };
        }
        // The buffer is the device's from here: parked in the table until the completion.
        table.insert(wr_id, posted);
        let mut bad = ptr::null_mut();
        // SAFETY: a valid queue pair; the chain and its scatter lists live until the call returns
        // (the device copies them); the buffer they name is registered (`lkey`) and, parked in
        // `table`, is touched by nobody until its completion is polled.
        let rc = unsafe { ibv_post_send(self.raw.as_ptr(), wrs_ptr, &mut bad) };
        if rc != 0 {
            // Partly posted chains cannot be taken back: if the first was taken, the buffer must
            // stay parked until the completions (a flush error) of what was posted arrive.
            if bad == wrs_ptr
                && let Some(posted) = table.take(wr_id)
            {
                let errno = if rc > 0 { rc } else { libc::EIO };
                return Err((
                    posted,
                    RdmaError::Verbs {
                        call: "ibv_post_send",
                        source: io::Error::from_raw_os_error(errno),
                    },
                ));
            }
            self.fail();
        }
        Ok(())
    }
}

/// A buffer that was posted, with what its poster attached to it (a waiter, say) and the queue
/// pair it was posted on (kept alive until the completion).
#[derive(Debug)]
pub(crate) struct Posted<T> {
    /// The buffer, now the caller's again.
    pub buffer: Buffer,
    /// What was attached at the post.
    pub attached: T,
    qp: Arc<QueuePair>,
}

impl<T> Posted<T> {
    /// The queue pair the buffer was posted on.
    pub(crate) fn queue_pair(&self) -> &Arc<QueuePair> {
        &self.qp
    }
}

/// Buffers the device owns: posted, their completion not yet polled.
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    posted: Mutex<HashMap<u64, Posted<T>>>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            posted: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> InFlight<T> {
    fn insert(&self, wr_id: u64, posted: Posted<T>) {
        self.posted.lock().insert(wr_id, posted);
    }

    fn take(&self, wr_id: u64) -> Option<Posted<T>> {
        self.posted.lock().remove(&wr_id)
    }
}

/// Anonymous memory for a buffer pool.
struct Anonymous(MmapRaw);

impl fmt::Debug for Anonymous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anonymous").field("len", &self.0.len()).finish()
    }
}

// SAFETY: an anonymous mapping made once, never remapped, unmapped only on drop.
unsafe impl StableMemory for Anonymous {
    fn memory(&self) -> (NonNull<u8>, usize) {
        let ptr = NonNull::new(self.0.as_mut_ptr()).expect("a mapping is never at address 0");
        (ptr, self.0.len())
    }
}

/// Registered buffers of one size, where READs land.
pub(crate) struct BufferPool {
    region: MemoryRegion,
    slot: usize,
    free: Mutex<Vec<usize>>,
    permits: Arc<tokio::sync::Semaphore>,
    count: usize,
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("slot", &self.slot)
            .field("free", &self.free.lock().len())
            .finish()
    }
}

impl BufferPool {
    /// `count` buffers of `slot` bytes (rounded up to 4 KiB), registered on `pd` for the device
    /// to write.
    pub(crate) fn new(pd: &Arc<ProtectionDomain>, count: usize, slot: usize) -> Result<Arc<BufferPool>, RdmaError> {
        let slot = slot.next_multiple_of(4096);
        let count = count.max(1);
        let map = memmap2::MmapOptions::new()
            .len(slot * count)
            .populate()
            .map_anon()
            .map_err(|e| RdmaError::Register {
                bytes: (slot * count) as u64,
                source: e,
            })?;
        let raw = MmapRaw::from(map);
        let region = pd.register(Arc::new(Anonymous(raw)), Access::LocalWrite)?;
        Ok(Arc::new(BufferPool {
            region,
            slot,
            free: Mutex::new((0..count).collect()),
            permits: Arc::new(tokio::sync::Semaphore::new(count)),
            count,
        }))
    }

    /// Buffers in the pool.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// `n` free buffers (at most [`BufferPool::count`]), taken all at once: a reader never holds
    /// some while it waits for more, so readers cannot starve each other of buffers.
    pub(crate) async fn get_many(self: &Arc<Self>, n: usize) -> Vec<Buffer> {
        let n = n.clamp(1, self.count);
        let mut permits = self
            .permits
            .clone()
            .acquire_many_owned(n as u32)
            .await
            .expect("the pool's semaphore is never closed");
        let mut singles: Vec<_> = (1..n)
            .map(|_| permits.split(1).expect("n permits were taken"))
            .collect();
        singles.push(permits);
        let mut free = self.free.lock();
        singles
            .into_iter()
            .map(|permit| Buffer {
                pool: self.clone(),
                index: free.pop().expect("a permit stands for a free buffer"),
                _permit: permit,
            })
            .collect()
    }
}

/// One registered buffer of a pool, exclusively the holder's (or the device's, while posted).
pub(crate) struct Buffer {
    pool: Arc<BufferPool>,
    index: usize,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer").field("index", &self.index).finish()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.pool.free.lock().push(self.index);
    }
}

impl Buffer {
    fn addr(&self) -> u64 {
        self.pool.region.addr() + (self.index * self.pool.slot) as u64
    }

    fn lkey(&self) -> u32 {
        self.pool.region.lkey()
    }

    /// Its size.
    pub(crate) fn capacity(&self) -> usize {
        self.pool.slot
    }

    /// Its bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the slot lies inside the pool's mapping (index < count), which lives as long as
        // the pool this buffer holds. Only this `Buffer` names the slot, and while it is borrowed
        // here it is not posted (posting takes it by value), so the device does not write it.
        unsafe { std::slice::from_raw_parts(self.addr() as *const u8, self.pool.slot) }
    }
}
