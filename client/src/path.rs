//! hoard paths: `/MOUNT/key/in/the/mount`.

use crate::error::{ClientError, ClientResult};

/// A parsed hoard path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HoardPath {
    /// The mount name (first component).
    pub mount: String,
    /// The key within the mount, without a leading `/`; empty for the mount's root.
    pub key: String,
}

impl HoardPath {
    /// Parse `/MOUNT/key`. `/MOUNT` and `/MOUNT/` give an empty key. Repeated slashes inside
    /// the key are kept (object keys may contain them), a leading `/` is required.
    ///
    /// # Errors
    /// [`ClientError::InvalidPath`].
    pub fn parse(path: &str) -> ClientResult<HoardPath> {
        let invalid = |reason| ClientError::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| invalid("must start with `/MOUNT`"))?;
        let (mount, key) = rest.split_once('/').unwrap_or((rest, ""));
        if mount.is_empty() {
            return Err(invalid("names no mount"));
        }
        if key.split('/').any(|c| c == "." || c == "..") {
            return Err(invalid("`.` and `..` components are not allowed"));
        }
        Ok(HoardPath {
            mount: mount.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The key as a listing prefix: empty, or ending with `/`.
    pub fn dir_prefix(&self) -> String {
        if self.key.is_empty() || self.key.ends_with('/') {
            self.key.clone()
        } else {
            format!("{}/", self.key)
        }
    }
}

impl std::fmt::Display for HoardPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}/{}", self.mount, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mount_and_key() {
        let p = HoardPath::parse("/data/a/b.bin").expect("valid");
        assert_eq!((p.mount.as_str(), p.key.as_str()), ("data", "a/b.bin"));
        assert_eq!(HoardPath::parse("/data").expect("valid").key, "");
        assert_eq!(HoardPath::parse("/data/dir").expect("valid").dir_prefix(), "dir/");
        assert!(HoardPath::parse("data/x").is_err());
        assert!(HoardPath::parse("/").is_err());
        assert!(HoardPath::parse("/data/../etc").is_err());
    }
}
