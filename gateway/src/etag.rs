//! ETags and conditional requests.
//!
//! An object's ETag is, in order:
//! 1. what the gateway computed when it wrote the bytes (S3's own form: the MD5 of a PUT's body,
//!    or the MD5 of the parts' MD5s and `-N` for a multipart upload), kept with the bytes in hoard
//!    under the content-bound key [`ETAG_KEY`] for as long as hoard holds the file;
//! 2. the under-store's ETag for an object of an S3 mount (hoard's version tag *is* it), so
//!    objects hoard only caches keep the ETag S3 gave them;
//! 3. otherwise hoard's version tag itself (a local directory's `size-mtime`, or the `hoard:`
//!    version of a file written through another interface): unique per content, not an MD5.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hoard_client::FileMeta;
use hoard_transport::wire::ETAG_KEY;
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// The ETag of an empty object (the MD5 of nothing), as S3 gives directory markers.
pub(crate) const EMPTY_ETAG: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The ETag of a file, unquoted (see the module's rules: an S3 mount's version tags are S3's
/// ETags, any other version tag stands for itself).
pub(crate) fn etag_of(meta: &FileMeta) -> String {
    if meta.homed
        && let Some((_, etag)) = meta.metadata.iter().flatten().find(|(k, _)| k == ETAG_KEY)
    {
        return etag.clone();
    }
    meta.version.replace('"', "")
}

/// The hex ETag of an MD5 digest.
pub(crate) fn md5_hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The digest an MD5 ETag (32 hex digits) stands for.
pub(crate) fn parse_md5_hex(etag: &str) -> Option<[u8; 16]> {
    let etag = etag.trim_matches('"');
    if etag.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// S3's ETag of a multipart object: the MD5 of its parts' MD5 digests, then `-` and the count.
pub(crate) fn multipart_etag(parts: &[[u8; 16]]) -> String {
    use s3s::crypto::Checksum as _;
    let mut md5 = s3s::crypto::Md5::new();
    for p in parts {
        md5.update(p);
    }
    format!("{}-{}", md5_hex(&md5.finalize()), parts.len())
}

/// A file's modification time as S3 shows it.
pub(crate) fn last_modified(meta: &FileMeta) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(meta.mtime_ms))
}

