//! The messages of the protocol. Their rkyv layout is the wire format: changing a field's type
//! or order is a protocol version bump.

use rkyv::{Archive, Deserialize, Serialize};

/// A file of a mount at one version: the key its cached pages live under.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Mount name.
    pub mount: String,
    /// Path within the mount (object key, no leading `/`).
    pub path: String,
    /// Version tag from the under-store (ETag, or size-mtime).
    pub version: String,
}

/// The first frame of every connection: who we are, and the cluster's token.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's protocol version.
    pub protocol_version: u16,
    /// The cluster's shared secret.
    pub token: String,
    /// A name for logs.
    pub client_name: String,
}

/// Stat one file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StatRequest {
    /// Mount name.
    pub mount: String,
    /// Path within the mount.
    pub path: String,
    /// Ask the under-store even if a cached answer is fresh (the client saw the file change),
    /// and replace the cached answer.
    pub fresh: bool,
}

/// List one page of a directory or prefix.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Mount name.
    pub mount: String,
    /// Key prefix.
    pub prefix: String,
    /// Group by this delimiter (usually `/`).
    pub delimiter: Option<String>,
    /// Continue after a previous page: the token it returned, or [`LIST_AFTER_TOKEN`] followed by
    /// a key to start after that key.
    pub continuation: Option<String>,
    /// Most entries in the page (0: the worker's default).
    pub max_keys: u32,
    /// List directory markers (keys ending in `/`) as files wherever the under-store would, as
    /// S3 does; without it a marker shows only as the prefix it makes (and as the listed
    /// directory's own entry), as a file system wants.
    pub markers: bool,
}

/// A [`ListRequest::continuation`] made of this and a key lists the entries after that key (S3's
/// `start-after`); the coordinator's own tokens for merged listings have this form too.
pub const LIST_AFTER_TOKEN: &str = "hoard-after:";

/// Most bytes one [`ReadRequest`] may ask for; larger requests are refused as invalid.
pub const MAX_READ_BYTES: u64 = 128 << 20;

/// Read bytes `[offset, offset + len)` of a file version (at most [`MAX_READ_BYTES`]). The
/// bytes come back as the payload.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// The file and the version the client expects.
    pub file: FileKey,
    /// The file's size at that version (from the client's stat).
    pub file_size: u64,
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Open a write session on the coordinator of a mount: create (or replace) a file, or append to
/// it. The bytes follow in [`WriteDataRequest`]s; nothing is visible until the commit.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WriteOpenRequest {
    /// Mount name.
    pub mount: String,
    /// Path within the mount.
    pub path: String,
    /// Append to the file's current content (a missing file starts empty) instead of replacing it.
    pub append: bool,
    /// Fail with `AlreadyExists` if the path exists (ignored with `append`).
    pub exclusive: bool,
    /// User metadata of the new file (keys and values as `hoard_ufs::validate_metadata` allows).
    /// Ignored with `append`: an appended file keeps its metadata.
    pub metadata: Vec<(String, String)>,
}

/// Replace the user metadata of a file (its content stays as it is).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SetMetadataRequest {
    /// Mount name.
    pub mount: String,
    /// Path of the file.
    pub path: String,
    /// The file's whole new user metadata.
    pub metadata: Vec<(String, String)>,
}

/// Answer to [`WriteOpenRequest`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOpened {
    /// The session's handle, for the data, flush, commit and abort requests.
    pub handle: u64,
    /// Size of the content the session's bytes go after (0 unless appending).
    pub base_size: u64,
    /// Most bytes one [`WriteDataRequest`] may carry.
    pub max_write: u64,
}

/// Bytes `[offset, offset + payload length)` of a session's new bytes (offsets count from the
/// session's start, not from the file's). Requests may arrive in any order; each byte must be
/// written exactly once.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteDataRequest {
    /// Session handle.
    pub handle: u64,
    /// Offset of the payload within the session's bytes.
    pub offset: u64,
}

/// Finish a session step: `Flush` makes the first `len` bytes durable (the worker has every one
/// of them); `Commit` also publishes the file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WriteSyncRequest {
    /// Session handle.
    pub handle: u64,
    /// Number of session bytes the client has sent.
    pub len: u64,
    /// Content-bound metadata of the published bytes (see [`is_content_bound`]: the S3 ETag, a
    /// checksum), set on the file with its bytes. Only a commit of a created (not appended) file
    /// may carry any; anything else is refused.
    pub content: Vec<(String, String)>,
}

