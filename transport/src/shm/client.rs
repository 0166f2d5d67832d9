//! Client side of shared memory: connect to a worker's Unix socket, receive and map its regions.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::UnixStream;

use crate::error::{TransportError, TransportResult};
use crate::region::{Location, RegionReader, Stale};
use crate::tcp::{BoxRead, BoxWrite, ConnectOptions, Framed, hello_reply, hello_request};
use crate::wire::{
    FRAME_HEADER_LEN, FrameLimits, HelloReply, Outgoing, Payload, RegionInfo, Reply, Request, Response, encode_message,
    read_frame,
};
use crate::{Transport, TransportKind};

/// Most descriptors a handshake reply may carry (two per region).
const MAX_FDS: usize = 16;

/// A connection to a worker over its Unix socket, with the worker's regions mapped read-only.
#[derive(Debug)]
pub struct ShmTransport {
    framed: Framed,
    regions: Arc<MappedRegions>,
    path: PathBuf,
}

/// One worker instance's regions as this process maps them: shared by every connection to that
/// instance, so the (populated) mappings are made once.
#[derive(Debug)]
pub struct MappedRegions {
    instance: u64,
    readers: Vec<RegionReader>,
}

impl MappedRegions {
    /// The worker instance they belong to.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Bytes of the worker's regions mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.readers.iter().map(RegionReader::mapped_bytes).sum()
    }
}

impl ShmTransport {
    /// Connect to the worker's socket at `path`, shake hands, and map the regions whose
    /// descriptors come with the answer, unless `known` maps them already (the same worker
    /// instance).
    ///
    /// # Errors
    /// I/O errors (no such socket: the worker is on another host or in another mount namespace),
    /// [`TransportError::Timeout`], [`TransportError::Refused`], and
    /// [`TransportError::Malformed`] when the answer's descriptors do not match its regions.
    pub async fn connect(
        path: impl AsRef<Path>,
        options: ConnectOptions,
        known: Option<Arc<MappedRegions>>,
    ) -> TransportResult<ShmTransport> {
        let deadline = options.connect_timeout;
        let path = path.as_ref().to_owned();
        tokio::time::timeout(deadline, Self::connect_inner(path, options, known))
            .await
            .map_err(|_| TransportError::Timeout(deadline))?
    }

    async fn connect_inner(
        path: PathBuf,
        options: ConnectOptions,
        known: Option<Arc<MappedRegions>>,
    ) -> TransportResult<ShmTransport> {
        let mut stream = UnixStream::connect(&path).await?;
        let hello = hello_request(&options);
        let head = encode_message(0, Outgoing::Request(&hello), 0)?;
        stream.write_all(&head).await?;
        // The descriptors ride on the answer's first bytes: take the header with recvmsg, then
        // the rest of the frame with plain reads (nothing follows it until we ask).
        let mut header = [0u8; FRAME_HEADER_LEN];
        let mut fds = Vec::new();
        let mut got = 0;
        while got < header.len() {
            let n = recv_with_fds(&stream, &mut header[got..], &mut fds).await?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            got += n;
        }
        let frame = {
            let mut rest = (&header[..]).chain(&mut stream);
            read_frame(&mut rest, &FrameLimits::HANDSHAKE)
                .await?
                .ok_or(TransportError::Closed)?
        };
        let hello = hello_reply(&frame)?;
        let regions = match known.filter(|k| k.instance == hello.instance) {
            Some(known) => known,
            None => {
                // Mapping populated takes a while for a large arena: not on a runtime thread.
                let (infos, instance) = (hello.regions.clone(), hello.instance);
                let mapped = tokio::task::spawn_blocking(move || map_regions(&infos, fds))
                    .await
                    .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
                let readers = mapped.map_err(|reason| TransportError::Malformed {
                    kind: frame.header.kind,
                    reason,
                })?;
                Arc::new(MappedRegions { instance, readers })
            }
        };
        let (read, write) = stream.into_split();
        let reader = BufReader::with_capacity(64 << 10, Box::new(read) as BoxRead);
        let writer = BufWriter::with_capacity(64 << 10, Box::new(write) as BoxWrite);
        let framed = Framed::start(reader, writer, hello, options.limits, path.display().to_string());
        Ok(ShmTransport { framed, regions, path })
    }