/// The conditional headers of a GET or HEAD (or of a copy's source).
#[derive(Debug, Default)]
pub(crate) struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Whether the object (`etag`, modified at `mtime_ms`) passes the conditions, as S3 (RFC 7232)
/// evaluates them: a failed `If-Match` or `If-Unmodified-Since` is `412 Precondition Failed`; a
/// matching `If-None-Match` or an unchanged `If-Modified-Since` is `304 Not Modified`
/// (`not_modified` false: 412 instead, as for a copy's source). `If-Match` that holds overrides
/// `If-Unmodified-Since`, and `If-None-Match` that holds overrides `If-Modified-Since`.
pub(crate) fn check(c: &Conditions<'_>, etag: &str, mtime_ms: u64, not_modified: bool) -> S3Result<()> {
    let modified_secs = mtime_ms / 1000;
    let since = |t: &Timestamp| unix_secs(t);
    let refused = || -> S3Error {
        if not_modified {
            let mut e = s3_error!(NotModified);
            let mut headers = hyper::HeaderMap::new();
            if let Ok(v) = format!("\"{etag}\"").parse() {
                headers.insert(hyper::header::ETAG, v);
            }
            e.set_headers(headers);
            e
        } else {
            S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "the source object did not match the conditions",
            )
        }
    };
    match c.if_match {
        Some(cond) if !matches(cond, etag) => {
            return Err(S3Error::with_message(
                S3ErrorCode::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
        Some(_) => {}
        None => {
            if let Some(t) = c.if_unmodified_since
                && modified_secs > since(t)
            {
                return Err(S3Error::with_message(
                    S3ErrorCode::PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold",
                ));
            }
        }
    }
    match c.if_none_match {
        Some(cond) if matches(cond, etag) => Err(refused()),
        Some(_) => Ok(()),
        None => match c.if_modified_since {
            Some(t) if modified_secs <= since(t) => Err(refused()),
            _ => Ok(()),
        },
    }
}

fn matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn unix_secs(t: &Timestamp) -> u64 {
    let at: SystemTime = time::OffsetDateTime::from(t.clone()).into();
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An ETag as s3s writes it (it adds the quotes).
pub(crate) fn strong(etag: String) -> ETag {
    ETag::Strong(etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: &str, homed: bool, etag: Option<&str>) -> FileMeta {
        FileMeta {
            path: "k".into(),
            size: 1,
            version: version.into(),
            mtime_ms: 1_700_000_000_000,
            homed,
            metadata: etag.map(|e| vec![(ETAG_KEY.to_owned(), e.to_owned())]),
        }
    }

    #[test]
    fn an_etag_comes_from_the_bytes_then_the_under_store_then_the_version() {
        assert_eq!(etag_of(&meta("hoard:1-2", true, Some("abc"))), "abc");
        // Only hoard's own files carry a trusted ETag key (one set behind its back is ignored).
        assert_eq!(etag_of(&meta("s3etag", false, Some("forged"))), "s3etag");
        assert_eq!(etag_of(&meta("12-345", false, None)), "12-345");
    }

    #[test]
    fn multipart_etags_are_the_md5_of_the_part_md5s() {
        use s3s::crypto::Checksum as _;
        let a = s3s::crypto::Md5::checksum(b"a");
        let b = s3s::crypto::Md5::checksum(b"b");
        let etag = multipart_etag(&[a, b]);
        assert!(etag.ends_with("-2"), "{etag}");
        assert_eq!(parse_md5_hex(&md5_hex(&a)), Some(a));
        assert_eq!(parse_md5_hex("xyz"), None);
        assert_eq!(md5_hex(&s3s::crypto::Md5::checksum(b"")), EMPTY_ETAG);
    }

    #[test]
    fn conditions_follow_rfc_7232_precedence() {
        let e = |s: &str| ETagCondition::ETag(ETag::Strong(s.into()));
        let mtime = 1_700_000_000_500;
        let before = Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        let after = Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let at = Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let ok = |c: Conditions<'_>| check(&c, "v1", mtime, true);
        let code = |c: Conditions<'_>| ok(c).expect_err("refused").code().clone();
        let (v1, v2) = (e("v1"), e("v2"));
        assert!(
            ok(Conditions {
                if_match: Some(&v1),
                ..Default::default()
            })
            .is_ok()
        );
        assert_eq!(
            code(Conditions {
                if_match: Some(&v2),
                ..Default::default()
            }),
            S3ErrorCode::PreconditionFailed
        );
        assert_eq!(
            code(Conditions {
                if_none_match: Some(&v1),
                ..Default::default()
            }),
            S3ErrorCode::NotModified
        );
        assert!(
            ok(Conditions {
                if_none_match: Some(&v2),
                if_modified_since: Some(&after),
                ..Default::default()
            })
            .is_ok()
        );
        // Modified at second precision: the same second is "not modified".
        assert_eq!(
            code(Conditions {
                if_modified_since: Some(&at),
                ..Default::default()
            }),
            S3ErrorCode::NotModified
        );
        assert!(
            ok(Conditions {
                if_modified_since: Some(&before),
                ..Default::default()
            })
            .is_ok()
        );
        assert_eq!(
            code(Conditions {
                if_unmodified_since: Some(&before),
                ..Default::default()
            }),
            S3ErrorCode::PreconditionFailed
        );
        // If-Match holding overrides If-Unmodified-Since.
        assert!(
            ok(Conditions {
                if_match: Some(&v1),
                if_unmodified_since: Some(&before),
                ..Default::default()
            })
            .is_ok()
        );
        let any = ETagCondition::Any;
        assert!(
            ok(Conditions {
                if_match: Some(&any),
                ..Default::default()
            })
            .is_ok()
        );
        let copy = check(
            &Conditions {
                if_none_match: Some(&v1),
                ..Default::default()
            },
            "v1",
            mtime,
            false,
        );
        assert_eq!(copy.expect_err("refused").code(), &S3ErrorCode::PreconditionFailed);
    }
}