/// The user-metadata key of a file's S3 ETag as the S3 gateway computed it from the bytes it
/// received (the MD5 of a PUT's body, or S3's multipart form), without quotes.
pub const ETAG_KEY: &str = "hoard-etag";

/// The prefix of user-metadata keys holding a checksum of a file's bytes, named by algorithm
/// (`hoard-checksum-crc32c`: S3's `x-amz-checksum-crc32c`, base64).
pub const CHECKSUM_KEY_PREFIX: &str = "hoard-checksum-";

/// Whether a user-metadata key describes the file's bytes (its ETag, a checksum). Such keys
/// travel only with the bytes they describe: a worker drops them from the metadata a writer
/// opens with and from an appended file, takes them only from a commit
/// ([`WriteSyncRequest::content`]) or a compose, and never writes them to the under-store (where
/// the object gets its own ETag).
pub fn is_content_bound(key: &str) -> bool {
    key == ETAG_KEY || key.starts_with(CHECKSUM_KEY_PREFIX)
}

/// The directory, at the root of every mount, that holds *staged* files: bytes a client keeps in
/// hoard on its way to a file (the S3 gateway's multipart-upload parts). A worker never writes
/// staged files to the under-store, keeps them durable like `cache-only` files, deletes them
/// without a trace, and leaves the directory out of listings of the mount's root.
pub const STAGING_DIR: &str = ".hoard-staging";

/// Whether `path` (within a mount) is a staged file or directory.
pub fn is_staged(path: &str) -> bool {
    path.strip_prefix(STAGING_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One source of a [`ComposeRequest`]: a whole file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ComposeSource {
    /// Path within the mount.
    pub path: String,
    /// The version the caller saw; the compose fails with `StaleVersion` if the file has
    /// another one now. `None`: whatever it holds.
    pub version: Option<String>,
}

/// Make `dst` the concatenation of `sources` (in order) without moving their bytes through the
/// client: the new file's segments are the sources' segments, so the coordinator copies nothing
/// (the under-store gets the object by server-side copies where it can). A copy is a compose of
/// one source; a multipart upload's completion is a compose of its staged parts with
/// `remove_sources`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ComposeRequest {
    /// Mount name (sources and destination are in the same mount).
    pub mount: String,
    /// The file to create or replace.
    pub dst: String,
    /// Its content, in order (at least one; the same file may appear more than once).
    pub sources: Vec<ComposeSource>,
    /// Delete the sources (except `dst` itself) in the same step.
    pub remove_sources: bool,
    /// The new file's whole user metadata, content-bound keys included (`None`: the first
    /// source's, without its content-bound keys unless it is the only source).
    pub metadata: Option<Vec<(String, String)>>,
    /// Fail with `AlreadyExists` if `dst` exists.
    pub exclusive: bool,
}

/// Rename a file or a directory (every key under `src/`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RenameRequest {
    /// Mount name.
    pub mount: String,
    /// Source path.
    pub src: String,
    /// Destination path; an existing file there is replaced, an existing directory refuses.
    pub dst: String,
}

/// Delete a file, or a directory with `recursive`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Mount name.
    pub mount: String,
    /// Path of the file or directory.
    pub path: String,
    /// Delete a directory and everything under it.
    pub recursive: bool,
}

/// A mount and a path, for `mkdir` and `sync`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PathRequest {
    /// Mount name.
    pub mount: String,
    /// Path within the mount (for `sync`, a file or a directory; empty: the whole mount).
    pub path: String,
}

