//! The client's side of reading replies, done by the callers themselves.
//!
//! There is no reader task. A caller that has sent its request waits for either its reply to be
//! handed over, or the connection's read half to be free; whoever holds the read half reads
//! frames, keeps its own reply and hands every other reply to its caller. A lone request is thus
//! read by the task that sent it, with no hand-off between tasks (and usually threads), which is
//! most of a round trip's cost on a loopback link.
//!
//! A caller can be cancelled (a timeout) in the middle of a frame, so [`ReplyReader`] keeps every
//! partial read in its own state: each `await` is a single read whose bytes are recorded before
//! the next one starts, and the next holder of the read half carries on where it stopped.

use bytes::{BufMut, BytesMut};
use rkyv::util::AlignedVec;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;

use crate::error::{TransportError, TransportResult};
use crate::wire::{FRAME_HEADER_LEN, FrameHeader, FrameLimits, Response, decode_response_message};

/// A reply: the message and the payload, in the buffer its caller registered.
pub(super) type Received = (Response, BytesMut);

/// Where a reply goes once read: its caller, and the buffer its payload lands in.
#[derive(Debug)]
pub(super) struct PendingCall {
    pub(super) tx: oneshot::Sender<TransportResult<Received>>,
    pub(super) recv: BytesMut,
}

/// Calls waiting for replies, by request id.
pub(super) type Pending = parking_lot::Mutex<std::collections::HashMap<u64, PendingCall>>;

/// A reply whose message is read and whose payload is being read.
#[derive(Debug)]
struct Body {
    id: u64,
    message: Response,
    payload: BytesMut,
    target_len: usize,
    tx: Option<oneshot::Sender<TransportResult<Received>>>,
}

/// The read half of a connection and the frame being read from it.
#[derive(Debug)]
pub(super) struct ReplyReader {
    stream: BufReader<OwnedReadHalf>,
    limits: FrameLimits,
    head: [u8; FRAME_HEADER_LEN],
    head_filled: usize,
    message: Option<(FrameHeader, AlignedVec, usize)>,
    body: Option<Body>,
}

impl ReplyReader {
    pub(super) fn new(stream: BufReader<OwnedReadHalf>, limits: FrameLimits) -> Self {
        ReplyReader {
            stream,
            limits,
            head: [0; FRAME_HEADER_LEN],
            head_filled: 0,
            message: None,
            body: None,
        }
    }

    /// Read until one whole reply is in. Returns it when it answers request `mine`; otherwise
    /// hands it to its caller (or drops it, when the caller has gone) and returns `None`.
    ///
    /// Cancel-safe: dropping the future loses no bytes of the stream.
    ///
    /// # Errors
    /// I/O errors, the end of the stream ([`TransportError::Closed`]), and bad frames: the
    /// connection is then unusable.
    pub(super) async fn next(&mut self, pending: &Pending, mine: u64) -> TransportResult<Option<Received>> {
        if self.body.is_none() {
            if self.message.is_none() {
                self.read_head().await?;
            }
            self.read_message(pending).await?;
        }
        let body = self.body.as_mut().expect("a body follows its message");
        while body.payload.len() < body.target_len {
            let want = body.target_len - body.payload.len();
            if self.stream.read_buf(&mut (&mut body.payload).limit(want)).await? == 0 {
                return Err(TransportError::Closed);
            }
        }
        let body = self.body.take().expect("checked above");
        if body.id == mine {
            return Ok(Some((body.message, body.payload)));
        }
        if let Some(tx) = body.tx {
            let _ = tx.send(Ok((body.message, body.payload)));
        }
        Ok(None)
    }

    async fn read_head(&mut self) -> TransportResult<()> {
        while self.head_filled < FRAME_HEADER_LEN {
            let n = self.stream.read(&mut self.head[self.head_filled..]).await?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            self.head_filled += n;
        }
        let header = FrameHeader::decode(&self.head, &self.limits)?;
        self.head_filled = 0;
        let mut message = AlignedVec::<16>::with_capacity(header.message_len as usize);
        message.resize(header.message_len as usize, 0);
        self.message = Some((header, message, 0));
        Ok(())
    }

    async fn read_message(&mut self, pending: &Pending) -> TransportResult<()> {
        let (header, buf, filled) = self.message.as_mut().expect("a message follows its header");
        while *filled < buf.len() {
            let n = self.stream.read(&mut buf[*filled..]).await?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            *filled += n;
        }
        let message = decode_response_message(header, buf)?;
        let (id, payload_len) = (header.request_id, header.payload_len as usize);
        self.message = None;
        // A call that timed out is gone: its reply's payload is read and dropped.
        let (tx, mut payload) = match pending.lock().remove(&id) {
            Some(call) => (Some(call.tx), call.recv),
            None => (None, BytesMut::new()),
        };
        payload.reserve(payload_len);
        let target_len = payload.len() + payload_len;
        self.body = Some(Body {
            id,
            message,
            payload,
            target_len,
            tx,
        });
        Ok(())
    }
}
