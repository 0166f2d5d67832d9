//! What an S3 object carries besides its bytes, and where hoard keeps it.
//!
//! - User metadata (`x-amz-meta-*`) is the file's user metadata, as everywhere in hoard (and the
//!   under-store object's, once persisted).
//! - The headers S3 keeps with an object (`Content-Type`, `Content-Encoding`, `Cache-Control`,
//!   `Content-Disposition`, `Content-Language`, `Expires`) are user metadata under `hoard-*`
//!   keys: the under-store keeps them as user metadata too, so a reader going to S3 directly sees
//!   them as `x-amz-meta-hoard-*` and the object's own `Content-Type` is S3's default.
//! - The ETag and a checksum the client sent (`x-amz-checksum-*`) describe the bytes: they are
//!   content-bound keys, kept by hoard with those bytes only.
//!
//! Keys starting with `hoard-` are hoard's: a client cannot set them as user metadata.

use std::collections::HashMap;

use hoard_client::{FileMeta, Metadata};
use hoard_transport::wire::{CHECKSUM_KEY_PREFIX, ETAG_KEY};
use s3s::dto::Checksum;
use s3s::{S3Error, S3ErrorCode, S3Result};

const RESERVED: &str = "hoard-";
const CONTENT_TYPE: &str = "hoard-content-type";
const CONTENT_ENCODING: &str = "hoard-content-encoding";
const CONTENT_DISPOSITION: &str = "hoard-content-disposition";
const CONTENT_LANGUAGE: &str = "hoard-content-language";
const CACHE_CONTROL: &str = "hoard-cache-control";
const EXPIRES: &str = "hoard-expires";

/// The headers S3 keeps with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// `Expires`, as the client sent it (an HTTP date).
    pub expires: Option<String>,
}

impl Headers {
    fn pairs(&self) -> [(&'static str, &Option<String>); 6] {
        [
            (CONTENT_TYPE, &self.content_type),
            (CONTENT_ENCODING, &self.content_encoding),
            (CONTENT_DISPOSITION, &self.content_disposition),
            (CONTENT_LANGUAGE, &self.content_language),
            (CACHE_CONTROL, &self.cache_control),
            (EXPIRES, &self.expires),
        ]
    }

    /// The headers kept in a file's metadata.
    pub(crate) fn of(meta: &FileMeta) -> Headers {
        let get = |key: &str| {
            meta.metadata
                .iter()
                .flatten()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        Headers {
            content_type: get(CONTENT_TYPE),
            content_encoding: get(CONTENT_ENCODING),
            content_disposition: get(CONTENT_DISPOSITION),
            content_language: get(CONTENT_LANGUAGE),
            cache_control: get(CACHE_CONTROL),
            expires: get(EXPIRES),
        }
    }
}

/// The metadata a new object is stored with: the client's user metadata and the headers.
///
/// # Errors
/// `InvalidArgument` for a user key starting with `hoard-`.
pub(crate) fn stored(user: Option<&HashMap<String, String>>, headers: &Headers) -> S3Result<Metadata> {
    let mut out = Metadata::new();
    for (k, v) in user.into_iter().flatten() {
        if k.starts_with(RESERVED) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("metadata keys starting with `{RESERVED}` are hoard's own: x-amz-meta-{k}"),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    for (key, value) in headers.pairs() {
        if let Some(v) = value {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Ok(out)
}

/// The user metadata to show as `x-amz-meta-*` (hoard's own keys left out).
pub(crate) fn user(meta: &FileMeta) -> Option<HashMap<String, String>> {
    let shown: HashMap<String, String> = meta
        .metadata
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(RESERVED))
        .cloned()
        .collect();
    (!shown.is_empty()).then_some(shown)
}

/// A file's metadata as pairs keyed for [`hoard_client::Client::compose`], without the keys that
/// describe its bytes.
pub(crate) fn without_content(meta: &FileMeta) -> Metadata {
    meta.metadata
        .iter()
        .flatten()
        .filter(|(k, _)| !hoard_transport::wire::is_content_bound(k))
        .cloned()
        .collect()
}

/// The content-bound keys of new bytes: their ETag and the checksum the client sent.
pub(crate) fn content(etag: &str, checksum: &Checksum) -> Vec<(String, String)> {
    let mut out = vec![(ETAG_KEY.to_owned(), etag.to_owned())];
    for (name, value) in checksum_pairs(checksum) {
        if let Some(v) = value {
            out.push((format!("{CHECKSUM_KEY_PREFIX}{name}"), v.clone()));
        }
    }
    out
}

/// The checksum stored with a file's bytes.
pub(crate) fn checksum(meta: &FileMeta) -> Checksum {
    let get = |name: &str| {
        let key = format!("{CHECKSUM_KEY_PREFIX}{name}");
        meta.homed
            .then(|| {
                meta.metadata
                    .iter()
                    .flatten()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
            })
            .flatten()
    };
    checksum_by_name(get)
}

/// A checksum of the values `get` gives for each algorithm's lowercase name.
pub(crate) fn checksum_by_name(get: impl Fn(&str) -> Option<String>) -> Checksum {
    Checksum {
        checksum_crc32: get("crc32"),
        checksum_crc32c: get("crc32c"),
        checksum_crc64nvme: get("crc64nvme"),
        checksum_sha1: get("sha1"),
        checksum_sha256: get("sha256"),
        checksum_type: None,
    }
}

/// The algorithms of a checksum, by S3's lowercase names.
pub(crate) fn checksum_pairs(c: &Checksum) -> [(&'static str, &Option<String>); 5] {
    [
        ("crc32", &c.checksum_crc32),
        ("crc32c", &c.checksum_crc32c),
        ("crc64nvme", &c.checksum_crc64nvme),
        ("sha1", &c.checksum_sha1),
        ("sha256", &c.checksum_sha256),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_user_metadata_round_trip_and_hoard_keys_stay_hidden() {
        let headers = Headers {
            content_type: Some("text/csv".into()),
            cache_control: Some("no-cache".into()),
            ..Headers::default()
        };
        let user_in: HashMap<String, String> = [("team".to_owned(), "vision".to_owned())].into();
        let stored = stored(Some(&user_in), &headers).expect("valid");
        let mut pairs: Vec<(String, String)> = stored.into_iter().collect();
        pairs.extend(content("abc", &Checksum::default()));
        let meta = FileMeta {
            path: "k".into(),
            size: 0,
            version: "v".into(),
            mtime_ms: 0,
            homed: true,
            metadata: Some(pairs),
        };
        assert_eq!(Headers::of(&meta), headers);
        assert_eq!(user(&meta), Some(user_in));
        assert!(!without_content(&meta).contains_key(ETAG_KEY));
        let reserved: HashMap<String, String> = [("hoard-etag".to_owned(), "x".to_owned())].into();
        assert!(super::stored(Some(&reserved), &Headers::default()).is_err());
    }
}
