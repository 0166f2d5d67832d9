//! Mount URIs (`s3://bucket/prefix`, `file:///dir`) and opening the under-store they name.
//!
//! Users, configuration files and the CLI name an under-store by one string. Parsing it in one
//! place keeps every entry point accepting the same forms and failing with the same message.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{LocalUnderStore, S3Config, S3UnderStore, UfsError, UfsResult, UnderStore};

/// A parsed mount URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UfsUri {
    /// `s3://bucket/prefix`: the keys under `prefix` (possibly empty) of an S3 bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, without a leading `/`; empty for the whole bucket.
        prefix: String,
    },
    /// `file:///abs/dir`: a local directory.
    Local {
        /// Absolute path of the directory.
        root: PathBuf,
    },
}

impl UfsUri {
    /// Parses `s3://bucket[/prefix]` or `file:///absolute/path` (also `file://localhost/...`).
    ///
    /// # Errors
    /// [`UfsError::Config`] naming the URI, for any other form.
    pub fn parse(uri: &str) -> UfsResult<UfsUri> {
        let bad = |why: &str| UfsError::Config(format!("invalid under-store URI {uri:?}: {why}"));
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            if !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
                return Err(bad("a bucket name has only letters, digits, `-`, `.` and `_`"));
            }
            return Ok(UfsUri::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(bad("expected file:///absolute/path"));
            }
            return Ok(UfsUri::Local {
                root: PathBuf::from(path),
            });
        }
        Err(bad("expected s3://bucket/prefix or file:///absolute/path"))
    }

    /// Opens the store this URI names; `s3` configures S3 stores and is ignored for local ones.
    ///
    /// # Errors
    /// As [`S3UnderStore::new`] and [`LocalUnderStore::new`].
    pub async fn open(&self, s3: &S3Config) -> UfsResult<Arc<dyn UnderStore>> {
        Ok(match self {
            UfsUri::S3 { bucket, prefix } => Arc::new(S3UnderStore::new(bucket.clone(), prefix.clone(), s3).await?),
            UfsUri::Local { root } => Arc::new(LocalUnderStore::new(root)?),
        })
    }
}

impl fmt::Display for UfsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UfsUri::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            UfsUri::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            UfsUri::Local { root } => write!(f, "file://{}", root.display()),
        }
    }
}

impl std::str::FromStr for UfsUri {
    type Err = UfsError;

    fn from_str(s: &str) -> UfsResult<Self> {
        UfsUri::parse(s)
    }
}

/// Parses `uri` and opens the under-store it names.
///
/// # Errors
/// [`UfsError::Config`] for a malformed URI; otherwise as [`UfsUri::open`].
pub async fn open_uri(uri: &str, s3: &S3Config) -> UfsResult<Arc<dyn UnderStore>> {
    UfsUri::parse(uri)?.open(s3).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_and_file_uris() {
        let s3 = |bucket: &str, prefix: &str| UfsUri::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        assert_eq!(UfsUri::parse("s3://bucket").expect("parse"), s3("bucket", ""));
        assert_eq!(UfsUri::parse("s3://bucket/").expect("parse"), s3("bucket", ""));
        assert_eq!(
            UfsUri::parse("s3://my.bucket-1/some/prefix").expect("parse"),
            s3("my.bucket-1", "some/prefix")
        );
        let local = UfsUri::Local {
            root: PathBuf::from("/abs/dir"),
        };
        assert_eq!(UfsUri::parse("file:///abs/dir").expect("parse"), local);
        assert_eq!(UfsUri::parse("file://localhost/abs/dir").expect("parse"), local);
    }

    #[test]
    fn rejects_other_forms_naming_the_uri() {
        for uri in [
            "",
            "/abs/dir",
            "s3://",
            "s3:///prefix",
            "s3://bad bucket/x",
            "file://relative/x",
            "http://x/y",
        ] {
            match UfsUri::parse(uri) {
                Err(UfsError::Config(msg)) => assert!(msg.contains(&format!("{uri:?}")), "{msg}"),
                other => panic!("{uri:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn displays_back_to_the_same_uri() {
        for uri in ["s3://bucket", "s3://bucket/a/b", "file:///abs/dir"] {
            assert_eq!(UfsUri::parse(uri).expect("parse").to_string(), uri);
        }
    }

    #[tokio::test]
    async fn opens_a_local_directory() {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let uri = format!("file://{}", dir.path().join("store").display());
        let store = open_uri(&uri, &S3Config::default()).await.expect("open");
        store.put("k", bytes::Bytes::from_static(b"v")).await.expect("put");
        assert!(dir.path().join("store/k").is_file());
    }
}
