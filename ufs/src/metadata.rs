//! User metadata of objects: S3's `x-amz-meta-*` headers.
//!
//! S3 keeps a small map of strings with every object, set when the object is written (put,
//! multipart create, copy with the `REPLACE` directive) and returned by `HeadObject`, never by
//! listings. hoard stores POSIX attributes of files written through a FUSE mount there (`mode`,
//! `uid`, `gid`, `mtime`: the keys s3fs uses), and the S3 endpoint passes users' own through.

use std::collections::BTreeMap;

use crate::{UfsError, UfsResult};

/// User metadata of an object: keys without the `x-amz-meta-` prefix, in lower case.
pub type Metadata = BTreeMap<String, String>;

/// Most bytes of user metadata (keys and values) one object carries: S3's limit.
pub const MAX_METADATA_BYTES: usize = 2048;

/// Checks that every store can keep `metadata` as it is: keys of lower-case ASCII letters,
/// digits, `-`, `_` and `.` (HTTP header names, which S3 lower-cases), values of printable ASCII
/// (what an HTTP header carries unencoded), at most [`MAX_METADATA_BYTES`] in all.
///
/// # Errors
/// [`UfsError::Invalid`] naming the first offending key.
pub fn validate_metadata(path: &str, metadata: &Metadata) -> UfsResult<()> {
    let mut total = 0;
    for (key, value) in metadata {
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !key_ok {
            return Err(UfsError::invalid(
                path,
                format!("metadata key {key:?}: only a-z, 0-9, '-', '_' and '.' are allowed"),
            ));
        }
        if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(UfsError::invalid(
                path,
                format!("metadata value of {key:?}: only printable ASCII is allowed"),
            ));
        }
        total += key.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(UfsError::invalid(
            path,
            format!("{total} bytes of metadata, more than {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(())
}

/// `metadata` as one line of `key=value` pairs separated by newlines: how the local store keeps
/// it in an extended attribute. Keys hold no `=` and values no newline (see
/// [`validate_metadata`]), so the encoding is unambiguous.
pub(crate) fn encode(metadata: &Metadata) -> String {
    metadata.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// The metadata [`encode`] wrote; lines that are not `key=value` are skipped.
pub(crate) fn decode(text: &str) -> Metadata {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(pairs: &[(&str, &str)]) -> Metadata {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn keys_values_and_size_are_checked() {
        assert!(validate_metadata("k", &md(&[("mode", "33188"), ("x-y_z.1", "a b=c")])).is_ok());
        for bad in [
            md(&[("Mode", "1")]),
            md(&[("", "1")]),
            md(&[("a b", "1")]),
            md(&[("m", "\n")]),
        ] {
            assert!(
                matches!(validate_metadata("k", &bad), Err(UfsError::Invalid { .. })),
                "{bad:?}"
            );
        }
        let big = md(&[("k", &"v".repeat(MAX_METADATA_BYTES))]);
        assert!(validate_metadata("k", &big).is_err());
    }

    #[test]
    fn encoding_round_trips() {
        let m = md(&[("mode", "41471"), ("target", "a=b/c"), ("empty", "")]);
        assert_eq!(decode(&encode(&m)), m);
        assert_eq!(decode(""), Metadata::new());
    }
}
