//! Applying an entry to the under-store: uploads built from segments (with server-side copies of
//! under-store bytes), directory markers, deletes.
//!
//! A file's bytes are a list of [`Segment`]s: spans of under-store objects (the old object of an
//! append, the source of a rename) and spans of journal blobs (bytes written through hoard).
//! [`plan`] turns them into one PUT (small files) or a multipart upload whose parts are either
//! server-side copies of an under-store span (`UploadPartCopy`, never downloaded) or bytes read
//! from blobs, each part but the last at least S3's 5 MiB minimum.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use hoard_ufs::{CompletedPart, MIN_PART_SIZE, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore};

use super::journal::Journal;
use super::namespace::Segment;

/// Largest server-side copy part (S3 allows 5 GiB; smaller parts copy in parallel).
const COPY_PART_MAX: u64 = 1 << 30;

/// Parts of one file uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// How to build an object from segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One PUT of these bytes (small objects).
    Put(Vec<Segment>),
    /// Server-side copy of a whole object.
    Copy {
        /// Source key.
        path: String,
    },
    /// A multipart upload, parts in order.
    Multipart(Vec<Part>),
}

/// One part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Server-side copy of an under-store span.
    Copy(Segment),
    /// Bytes read from these segments.
    Bytes(Vec<Segment>),
}

/// The plan for an object made of `segments` (`object_sizes` says whether a `Ufs` segment
/// covers its whole object, which allows a plain copy).
pub fn plan(segments: &[Segment], part_size: u64, whole_object: impl Fn(&Segment) -> bool) -> Plan {
    let total: u64 = segments.iter().map(Segment::len).sum();
    if let [seg @ Segment::Ufs { path, .. }] = segments
        && whole_object(seg)
    {
        return Plan::Copy { path: path.clone() };
    }
    if total < MIN_PART_SIZE {
        return Plan::Put(segments.iter().filter(|s| !s.is_empty()).cloned().collect());
    }
    let mut parts = Vec::new();
    let mut buf: Vec<Segment> = Vec::new();
    let mut buf_len = 0u64;
    for seg in segments.iter().filter(|s| !s.is_empty()) {
        let mut rest = seg.clone();
        if matches!(seg, Segment::Ufs { .. }) && seg.len() >= MIN_PART_SIZE {
            if buf_len > 0 {
                // Top the pending bytes up to a valid part with the head of this span, unless
                // that leaves too little of it to copy: then it all goes into bytes parts.
                let need = MIN_PART_SIZE.saturating_sub(buf_len);
                if rest.len() - need >= MIN_PART_SIZE {
                    let (head, tail) = split(&rest, need);
                    if let Some(head) = head {
                        buf.push(head);
                    }
                    rest = tail;
                    parts.push(Part::Bytes(std::mem::take(&mut buf)));
                    buf_len = 0;
                }
            }
            if buf_len == 0 {
                push_copies(&mut parts, rest);
                continue;
            }
        }
        // Bytes: cut full parts as they fill.
        let mut rest = Some(rest);
        while let Some(seg) = rest.take() {
            let room = part_size - buf_len;
            if seg.len() < room {
                buf_len += seg.len();
                buf.push(seg);
            } else {
                let (head, tail) = split(&seg, room);
                buf.extend(head);
                parts.push(Part::Bytes(std::mem::take(&mut buf)));
                buf_len = 0;
                rest = (!tail.is_empty()).then_some(tail);
            }
        }
    }
    if !buf.is_empty() {
        parts.push(Part::Bytes(buf));
    }
    Plan::Multipart(parts)
}

/// Copy parts of an under-store span, each at most [`COPY_PART_MAX`] and none but the last
/// shorter than the minimum part.
fn push_copies(parts: &mut Vec<Part>, mut seg: Segment) {
    while seg.len() > COPY_PART_MAX + MIN_PART_SIZE {
        let (head, tail) = split(&seg, COPY_PART_MAX);
        parts.extend(head.map(Part::Copy));
        seg = tail;
    }
    parts.push(Part::Copy(seg));
}

/// `seg` cut after `n` bytes: the head (none when `n` is 0) and the tail.
fn split(seg: &Segment, n: u64) -> (Option<Segment>, Segment) {
    let at = |start: u64, len: u64| (start, n.min(len), start + n.min(len), len - n.min(len));
    match seg {
        Segment::Ufs {
            path,
            version,
            start,
            len,
        } => {
            let (s1, l1, s2, l2) = at(*start, *len);
            let make = |start, len| Segment::Ufs {
                path: path.clone(),
                version: version.clone(),
                start,
                len,
            };
            ((l1 > 0).then(|| make(s1, l1)), make(s2, l2))
        }
        Segment::Blob { blob, start, len } => {
            let (s1, l1, s2, l2) = at(*start, *len);
            let make = |start, len| Segment::Blob {
                blob: *blob,
                start,
                len,
            };
            ((l1 > 0).then(|| make(s1, l1)), make(s2, l2))
        }
    }
}

