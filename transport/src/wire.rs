//! The wire protocol: what workers and clients say to each other, byte for byte.
//!
//! A frame is a fixed [`FrameHeader`] (magic, protocol version, message kind, request id,
//! lengths), an rkyv-archived [`Request`] or [`Response`], and an optional raw payload that
//! carries page bytes outside rkyv so they can land straight in the caller's buffer. Every
//! message received from a peer is validated with rkyv's checked access before use. The format
//! is described in `docs/wire-protocol.md`; keep the two in step.

mod frame;
mod message;
mod status;

pub use frame::{
    FRAME_HEADER_LEN, FrameHeader, FrameLimits, MAGIC, Outgoing, PROTOCOL_VERSION, RawFrame, decode_request,
    decode_response, decode_response_message, encode_message, read_frame, read_frame_head, read_payload_into,
};
pub use message::{
    CHECKSUM_KEY_PREFIX, ComposeRequest, ComposeSource, DeleteRequest, ETAG_KEY, ErrorReply, FileKey, FileMeta, Hello,
    HelloReply, LIST_AFTER_TOKEN, LeaseRequest, ListEntry, ListReply, ListRequest, LoadReply, LocateReply,
    MAX_READ_BYTES, MessageKind, PageCrc, PageLocation, PathRequest, RdmaConnected, RdmaEndpoint, RdmaRegion,
    RdmaWords, ReadReply, ReadRequest, RegionInfo, RenameRequest, Request, Response, STAGING_DIR, SetMetadataRequest,
    ShmOffer, StatRequest, WorkerStatus, WriteDataRequest, WriteOpenRequest, WriteOpened, WriteSyncRequest,
    is_content_bound, is_staged,
};
pub use status::Status;

use bytes::Bytes;

/// Raw bytes that travel after a frame's message: page data, in one or more pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload(pub Vec<Bytes>);

impl Payload {
    /// A payload of one piece.
    pub fn single(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Payload(Vec::new())
        } else {
            Payload(vec![bytes])
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|b| b.len() as u64).sum()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Bytes::is_empty)
    }

    /// The bytes as one buffer; copies only when there is more than one piece.
    pub fn into_contiguous(mut self) -> Bytes {
        match self.0.len() {
            0 => Bytes::new(),
            1 => self.0.pop().expect("length checked above"),
            _ => {
                let mut out = bytes::BytesMut::with_capacity(self.len() as usize);
                for piece in &self.0 {
                    out.extend_from_slice(piece);
                }
                out.freeze()
            }
        }
    }
}

/// A reply to one request: the message and its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The archived answer, already validated and deserialised.
    pub message: Response,
    /// Raw bytes after it (page data of a read).
    pub payload: Payload,
}

impl Reply {
    /// A reply without payload.
    pub fn message(message: Response) -> Self {
        Reply {
            message,
            payload: Payload::default(),
        }
    }

    /// An error reply.
    pub fn error(status: Status, message: impl Into<String>) -> Self {
        Reply::message(Response::Error(ErrorReply {
            status: status as u16,
            message: message.into(),
        }))
    }
}