/// A request from a client to a worker.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Handshake.
    Hello(Hello),
    /// Stat a file.
    Stat(StatRequest),
    /// List a prefix.
    List(ListRequest),
    /// Read a byte range.
    Read(ReadRequest),
    /// The worker's health and cache statistics.
    Status,
    /// Fill a byte range into the cache without sending it back (preloading).
    Load(ReadRequest),
    /// Open a write session.
    WriteOpen(WriteOpenRequest),
    /// Bytes of a write session (in the payload).
    WriteData(WriteDataRequest),
    /// Make a session's bytes durable.
    WriteFlush(WriteSyncRequest),
    /// Make a session's bytes durable and publish the file.
    WriteCommit(WriteSyncRequest),
    /// Drop a session and its bytes.
    WriteAbort(u64),
    /// Rename a file or directory.
    Rename(RenameRequest),
    /// Delete a file or directory.
    Delete(DeleteRequest),
    /// Create a directory.
    Mkdir(PathRequest),
    /// Wait until everything written under a path has reached the under-store.
    Sync(PathRequest),
    /// Replace a file's user metadata.
    SetMetadata(SetMetadataRequest),
    /// Make a file of other files' bytes (answered with [`Response::Committed`]).
    Compose(ComposeRequest),
    /// Where the pages of a byte range sit in the worker's memory regions, instead of their bytes
    /// (filling misses first), for a client that maps the regions (shared memory).
    Locate(ReadRequest),
    /// As `Locate`, and the worker holds the pages in their slots for a while: a client may lend
    /// views of them instead of copying (the zero-copy API).
    Lease(LeaseRequest),
    /// Set up a reliable-connected queue pair with the worker, tied to this connection, for
    /// one-sided RDMA reads of its regions (see `hoard_transport::rdma`).
    RdmaConnect(RdmaEndpoint),
}

/// One end of a reliable-connected queue pair, as the other end needs it to connect.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RdmaEndpoint {
    /// The queue pair's number.
    pub qpn: u32,
    /// Its first packet sequence number.
    pub psn: u32,
    /// The port's GID in use (16 bytes).
    pub gid: Vec<u8>,
    /// The port's LID (InfiniBand; 0 on RoCE).
    pub lid: u16,
    /// The port's active MTU in bytes (the path uses the smaller of the two ends').
    pub mtu: u32,
}

/// A worker's answer to [`Request::RdmaConnect`]: its end of the queue pair and the regions the
/// client may read.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RdmaConnected {
    /// The RDMA device the worker's end is on.
    pub device: String,
    /// The worker's end.
    pub endpoint: RdmaEndpoint,
    /// The registered regions, by the ids page locations name.
    pub regions: Vec<RdmaRegion>,
}

/// A registered memory region of a worker, readable with one-sided RDMA READs.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdmaRegion {
    /// The id page locations name it by.
    pub id: u32,
    /// Its address in the worker (what READs name).
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Its remote key.
    pub rkey: u32,
    /// Its generation words (one `u64` per `min_block` bytes), if it has any.
    pub generations: Option<RdmaWords>,
}

/// Where a region's generation words are registered.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdmaWords {
    /// Address of the first word.
    pub addr: u64,
    /// Bytes of words.
    pub len: u64,
    /// Remote key.
    pub rkey: u32,
    /// Bytes of the region one word stands for.
    pub min_block: u64,
}

/// Where the pages of a range sit, held there for `millis` (at most the worker's limit).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The range.
    pub read: ReadRequest,
    /// How long the client wants to use the pages, in milliseconds.
    pub millis: u32,
}

/// Answer to [`Hello`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The worker's protocol version.
    pub protocol_version: u16,
    /// The worker's id from the cluster config.
    pub worker_id: String,
    /// The page size the worker caches with.
    pub page_size: u64,
    /// Changes every time the worker process starts: regions mapped from an earlier instance
    /// are not this one's.
    pub instance: u64,
    /// Over TCP, when the worker serves shared memory: where to connect for it, if on its host.
    pub shm: Option<ShmOffer>,
    /// Over the shared-memory socket: the regions whose descriptors came with this reply
    /// (`SCM_RIGHTS`, two per region: data, then generation words), in order. Empty over TCP.
    pub regions: Vec<RegionInfo>,
    /// Over TCP, when the worker serves one-sided RDMA reads: a client with an RDMA device may
    /// ask for a queue pair on this connection ([`Request::RdmaConnect`]).
    pub rdma: bool,
}

/// A worker's offer of its shared-memory transport, for clients on its host.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShmOffer {
    /// The worker's host: its kernel's boot id (`/proc/sys/kernel/random/boot_id`). A client
    /// whose own boot id differs is on another host.
    pub host: String,
    /// Path of the worker's Unix socket.
    pub socket: String,
}