/// The spans of `segments` covering bytes `[start, end)` of the file they make.
pub fn slice(segments: &[Segment], start: u64, end: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for seg in segments {
        let (seg_start, seg_end) = (at, at + seg.len());
        at = seg_end;
        if seg_end <= start || seg_start >= end {
            continue;
        }
        let skip = start.saturating_sub(seg_start);
        let keep = end.min(seg_end) - seg_start - skip;
        let (_, tail) = split(seg, skip);
        let (head, _) = split(&tail, keep);
        out.extend(head);
    }
    out
}

/// Reads the bytes of segments: blobs from the journal, spans from the under-store.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    /// The journal holding the blobs.
    pub journal: Arc<Journal>,
    /// The mount's under-store.
    pub ufs: Arc<dyn UnderStore>,
}

impl SegmentReader {
    /// The bytes of `segments`, concatenated.
    ///
    /// # Errors
    /// A missing blob or a failed under-store read (a changed source is `VersionMismatch`).
    pub async fn read(&self, segments: &[Segment]) -> UfsResult<Bytes> {
        let total: u64 = segments.iter().map(Segment::len).sum();
        let mut out = BytesMut::with_capacity(total as usize);
        for seg in segments {
            out.extend_from_slice(&self.read_one(seg).await?);
        }
        Ok(out.freeze())
    }

