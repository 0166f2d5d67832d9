//! Pure helpers of the read path: how a range is cut into requests, and what a valid reply is.

use hoard_transport::wire::ReadReply;

/// Cut `[offset, end)` into pieces that stay inside one chunk and are at most `max_request`
/// bytes, in order.
pub(super) fn split(offset: u64, end: u64, chunk_size: u64, max_request: u64) -> Vec<(u64, u64)> {
    assert!(chunk_size > 0 && max_request > 0, "sizes must be positive");
    let mut pieces = Vec::new();
    let mut at = offset;
    while at < end {
        let chunk_end = (at / chunk_size + 1) * chunk_size;
        let piece_end = end.min(chunk_end).min(at + max_request);
        pieces.push((at, piece_end - at));
        at = piece_end;
    }
    pieces
}

/// Check a read reply against what was asked: the offset, the length (the whole range, clipped
/// to the file's size) and, when `verify`, the CRC32C of every whole page it carries.
pub(super) fn check_read(
    reply: &ReadReply,
    payload: &[u8],
    offset: u64,
    len: u64,
    size: u64,
    verify: bool,
) -> Result<(), String> {
    let expected = offset.saturating_add(len).min(size).saturating_sub(offset);
    if reply.offset != offset || reply.len != expected || payload.len() as u64 != expected {
        return Err(format!(
            "reply covers {} bytes at {} (payload {}), asked {expected} at {offset}",
            reply.len,
            reply.offset,
            payload.len()
        ));
    }
    if !verify || reply.pages.is_empty() {
        return Ok(());
    }
    let bytes = payload;
    let ps = reply.page_size.max(1);
    for page in &reply.pages {
        let start = page.index * ps;
        let page_len = ps.min(size.saturating_sub(start));
        let Some(rel) = start.checked_sub(offset) else {
            return Err(format!("page {} before the range", page.index));
        };
        let Some(slice) = bytes.get(rel as usize..(rel + page_len) as usize) else {
            return Err(format!("page {} outside the payload", page.index));
        };
        if crc32c::crc32c(slice) != page.crc32c {
            return Err(format!("page {} failed its checksum", page.index));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hoard_transport::wire::PageCrc;

    use super::*;

    #[test]
    fn split_respects_chunks_and_request_size() {
        assert_eq!(split(0, 10, 4, 100), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(split(3, 9, 4, 2), vec![(3, 1), (4, 2), (6, 2), (8, 1)]);
        assert!(split(5, 5, 4, 4).is_empty());
    }

    #[test]
    fn check_read_catches_short_and_corrupt_payloads() {
        let data = Bytes::from(vec![7u8; 8]);
        let crc = crc32c::crc32c(&data[4..8]);
        let reply = ReadReply {
            offset: 2,
            len: 6,
            page_size: 4,
            pages: vec![PageCrc { index: 1, crc32c: crc }],
            hit_pages: 0,
        };
        let payload = &data[2..8];
        assert_eq!(check_read(&reply, payload, 2, 100, 8, true), Ok(()));
        assert!(
            check_read(&reply, payload, 2, 3, 8, true).is_err(),
            "length must match the request"
        );
        let mut bad = data.to_vec();
        bad[5] = 0;
        let bad = &bad[2..8];
        assert!(
            check_read(&reply, bad, 2, 100, 8, true).is_err(),
            "corruption must be caught"
        );
        assert_eq!(check_read(&reply, bad, 2, 100, 8, false), Ok(()));
    }
}