/// A memory region a worker shares with a local client.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    /// The id page locations name it by.
    pub id: u32,
    /// Its smallest slot: the unit of its generation words.
    pub min_block: u64,
}

/// Metadata of one file.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Path within the mount.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Version tag.
    pub version: String,
    /// Modification time, milliseconds since the Unix epoch (0 if unknown).
    pub mtime_ms: u64,
    /// Written through hoard and held by the mount's coordinator (the worker that answered the
    /// stat): read it there, not from the chunk owners, and never straight from the under-store
    /// (it may not be there yet).
    pub homed: bool,
    /// User metadata (S3's `x-amz-meta-*`), sorted by key; `None` where the answer does not
    /// know it (listings of the under-store, which carry none).
    pub metadata: Option<Vec<(String, String)>>,
}

/// One entry of a listing.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// A file.
    File(FileMeta),
    /// A common prefix ("directory"), ending with the delimiter.
    Prefix(String),
}

/// One page of a listing.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListReply {
    /// Entries in key order.
    pub entries: Vec<ListEntry>,
    /// Token for the next page, if any.
    pub next_continuation: Option<String>,
}

/// The CRC32C of one whole page, for the pages a read covers entirely.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCrc {
    /// Page index within the file.
    pub index: u64,
    /// CRC32C (Castagnoli) of the page's bytes.
    pub crc32c: u32,
}

/// Answer to [`ReadRequest`]; the bytes follow as the payload.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReadReply {
    /// First byte of the payload within the file.
    pub offset: u64,
    /// Payload length (shorter than asked at the end of the file).
    pub len: u64,
    /// The worker's page size.
    pub page_size: u64,
    /// Checksums of the pages that lie wholly inside the payload, so the client can verify them.
    pub pages: Vec<PageCrc>,
    /// How many of the pages were cache hits (for the client's statistics).
    pub hit_pages: u32,
}

/// Where one cached page sits: the client copies `len` bytes at `offset` of region `region` and
/// trusts them only if the slot's generation is `generation` before and after the copy
/// (`hoard_transport::region::RegionReader`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLocation {
    /// Page index within the file.
    pub index: u64,
    /// Region id.
    pub region: u32,
    /// Byte offset of the page's slot in the region.
    pub offset: u64,
    /// Bytes of the page (less than the page size only at the end of the file).
    pub len: u64,
    /// The slot's generation.
    pub generation: u64,
    /// CRC32C of the page's bytes.
    pub crc32c: u32,
}

/// Answer to [`Request::Locate`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LocateReply {
    /// The worker's page size.
    pub page_size: u64,
    /// Locations of the pages the range touches, in order. A page that is not in a region (held
    /// by the write path, or not cached because no slot was free) is missing: read those bytes
    /// with [`Request::Read`].
    pub pages: Vec<PageLocation>,
    /// How many of the range's pages were cache hits.
    pub hit_pages: u32,
    /// Answering [`Request::Lease`]: for how many milliseconds, from when the worker answered,
    /// the located pages stay in their slots (0: not leased).
    pub lease_ms: u32,
}

/// Answer to [`Request::Load`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadReply {
    /// Bytes of the range now cached.
    pub bytes: u64,
    /// Pages of the range.
    pub pages: u64,
    /// Of them, pages that were already cached.
    pub hit_pages: u64,
}

/// A worker's health and statistics.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerStatus {
    /// The worker's id.
    pub worker_id: String,
    /// Seconds since the worker started.
    pub uptime_s: u64,
    /// Memory tier capacity in bytes.
    pub capacity_bytes: u64,
    /// Bytes of cached pages.
    pub used_bytes: u64,
    /// Cached pages.
    pub pages: u64,
    /// Page reads served from the cache.
    pub hits: u64,
    /// Page reads that had to go to the under-store.
    pub misses: u64,
    /// Pages evicted.
    pub evictions: u64,
    /// Bytes sent to clients.
    pub bytes_served: u64,
    /// Requests made to the under-store.
    pub ufs_requests: u64,
    /// Bytes written in `back` mode and not yet in the under-store.
    pub backlog_bytes: u64,
    /// Files and operations (renames, deletes) not yet applied to the under-store.
    pub backlog_ops: u64,
    /// Bytes of `cache-only` files held.
    pub cache_only_bytes: u64,
}

