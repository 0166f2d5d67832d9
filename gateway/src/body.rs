//! Bodies in both directions, streamed: a GET's body is read from the cluster piece by piece
//! with a few pieces in flight, and a PUT's body goes into a hoard writer as it arrives, hashed on
//! the way (MD5 for the ETag and `Content-MD5`, plus any `x-amz-checksum-*` the client declared).
//! Neither ever holds a whole object.

use std::ops::Range;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hoard_client::{OpenFile, Writer};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::errors::{self, Subject};
use crate::etag;
use crate::meta::checksum_pairs;

/// The byte pieces of `range`: the first at most `first` bytes, each next one four times the
/// one before, up to `piece` bytes. Small first reads keep the first bytes quick: the reads ahead
/// of the client (and their copies) start small too.
pub(crate) fn pieces(range: Range<u64>, first: u64, piece: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = range.start;
    let mut size = first.clamp(1, piece.max(1));
    while at < range.end {
        let end = range.end.min(at + size);
        out.push(at..end);
        at = end;
        size = (size * 4).min(piece.max(1));
    }
    out
}

/// The bytes of `range` of an opened file version, as a body stream. The first piece is read
/// alone, so nothing competes with the first bytes; the rest are read `parallel` pieces ahead.
pub(crate) fn file_stream(
    file: OpenFile,
    range: Range<u64>,
    first: u64,
    piece: u64,
    parallel: usize,
) -> impl Stream<Item = Result<Bytes, hoard_client::ClientError>> + Send + 'static {
    let mut all = pieces(range, first, piece).into_iter();
    let head = all.next();
    let read = move |file: OpenFile, r: Range<u64>| async move { file.read(r.start, r.end - r.start).await };
    let first_file = file.clone();
    futures::stream::iter(head)
        .then(move |r| read(first_file.clone(), r))
        .chain(
            futures::stream::iter(all)
                .map(move |r| read(file.clone(), r))
                .buffered(parallel.max(1)),
        )
}

/// A body of exactly `len` bytes (s3s wants a `Sync` stream; the client's is `Send`).
pub(crate) fn blob(
    stream: impl Stream<Item = Result<Bytes, hoard_client::ClientError>> + Send + 'static,
) -> StreamingBlob {
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(stream))
}

/// What was received of a request body.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes received.
    pub len: u64,
    /// MD5 of them.
    pub md5: [u8; 16],
    /// The checksums the client declared, computed.
    pub checksum: Checksum,
}

impl Received {
    /// The ETag S3 gives these bytes as a whole object or part: their MD5.
    pub(crate) fn etag(&self) -> String {
        etag::md5_hex(&self.md5)
    }
}

/// What a body must turn out to be.
#[derive(Debug, Default)]
pub(crate) struct Expect<'a> {
    /// `Content-Length` (decoded length of an aws-chunked body).
    pub len: Option<i64>,
    /// `Content-MD5` (base64).
    pub md5: Option<&'a str>,
    /// `x-amz-checksum-*` headers (base64), and the declared algorithm.
    pub checksum: Checksum,
    pub algorithm: Option<&'a ChecksumAlgorithm>,
    /// Most bytes accepted.
    pub max: u64,
}

/// Stream body chunks into `writer`, hashing them; the caller aborts the writer on an error.
///
/// # Errors
/// The body's own error (`IncompleteBody`, `SignatureDoesNotMatch`, ...), `EntityTooLarge`,
/// or the client's error writing the bytes.
pub(crate) async fn ingest(
    mut chunks: impl Stream<Item = S3Result<Bytes>> + Unpin,
    writer: &mut Writer,
    expect: &Expect<'_>,
) -> S3Result<Received> {
    let mut md5 = s3s::crypto::Md5::new();
    let mut hasher = hasher_for(expect);
    let mut len = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        len += chunk.len() as u64;
        if len > expect.max {
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                format!("the body is larger than the {} bytes allowed", expect.max),
            ));
        }
        md5.update(&chunk);
        hasher.update(&chunk);
        writer
            .write_bytes(chunk)
            .await
            .map_err(|e| errors::from_client(&e, Subject::Object))?;
    }
    Ok(Received {
        len,
        md5: md5.finalize(),
        checksum: hasher.finalize(),
    })
}

/// Check what was received against what the request said it would be; `trailer` holds the
/// checksums that came after an aws-chunked body.
///
/// # Errors
/// `IncompleteBody` (length), `InvalidDigest` (a `Content-MD5` that is no MD5), `BadDigest` (a
/// digest or checksum that does not match).
pub(crate) fn verify(got: &Received, expect: &Expect<'_>, trailer: &Checksum) -> S3Result<()> {
    if let Some(n) = expect.len
        && u64::try_from(n).ok() != Some(got.len)
    {
        return Err(S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("Content-Length said {n} bytes, the body had {}", got.len),
        ));
    }
    if let Some(md5) = expect.md5 {
        use base64::Engine as _;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(md5.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
        if digest != got.md5 {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    for (sent, computed) in [&expect.checksum, trailer]
        .into_iter()
        .flat_map(|c| checksum_pairs(c).into_iter().zip(checksum_pairs(&got.checksum)))
    {
        if let (name, Some(sent)) = sent
            && computed.1.as_ref() != Some(sent)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    name.to_uppercase()
                ),
            ));
        }
    }
    Ok(())
}

