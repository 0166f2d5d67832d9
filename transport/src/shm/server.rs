//! Worker side of shared memory: a Unix socket whose handshake answer carries the regions.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter, Interest};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info_span};

use crate::error::TransportResult;
use crate::region::Arena;
use crate::tcp::{
    BoxRead, BoxWrite, Handler, ServerConfig, SharedWriter, early_refusal, handshake_done, read_hello, refusal,
    run_requests,
};
use crate::wire::{Outgoing, RegionInfo, Response, encode_message};

/// A region a worker hands to local clients: what it is, and its two descriptors.
#[derive(Debug)]
pub struct SharedRegion {
    /// Its id and slot unit.
    pub info: RegionInfo,
    /// The page data's memfd.
    pub data: OwnedFd,
    /// The generation words' memfd.
    pub generations: OwnedFd,
}

impl SharedRegion {
    /// An arena, shared (its descriptors duplicated).
    ///
    /// # Errors
    /// When a descriptor cannot be duplicated (`EMFILE`).
    pub fn of_arena(arena: &Arena) -> io::Result<SharedRegion> {
        Ok(SharedRegion {
            info: RegionInfo {
                id: arena.id(),
                min_block: arena.min_block(),
            },
            data: arena.fd().try_clone_to_owned()?,
            generations: arena.generations_fd().try_clone_to_owned()?,
        })
    }
}

/// Accept local clients on `listener` until `shutdown` completes; each handshake answer carries
/// `regions`. Requests then run through `handler` exactly as over TCP.
pub async fn serve_unix<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    config: ServerConfig,
    regions: Arc<Vec<SharedRegion>>,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let cancel = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    error!("failed to accept a local connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let peer = match stream.peer_cred() {
            Ok(c) => format!("pid {} uid {}", c.pid().unwrap_or(0), c.uid()),
            Err(_) => "a local process".to_owned(),
        };
        let (handler, config, regions, cancel) =
            (handler.clone(), config.clone(), regions.clone(), cancel.child_token());
        let span = info_span!("shm", %peer);
        tokio::spawn(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = serve_connection(stream, peer, handler, config, regions) => {}
                }
            }
            .instrument(span),
        );
    }
    cancel.cancel();
}

async fn serve_connection<H: Handler>(
    stream: UnixStream,
    peer: String,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    regions: Arc<Vec<SharedRegion>>,
) {
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 << 10, Box::new(read) as BoxRead);
    // Until the handshake is answered the write half stays bare: the answer goes out with
    // `sendmsg`, the descriptors attached to its first byte.
    let mut write = Some(write);
    let handshake = async {
        let half = write.as_mut().expect("taken after the handshake");
        let frame = match read_hello(&mut reader).await {
            Ok(frame) => frame,
            Err(e) => {
                if let Some(reply) = early_refusal(&e) {
                    let _ = send_bare(half, 0, &reply.message).await;
                }
                return Err(e);
            }
        };
        let id = frame.header.request_id;
        if let Some((reply, e)) = refusal(&frame, &config)? {
            send_bare(half, id, &reply.message).await?;
            return Err(e);
        }
        let hello = config.hello(false, regions.iter().map(|r| r.info).collect());
        let head = encode_message(id, Outgoing::Response(&Response::Hello(hello)), 0)?;
        let fds: Vec<_> = regions
            .iter()
            .flat_map(|r| [r.data.as_fd(), r.generations.as_fd()])
            .collect();
        send_with_fds(half, &head, &fds).await
    };
    let outcome = tokio::time::timeout(config.handshake_timeout, handshake).await;
    if !handshake_done(outcome, &peer, &config) {
        return;
    }
    let write = write.take().expect("still here");
    let writer: SharedWriter = Arc::new(Mutex::new(BufWriter::with_capacity(
        256 << 10,
        Box::new(write) as BoxWrite,
    )));
    run_requests(reader, writer, &peer, handler, &config, crate::TransportKind::Shm).await;
}

/// Write a message with no payload and no descriptors.
async fn send_bare(half: &mut OwnedWriteHalf, id: u64, message: &Response) -> TransportResult<()> {
    let head = encode_message(id, Outgoing::Response(message), 0)?;
    half.write_all(&head).await?;
    Ok(())
}

/// Write `bytes` with `fds` attached to the first of them.
async fn send_with_fds(
    half: &mut OwnedWriteHalf,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> TransportResult<()> {
    let stream: &UnixStream = half.as_ref();
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"));
            }
            Ok(rustix::net::sendmsg(
                stream,
                &[IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        })
        .await?;
    half.write_all(&bytes[sent..]).await?;
    Ok(())
}