/// An error answer.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// A [`Status`](super::Status) code.
    pub status: u16,
    /// What went wrong, for humans.
    pub message: String,
}

/// A worker's answer to a [`Request`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Handshake accepted.
    Hello(HelloReply),
    /// File metadata.
    Stat(FileMeta),
    /// A listing page.
    List(ListReply),
    /// Read result; bytes in the payload.
    Read(ReadReply),
    /// Worker status.
    Status(WorkerStatus),
    /// A load finished.
    Loaded(LoadReply),
    /// A write session is open.
    WriteOpened(WriteOpened),
    /// Bytes of a session received (the count); durable after a flush reply.
    Written(u64),
    /// A committed file's metadata.
    Committed(FileMeta),
    /// The request succeeded and has nothing to say.
    Done,
    /// The request failed.
    Error(ErrorReply),
    /// Page locations.
    Located(LocateReply),
    /// A queue pair is set up.
    RdmaConnected(RdmaConnected),
}

/// The message kind in a frame header. The numbers are stable: never renumber or reuse one.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// [`Request::Hello`].
    Hello = 1,
    /// [`Response::Hello`].
    HelloReply = 2,
    /// [`Request::Stat`].
    Stat = 10,
    /// [`Response::Stat`].
    StatReply = 11,
    /// [`Request::List`].
    List = 12,
    /// [`Response::List`].
    ListReply = 13,
    /// [`Request::Read`].
    Read = 20,
    /// [`Response::Read`].
    ReadReply = 21,
    /// [`Request::Locate`].
    Locate = 22,
    /// [`Response::Located`].
    LocateReply = 23,
    /// [`Request::Lease`] (answered with [`Response::Located`]).
    Lease = 24,
    /// [`Request::RdmaConnect`].
    RdmaConnect = 26,
    /// [`Response::RdmaConnected`].
    RdmaConnectedReply = 27,
    /// [`Request::Status`].
    Status = 30,
    /// [`Response::Status`].
    StatusReply = 31,
    /// [`Request::Load`].
    Load = 40,
    /// [`Response::Loaded`].
    LoadReply = 41,
    /// [`Request::WriteOpen`].
    WriteOpen = 50,
    /// [`Response::WriteOpened`].
    WriteOpenedReply = 51,
    /// [`Request::WriteData`].
    WriteData = 52,
    /// [`Response::Written`].
    WrittenReply = 53,
    /// [`Request::WriteFlush`].
    WriteFlush = 54,
    /// [`Request::WriteCommit`].
    WriteCommit = 56,
    /// [`Response::Committed`].
    CommittedReply = 57,
    /// [`Request::WriteAbort`].
    WriteAbort = 58,
    /// [`Request::Rename`].
    Rename = 60,
    /// [`Request::Delete`].
    Delete = 62,
    /// [`Request::Mkdir`].
    Mkdir = 64,
    /// [`Request::Sync`].
    Sync = 66,
    /// [`Request::SetMetadata`].
    SetMetadata = 68,
    /// [`Request::Compose`] (answered with [`Response::Committed`]).
    Compose = 70,
    /// [`Response::Done`].
    Done = 98,
    /// [`Response::Error`].
    Error = 99,
}

impl Request {
    /// The header kind of this request.
    pub fn kind(&self) -> MessageKind {
        match self {
            Request::Hello(_) => MessageKind::Hello,
            Request::Stat(_) => MessageKind::Stat,
            Request::List(_) => MessageKind::List,
            Request::Read(_) => MessageKind::Read,
            Request::Status => MessageKind::Status,
            Request::Load(_) => MessageKind::Load,
            Request::WriteOpen(_) => MessageKind::WriteOpen,
            Request::WriteData(_) => MessageKind::WriteData,
            Request::WriteFlush(_) => MessageKind::WriteFlush,
            Request::WriteCommit(_) => MessageKind::WriteCommit,
            Request::WriteAbort(_) => MessageKind::WriteAbort,
            Request::Rename(_) => MessageKind::Rename,
            Request::Delete(_) => MessageKind::Delete,
            Request::Mkdir(_) => MessageKind::Mkdir,
            Request::Sync(_) => MessageKind::Sync,
            Request::SetMetadata(_) => MessageKind::SetMetadata,
            Request::Compose(_) => MessageKind::Compose,
            Request::Locate(_) => MessageKind::Locate,
            Request::Lease(_) => MessageKind::Lease,
            Request::RdmaConnect(_) => MessageKind::RdmaConnect,
        }
    }
}

