//! Frame format: a fixed 24-byte little-endian header, the archived message, the raw payload.
//!
//! ```text
//! offset  size  field
//!      0     4  magic          0x3144_5248 ("HRD1" on the wire)
//!      4     2  version        PROTOCOL_VERSION
//!      6     2  kind           MessageKind
//!      8     8  request_id     echoed by the reply
//!     16     4  message_len    bytes of the rkyv archive that follows
//!     20     4  payload_len    raw bytes after the archive
//! ```
//!
//! Reading is defensive: lengths are checked against [`FrameLimits`] before any allocation, and
//! the archive is validated (bytecheck) before anything looks at it.

use bytes::{BufMut, Bytes, BytesMut};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::message::{ArchivedRequest, ArchivedResponse, Request, Response};
use crate::error::{TransportError, TransportResult};

/// The first four bytes of every frame ("HRD1" on the wire).
pub const MAGIC: u32 = u32::from_le_bytes(*b"HRD1");
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 6;
/// Length of [`FrameHeader`] on the wire.
pub const FRAME_HEADER_LEN: usize = 24;

/// Size limits for frames received from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest archived message accepted.
    pub max_message_bytes: u32,
    /// Largest payload accepted.
    pub max_payload_bytes: u32,
}

impl FrameLimits {
    /// Limits for the first frame of a connection, before the peer is authenticated: a small
    /// message and no payload, so that nobody can make a worker allocate before the handshake.
    pub const HANDSHAKE: FrameLimits = FrameLimits {
        max_message_bytes: 16 << 10,
        max_payload_bytes: 0,
    };
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_message_bytes: 1 << 20,
            max_payload_bytes: 256 << 20,
        }
    }
}

/// The fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Protocol version of the sender.
    pub version: u16,
    /// [`MessageKind`](super::MessageKind) of the message.
    pub kind: u16,
    /// Matches a reply to its request.
    pub request_id: u64,
    /// Length of the archived message.
    pub message_len: u32,
    /// Length of the raw payload.
    pub payload_len: u32,
}