    /// The worker's handshake answer (id, page size, instance, regions).
    pub fn hello(&self) -> &HelloReply {
        self.framed.hello()
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the worker's regions this connection maps.
    pub fn mapped_bytes(&self) -> u64 {
        self.regions.mapped_bytes()
    }

    /// The worker instance's regions, to hand to the next connection to it.
    pub fn regions(&self) -> &Arc<MappedRegions> {
        &self.regions
    }

    /// Copy bytes `[from, from + dst.len())` of the page at `at` out of the mapped regions,
    /// checking the slot's generation before and after.
    ///
    /// # Errors
    /// [`Stale`] when the page is no longer there (ask the worker again), or the location names
    /// a region this connection does not map.
    pub fn copy(&self, at: &Location, from: u64, dst: &mut [u8]) -> Result<(), Stale> {
        self.region(at)?.copy_part_into(at, from, dst)
    }

    /// As [`ShmTransport::copy`], appending `len` bytes to `buf`; on an error `buf` is as it
    /// was.
    ///
    /// # Errors
    /// As [`ShmTransport::copy`].
    pub fn append(&self, at: &Location, from: u64, len: usize, buf: &mut BytesMut) -> Result<(), Stale> {
        self.region(at)?.append_part(at, from, len, buf)
    }

    /// Run `f` on bytes `[from, from + len)` of the page at `at` in place, out of the mapped
    /// regions; its result only if the page was still there after (see
    /// [`RegionReader::with_part`]).
    ///
    /// # Errors
    /// As [`ShmTransport::copy`].
    pub fn with_part<R>(&self, at: &Location, from: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R, Stale> {
        self.region(at)?.with_part(at, from, len, f)
    }

    fn region(&self, at: &Location) -> Result<&RegionReader, Stale> {
        self.regions.readers.iter().find(|r| r.id() == at.region).ok_or(Stale {
            region: at.region,
            offset: at.offset,
            expected: at.generation,
            during_copy: false,
        })
    }
}

/// One `recvmsg` into `buf`, keeping any descriptors that come with it.
async fn recv_with_fds(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    stream
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [io::IoSliceMut::new(buf)];
            let got = rustix::net::recvmsg(stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            Ok(got.bytes)
        })
        .await
}

/// Map the regions the handshake answer names from the descriptors that came with it: two per
/// region, data then generation words.
fn map_regions(infos: &[RegionInfo], fds: Vec<OwnedFd>) -> Result<Vec<RegionReader>, String> {
    if fds.len() != infos.len() * 2 {
        return Err(format!(
            "{} descriptors for {} regions (two each expected)",
            fds.len(),
            infos.len()
        ));
    }
    let mut fds = fds.into_iter();
    let mut regions = Vec::with_capacity(infos.len());
    for info in infos {
        let (Some(data), Some(generations)) = (fds.next(), fds.next()) else {
            unreachable!("counted above")
        };
        let region = RegionReader::map(info.id, data.as_fd(), generations.as_fd(), info.min_block)
            .map_err(|e| format!("map region {}: {e}", info.id))?;
        regions.push(region);
    }
    Ok(regions)
}

#[async_trait]
impl Transport for ShmTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Shm
    }

    async fn call(&self, request: Request, payload: Payload) -> TransportResult<Reply> {
        self.framed.call(request, payload).await
    }

    async fn call_into(&self, request: Request, recv: BytesMut) -> TransportResult<(Response, BytesMut)> {
        self.framed.exchange(request, &Payload::default(), recv).await
    }

    fn is_closed(&self) -> bool {
        self.framed.is_closed()
    }
}