impl ArchivedRequest {
    /// The header kind of this archived request.
    pub fn kind(&self) -> MessageKind {
        match self {
            ArchivedRequest::Hello(_) => MessageKind::Hello,
            ArchivedRequest::Stat(_) => MessageKind::Stat,
            ArchivedRequest::List(_) => MessageKind::List,
            ArchivedRequest::Read(_) => MessageKind::Read,
            ArchivedRequest::Status => MessageKind::Status,
            ArchivedRequest::Load(_) => MessageKind::Load,
            ArchivedRequest::WriteOpen(_) => MessageKind::WriteOpen,
            ArchivedRequest::WriteData(_) => MessageKind::WriteData,
            ArchivedRequest::WriteFlush(_) => MessageKind::WriteFlush,
            ArchivedRequest::WriteCommit(_) => MessageKind::WriteCommit,
            ArchivedRequest::WriteAbort(_) => MessageKind::WriteAbort,
            ArchivedRequest::Rename(_) => MessageKind::Rename,
            ArchivedRequest::Delete(_) => MessageKind::Delete,
            ArchivedRequest::Mkdir(_) => MessageKind::Mkdir,
            ArchivedRequest::Sync(_) => MessageKind::Sync,
            ArchivedRequest::SetMetadata(_) => MessageKind::SetMetadata,
            ArchivedRequest::Compose(_) => MessageKind::Compose,
            ArchivedRequest::Locate(_) => MessageKind::Locate,
            ArchivedRequest::Lease(_) => MessageKind::Lease,
            ArchivedRequest::RdmaConnect(_) => MessageKind::RdmaConnect,
        }
    }
}

impl Response {
    /// The header kind of this response.
    pub fn kind(&self) -> MessageKind {
        match self {
            Response::Hello(_) => MessageKind::HelloReply,
            Response::Stat(_) => MessageKind::StatReply,
            Response::List(_) => MessageKind::ListReply,
            Response::Read(_) => MessageKind::ReadReply,
            Response::Status(_) => MessageKind::StatusReply,
            Response::Loaded(_) => MessageKind::LoadReply,
            Response::WriteOpened(_) => MessageKind::WriteOpenedReply,
            Response::Written(_) => MessageKind::WrittenReply,
            Response::Committed(_) => MessageKind::CommittedReply,
            Response::Done => MessageKind::Done,
            Response::Error(_) => MessageKind::Error,
            Response::Located(_) => MessageKind::LocateReply,
            Response::RdmaConnected(_) => MessageKind::RdmaConnectedReply,
        }
    }
}

impl ArchivedResponse {
    /// The header kind of this archived response.
    pub fn kind(&self) -> MessageKind {
        match self {
            ArchivedResponse::Hello(_) => MessageKind::HelloReply,
            ArchivedResponse::Stat(_) => MessageKind::StatReply,
            ArchivedResponse::List(_) => MessageKind::ListReply,
            ArchivedResponse::Read(_) => MessageKind::ReadReply,
            ArchivedResponse::Status(_) => MessageKind::StatusReply,
            ArchivedResponse::Loaded(_) => MessageKind::LoadReply,
            ArchivedResponse::WriteOpened(_) => MessageKind::WriteOpenedReply,
            ArchivedResponse::Written(_) => MessageKind::WrittenReply,
            ArchivedResponse::Committed(_) => MessageKind::CommittedReply,
            ArchivedResponse::Done => MessageKind::Done,
            ArchivedResponse::Error(_) => MessageKind::Error,
            ArchivedResponse::Located(_) => MessageKind::LocateReply,
            ArchivedResponse::RdmaConnected(_) => MessageKind::RdmaConnectedReply,
        }
    }
}