impl FrameHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        out[6..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..16].copy_from_slice(&self.request_id.to_le_bytes());
        out[16..20].copy_from_slice(&self.message_len.to_le_bytes());
        out[20..24].copy_from_slice(&self.payload_len.to_le_bytes());
        out
    }

    /// Parse and check a header: magic, version and lengths against `limits`.
    ///
    /// # Errors
    /// [`TransportError::BadMagic`], [`TransportError::VersionMismatch`],
    /// [`TransportError::FrameTooLarge`].
    pub fn decode(buf: &[u8; FRAME_HEADER_LEN], limits: &FrameLimits) -> TransportResult<FrameHeader> {
        let u16_at = |at: usize| u16::from_le_bytes([buf[at], buf[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(TransportError::BadMagic { found: magic });
        }
        let version = u16_at(4);
        if version != PROTOCOL_VERSION {
            return Err(TransportError::VersionMismatch {
                found: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&buf[8..16]);
        let header = FrameHeader {
            version,
            kind: u16_at(6),
            request_id: u64::from_le_bytes(id),
            message_len: u32_at(16),
            payload_len: u32_at(20),
        };
        if header.message_len > limits.max_message_bytes {
            let (len, limit) = (header.message_len.into(), limits.max_message_bytes.into());
            return Err(TransportError::FrameTooLarge {
                what: "message",
                len,
                limit,
            });
        }
        if header.payload_len > limits.max_payload_bytes {
            let (len, limit) = (header.payload_len.into(), limits.max_payload_bytes.into());
            return Err(TransportError::FrameTooLarge {
                what: "payload",
                len,
                limit,
            });
        }
        Ok(header)
    }
}

/// A received frame whose header has been checked but whose message is not yet validated.
#[derive(Debug)]
pub struct RawFrame {
    /// The checked header.
    pub header: FrameHeader,
    /// The archived message, aligned for rkyv access.
    pub message: AlignedVec,
    /// The raw payload.
    pub payload: Bytes,
}

/// Read one frame. `Ok(None)` when the peer closed the connection cleanly between frames.
///
/// # Errors
/// I/O errors, an end of stream inside a frame ([`TransportError::Closed`]), and the header
/// checks of [`FrameHeader::decode`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> TransportResult<Option<RawFrame>> {
    let Some((header, message)) = read_frame_head(reader, limits).await? else {
        return Ok(None);
    };
    let payload = read_payload_into(reader, header.payload_len, BytesMut::new()).await?;
    Ok(Some(RawFrame {
        header,
        message,
        payload: payload.freeze(),
    }))
}

/// Read a frame's header and archived message, leaving its payload (`header.payload_len`
/// bytes) unread, so that the caller can pick where it lands. `Ok(None)` on a clean end of
/// stream between frames.
///
/// # Errors
/// As [`read_frame`].
pub async fn read_frame_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> TransportResult<Option<(FrameHeader, AlignedVec)>> {
    let mut head = [0u8; FRAME_HEADER_LEN];
    let first = reader.read(&mut head).await?;
    if first == 0 {
        return Ok(None);
    }
    read_exact_or_closed(reader, &mut head[first..]).await?;
    let header = FrameHeader::decode(&head, limits)?;
    let mut message = AlignedVec::<16>::with_capacity(header.message_len as usize);
    message.resize(header.message_len as usize, 0);
    read_exact_or_closed(reader, &mut message[..]).await?;
    Ok(Some((header, message)))
}

/// Read `len` payload bytes, appending them to `buf`. They land in `buf`'s spare capacity when
/// it has room (no allocation, no copy beyond the socket's); otherwise `buf` grows.
///
/// # Errors
/// I/O errors; [`TransportError::Closed`] when the stream ends first.
pub async fn read_payload_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: u32,
    mut buf: BytesMut,
) -> TransportResult<BytesMut> {
    let target = buf.len() + len as usize;
    buf.reserve(len as usize);
    while buf.len() < target {
        let want = target - buf.len();
        if reader.read_buf(&mut (&mut buf).limit(want)).await? == 0 {
            return Err(TransportError::Closed);
        }
    }
    Ok(buf)
}

async fn read_exact_or_closed<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> TransportResult<()> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(TransportError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Something to encode into a frame.
#[derive(Debug, Clone, Copy)]
pub enum Outgoing<'a> {
    /// A request (client to worker).
    Request(&'a Request),
    /// A response (worker to client).
    Response(&'a Response),
}

/// Header and archived message of a frame, ready to be followed by `payload_len` raw bytes.
///
/// # Errors
/// [`TransportError::Encode`] when serialisation fails, or the message is over 4 GiB.
pub fn encode_message(request_id: u64, message: Outgoing<'_>, payload_len: u64) -> TransportResult<Vec<u8>> {
    let (kind, archived) = match message {
        Outgoing::Request(m) => (m.kind(), rkyv::to_bytes::<rancor::Error>(m)),
        Outgoing::Response(m) => (m.kind(), rkyv::to_bytes::<rancor::Error>(m)),
    };
    let archived = archived.map_err(|e| TransportError::Encode(e.to_string()))?;
    let too_big = |what| TransportError::Encode(format!("{what} over 4 GiB"));
    let header = FrameHeader {
        version: PROTOCOL_VERSION,
        kind: kind as u16,
        request_id,
        message_len: u32::try_from(archived.len()).map_err(|_| too_big("message"))?,
        payload_len: u32::try_from(payload_len).map_err(|_| too_big("payload"))?,
    };
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + archived.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&archived);
    Ok(out)
}

/// Validate and deserialise a request frame's message.
///
/// # Errors
/// [`TransportError::Malformed`] when validation fails or the kind disagrees with the header.
pub fn decode_request(frame: &RawFrame) -> TransportResult<Request> {
    let kind = frame.header.kind;
    let malformed = |reason: String| TransportError::Malformed { kind, reason };
    let archived =
        rkyv::access::<ArchivedRequest, rancor::Error>(&frame.message).map_err(|e| malformed(e.to_string()))?;
    if archived.kind() as u16 != kind {
        return Err(malformed(format!(
            "header kind disagrees with message {:?}",
            archived.kind()
        )));
    }
    rkyv::deserialize::<Request, rancor::Error>(archived).map_err(|e| malformed(e.to_string()))
}

/// Validate and deserialise a response frame's message.
///
/// # Errors
/// [`TransportError::Malformed`] when validation fails or the kind disagrees with the header.
pub fn decode_response(frame: &RawFrame) -> TransportResult<Response> {
    decode_response_message(&frame.header, &frame.message)
}

/// Validate and deserialise the archived message of a response whose header was read with
/// [`read_frame_head`].
///
/// # Errors
/// As [`decode_response`].
pub fn decode_response_message(header: &FrameHeader, message: &AlignedVec) -> TransportResult<Response> {
    let kind = header.kind;
    let malformed = |reason: String| TransportError::Malformed { kind, reason };
    let archived = rkyv::access::<ArchivedResponse, rancor::Error>(message).map_err(|e| malformed(e.to_string()))?;
    if archived.kind() as u16 != kind {
        return Err(malformed(format!(
            "header kind disagrees with message {:?}",
            archived.kind()
        )));
    }
    rkyv::deserialize::<Response, rancor::Error>(archived).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FileKey, ReadRequest, StatRequest};

    fn frame_bytes(id: u64, req: &Request, payload: &[u8]) -> Vec<u8> {
        let mut bytes = encode_message(id, Outgoing::Request(req), payload.len() as u64).expect("encode");
        bytes.extend_from_slice(payload);
        bytes
    }

    async fn read_one(bytes: &[u8]) -> TransportResult<Option<RawFrame>> {
        let mut cursor = bytes;
        read_frame(&mut cursor, &FrameLimits::default()).await
    }

    #[tokio::test]
    async fn round_trip_with_payload() {
        let file = FileKey {
            mount: "m".into(),
            path: "a/b".into(),
            version: "v1".into(),
        };
        let req = Request::Read(ReadRequest {
            file,
            file_size: 10,
            offset: 2,
            len: 5,
        });
        let bytes = frame_bytes(42, &req, b"hello");
        let frame = read_one(&bytes).await.expect("read").expect("a frame");
        assert_eq!(frame.header.request_id, 42);
        assert_eq!(&frame.payload[..], b"hello");
        assert_eq!(decode_request(&frame).expect("valid"), req);
        assert!(read_one(&[]).await.expect("clean eof").is_none());
    }

    #[tokio::test]
    async fn rejects_bad_magic_version_and_size() {
        let req = Request::Stat(StatRequest {
            mount: "m".into(),
            path: "p".into(),
            fresh: false,
        });
        let good = frame_bytes(1, &req, b"");
        let mut bad = good.clone();
        bad[0] ^= 0xff;
        assert!(matches!(read_one(&bad).await, Err(TransportError::BadMagic { .. })));
        let mut bad = good.clone();
        bad[4] = 9;
        assert!(matches!(
            read_one(&bad).await,
            Err(TransportError::VersionMismatch { found: 9, .. })
        ));
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_one(&bad).await,
            Err(TransportError::FrameTooLarge { what: "payload", .. })
        ));
        let truncated = &good[..good.len() - 1];
        assert!(matches!(read_one(truncated).await, Err(TransportError::Closed)));
    }

    #[tokio::test]
    async fn rejects_corrupt_archive_and_kind_mismatch() {
        let req = Request::Stat(StatRequest {
            mount: "m".into(),
            path: "p".into(),
            fresh: false,
        });
        let mut bytes = frame_bytes(1, &req, b"");
        // Claim it is a Read: the kind check must catch it.
        bytes[6..8].copy_from_slice(&20u16.to_le_bytes());
        let frame = read_one(&bytes).await.expect("read").expect("frame");
        assert!(matches!(
            decode_request(&frame),
            Err(TransportError::Malformed { kind: 20, .. })
        ));
        // Garble the archive: relative pointers now point outside the buffer.
        let mut bytes = frame_bytes(1, &req, b"");
        for b in &mut bytes[FRAME_HEADER_LEN..] {
            *b = 0xff;
        }
        let frame = read_one(&bytes).await.expect("read").expect("frame");
        assert!(matches!(decode_request(&frame), Err(TransportError::Malformed { .. })));
    }

    #[tokio::test]
    async fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let req = Request::Stat(StatRequest {
            mount: "mount".into(),
            path: "some/path".into(),
            fresh: false,
        });
        let good = frame_bytes(1, &req, b"");
        for _ in 0..2000 {
            let mut bytes = good.clone();
            let flips = rng.random_range(1..8);
            for _ in 0..flips {
                let at = rng.random_range(FRAME_HEADER_LEN..bytes.len());
                bytes[at] = rng.random();
            }
            if let Ok(Some(frame)) = read_one(&bytes).await {
                let _ = decode_request(&frame);
            }
        }
    }
}