    async fn read_one(&self, seg: &Segment) -> UfsResult<Bytes> {
        match seg {
            Segment::Ufs {
                path,
                version,
                start,
                len,
            } => {
                let bytes = self.ufs.read_range(path, *start..start + len, Some(version)).await?;
                if bytes.len() as u64 != *len {
                    return Err(UfsError::VersionMismatch {
                        path: path.clone(),
                        expected: version.clone(),
                    });
                }
                Ok(bytes)
            }
            Segment::Blob { blob, start, len } => {
                let (journal, blob, start, len) = (self.journal.clone(), *blob, *start, *len);
                let path = format!("journal blob {blob:x}");
                tokio::task::spawn_blocking(move || read_blob(&journal, blob, start, len))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r)
                    .map_err(|source| UfsError::Io { path, source })
            }
        }
    }

    /// Build the object at `path` from `segments`, with user `metadata` (`None`: that of the
    /// under-store object the first segment comes from); returns its metadata.
    ///
    /// # Errors
    /// The under-store's error; a multipart upload that fails is aborted.
    pub async fn upload(
        &self,
        path: &str,
        segments: &[Segment],
        metadata: Option<&Metadata>,
        part_size: u64,
        whole_object: impl Fn(&Segment) -> bool,
        log: &(dyn Fn(&str, &str, bool) + Send + Sync),
    ) -> UfsResult<ObjectMeta> {
        let plan = plan(segments, part_size, whole_object);
        let metadata = match (metadata, &plan) {
            (Some(m), _) => Some(m.clone()),
            // A copy keeps its source's metadata by itself.
            (None, Plan::Copy { .. }) => None,
            (None, _) => Some(self.source_metadata(segments).await?),
        };
        let or_none = metadata.clone().unwrap_or_default();
        match plan {
            Plan::Copy { path: src } => self.ufs.copy_with(&src, path, metadata.as_ref()).await,
            Plan::Put(segs) => self.ufs.put_with(path, self.read(&segs).await?, &or_none).await,
            Plan::Multipart(parts) => {
                let upload_id = self.ufs.create_multipart_with(path, &or_none).await?;
                log(path, &upload_id, true);
                let result = self.finish_multipart(path, &upload_id, parts).await;
                log(path, &upload_id, false);
                result
            }
        }
    }

    /// The user metadata of the under-store object the first segment reads (none without one).
    async fn source_metadata(&self, segments: &[Segment]) -> UfsResult<Metadata> {
        match segments.first() {
            Some(Segment::Ufs { path, .. }) => Ok(self.ufs.stat(path).await?.metadata.unwrap_or_default()),
            _ => Ok(Metadata::new()),
        }
    }

    /// Upload the parts and complete; abort the upload when anything fails.
    async fn finish_multipart(&self, path: &str, upload_id: &str, parts: Vec<Part>) -> UfsResult<ObjectMeta> {
        let result = match self.upload_parts(path, upload_id, parts).await {
            Ok(done) => self.ufs.complete_multipart(path, upload_id, done).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.abort(path, upload_id).await;
        }
        result
    }

    async fn upload_parts(&self, path: &str, upload_id: &str, parts: Vec<Part>) -> UfsResult<Vec<CompletedPart>> {
        futures::stream::iter(parts.into_iter().enumerate())
            .map(|(i, part)| async move {
                let number = i as u32 + 1;
                match part {
                    Part::Copy(Segment::Ufs {
                        path: src,
                        version,
                        start,
                        len,
                    }) => {
                        self.ufs
                            .upload_part_copy(path, upload_id, number, &src, start..start + len, Some(&version))
                            .await
                    }
                    Part::Copy(blob) => {
                        let data = self.read(&[blob]).await?;
                        self.ufs.upload_part(path, upload_id, number, data).await
                    }
                    Part::Bytes(segs) => {
                        let data = self.read(&segs).await?;
                        self.ufs.upload_part(path, upload_id, number, data).await
                    }
                }
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn abort(&self, path: &str, upload_id: &str) {
        if let Err(e) = self.ufs.abort_multipart(path, upload_id).await {
            tracing::warn!(path, upload_id, "could not abort a failed multipart upload: {e}");
        }
    }
}

/// Bytes `[start, start + len)` of a blob.
pub fn read_blob(journal: &Journal, blob: u64, start: u64, len: u64) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(journal.blob_path(blob))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ufs(len: u64) -> Segment {
        Segment::Ufs {
            path: "old".into(),
            version: "v".into(),
            start: 0,
            len,
        }
    }

    fn blob(len: u64) -> Segment {
        Segment::Blob { blob: 1, start: 0, len }
    }

    fn sizes(plan: &Plan) -> Vec<(char, u64)> {
        match plan {
            Plan::Multipart(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Copy(s) => ('c', s.len()),
                    Part::Bytes(segs) => ('b', segs.iter().map(Segment::len).sum()),
                })
                .collect(),
            other => panic!("expected multipart, got {other:?}"),
        }
    }

    #[test]
    fn small_objects_are_rewritten_in_one_put() {
        let p = plan(&[ufs(MIB), blob(10)], 16 * MIB, |_| false);
        assert_eq!(p, Plan::Put(vec![ufs(MIB), blob(10)]));
    }

    #[test]
    fn a_rename_of_a_whole_object_is_a_server_side_copy() {
        let p = plan(&[ufs(3)], 16 * MIB, |_| true);
        assert_eq!(p, Plan::Copy { path: "old".into() });
    }

    #[test]
    fn an_append_copies_the_old_object_and_uploads_only_the_new_bytes() {
        let p = plan(&[ufs(100 * MIB), blob(3 * MIB)], 16 * MIB, |_| false);
        assert_eq!(sizes(&p), vec![('c', 100 * MIB), ('b', 3 * MIB)]);
        // A big append after a big object: bytes parts of the part size.
        let p = plan(&[ufs(6 * MIB), blob(40 * MIB)], 16 * MIB, |_| false);
        assert_eq!(
            sizes(&p),
            vec![('c', 6 * MIB), ('b', 16 * MIB), ('b', 16 * MIB), ('b', 8 * MIB)]
        );
    }

    #[test]
    fn pending_bytes_before_a_copy_are_topped_up_to_a_valid_part() {
        let p = plan(&[blob(MIB), ufs(20 * MIB), blob(1)], 16 * MIB, |_| false);
        assert_eq!(sizes(&p), vec![('b', 5 * MIB), ('c', 16 * MIB), ('b', 1)]);
        // Too little left to copy after topping up: the span goes into bytes parts.
        let p = plan(&[blob(MIB), ufs(8 * MIB)], 16 * MIB, |_| false);
        assert_eq!(sizes(&p), vec![('b', 9 * MIB)]);
    }

    #[test]
    fn every_part_but_the_last_is_at_least_the_minimum() {
        for (a, b, c) in [(1, 5, 1), (7, 9, 30), (0, 5, 5), (4, 6, 0), (33, 0, 2)] {
            let segs = [blob(a * MIB + 1), ufs(b * MIB), blob(c * MIB)];
            let total: u64 = segs.iter().map(Segment::len).sum();
            if let Plan::Multipart(parts) = plan(&segs, 8 * MIB, |_| false) {
                let s = sizes(&Plan::Multipart(parts));
                assert_eq!(s.iter().map(|(_, n)| n).sum::<u64>(), total, "{a} {b} {c}: {s:?}");
                assert!(
                    s[..s.len() - 1].iter().all(|(_, n)| *n >= MIN_PART_SIZE),
                    "{a} {b} {c}: {s:?}"
                );
            }
        }
    }

    #[test]
    fn slices_cut_segments_at_the_range() {
        let segs = [ufs(10), blob(10)];
        let s = slice(&segs, 5, 15);
        assert_eq!(s.iter().map(Segment::len).collect::<Vec<_>>(), vec![5, 5]);
        assert!(matches!(s[0], Segment::Ufs { start: 5, .. }));
        assert!(matches!(s[1], Segment::Blob { start: 0, len: 5, .. }));
        assert_eq!(
            slice(&segs, 12, 100),
            vec![Segment::Blob {
                blob: 1,
                start: 2,
                len: 8
            }]
        );
        assert!(slice(&segs, 20, 30).is_empty());
    }

    #[test]
    fn huge_copies_are_cut_into_parts() {
        let p = plan(&[ufs(3 * COPY_PART_MAX + MIB)], 16 * MIB, |_| false);
        assert_eq!(
            sizes(&p),
            vec![('c', COPY_PART_MAX), ('c', COPY_PART_MAX), ('c', COPY_PART_MAX + MIB)]
        );
    }
}