/// Hashers for every checksum the request declared (by value or by algorithm).
fn hasher_for(expect: &Expect<'_>) -> ChecksumHasher {
    let declared = |name: &str, value: &Option<String>| {
        value.is_some() || expect.algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name))
    };
    let c = &expect.checksum;
    ChecksumHasher {
        crc32: declared("crc32", &c.checksum_crc32).then(s3s::crypto::Crc32::new),
        crc32c: declared("crc32c", &c.checksum_crc32c).then(s3s::crypto::Crc32c::new),
        sha1: declared("sha1", &c.checksum_sha1).then(s3s::crypto::Sha1::new),
        sha256: declared("sha256", &c.checksum_sha256).then(s3s::crypto::Sha256::new),
        crc64nvme: declared("crc64nvme", &c.checksum_crc64nvme).then(s3s::crypto::Crc64Nvme::new),
    }
}

/// The checksums in an aws-chunked body's trailer.
pub(crate) fn trailer_checksum(headers: Option<&hyper::HeaderMap>) -> Checksum {
    crate::meta::checksum_by_name(|name| {
        headers
            .and_then(|h| h.get(format!("x-amz-checksum-{name}")))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// Only the checksums the client sent (by header or trailer), for storing with the bytes.
pub(crate) fn sent_checksum(got: &Received, expect: &Expect<'_>, trailer: &Checksum) -> Checksum {
    let keep = |sent: &Option<String>, trailed: &Option<String>, computed: &Option<String>| {
        (sent.is_some() || trailed.is_some())
            .then(|| computed.clone())
            .flatten()
    };
    let (e, t, g) = (&expect.checksum, trailer, &got.checksum);
    Checksum {
        checksum_crc32: keep(&e.checksum_crc32, &t.checksum_crc32, &g.checksum_crc32),
        checksum_crc32c: keep(&e.checksum_crc32c, &t.checksum_crc32c, &g.checksum_crc32c),
        checksum_crc64nvme: keep(&e.checksum_crc64nvme, &t.checksum_crc64nvme, &g.checksum_crc64nvme),
        checksum_sha1: keep(&e.checksum_sha1, &t.checksum_sha1, &g.checksum_sha1),
        checksum_sha256: keep(&e.checksum_sha256, &t.checksum_sha256, &g.checksum_sha256),
        checksum_type: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_start_small_and_cover_the_range_exactly() {
        assert_eq!(pieces(0..10, 3, 4), vec![0..3, 3..7, 7..10]);
        assert_eq!(pieces(0..100, 2, 32), vec![0..2, 2..10, 10..42, 42..74, 74..100]);
        assert_eq!(pieces(5..6, 3, 4), vec![5..6]);
        assert!(pieces(7..7, 3, 4).is_empty());
    }

    #[test]
    fn digests_and_checksums_are_checked() {
        use base64::Engine as _;
        let data = b"hello world";
        let mut hasher = ChecksumHasher {
            crc32: Some(s3s::crypto::Crc32::new()),
            ..Default::default()
        };
        hasher.update(data);
        let got = Received {
            len: data.len() as u64,
            md5: s3s::crypto::Md5::checksum(data),
            checksum: hasher.finalize(),
        };
        let good_md5 = base64::engine::general_purpose::STANDARD.encode(got.md5);
        let good = Expect {
            len: Some(11),
            md5: Some(&good_md5),
            checksum: Checksum {
                checksum_crc32: got.checksum.checksum_crc32.clone(),
                ..Checksum::default()
            },
            ..Expect::default()
        };
        verify(&got, &good, &Checksum::default()).expect("matches");
        let code = |e: &Expect<'_>, t: &Checksum| verify(&got, e, t).expect_err("refused").code().clone();
        let short = Expect {
            len: Some(12),
            ..Expect::default()
        };
        assert_eq!(code(&short, &Checksum::default()), S3ErrorCode::IncompleteBody);
        let bad_md5 = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        let wrong = Expect {
            md5: Some(&bad_md5),
            ..Expect::default()
        };
        assert_eq!(code(&wrong, &Checksum::default()), S3ErrorCode::BadDigest);
        let not_md5 = Expect {
            md5: Some("bm90"),
            ..Expect::default()
        };
        assert_eq!(code(&not_md5, &Checksum::default()), S3ErrorCode::InvalidDigest);
        let trailer = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            ..Checksum::default()
        };
        assert_eq!(code(&Expect::default(), &trailer), S3ErrorCode::BadDigest);
    }
}
