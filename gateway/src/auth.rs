//! Who may do what: AWS Signature V4 with the configured access keys (s3s checks the signature,
//! headers and presigned URLs alike), and unsigned requests only on buckets configured for them.

use std::collections::HashMap;

use hoard_transport::cluster::{AnonymousAccess, GatewayKey};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::validation::NameValidation;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};

/// The configured access keys.
pub(crate) struct Keys {
    secrets: HashMap<String, String>,
}

impl Keys {
    pub(crate) fn new(keys: &[GatewayKey]) -> Keys {
        Keys {
            secrets: keys
                .iter()
                .map(|k| (k.access_key.clone(), k.secret_key.clone()))
                .collect(),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.secrets.get(access_key) {
            Some(secret) => Ok(SecretKey::from(secret.as_str())),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}

/// Unsigned requests: allowed only on the buckets configured for them, and only for what they
/// are configured for.
pub(crate) struct Access {
    pub anonymous: HashMap<String, AnonymousAccess>,
}

/// Operations an anonymous reader may use.
const READS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "HeadBucket",
    "GetBucketLocation",
];

/// Operations an anonymous writer may use besides the reads.
const WRITES: &[&str] = &[
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
];

impl Access {
    fn allows(&self, bucket: Option<&str>, op: &str) -> bool {
        bucket
            .and_then(|b| self.anonymous.get(b))
            .is_some_and(|access| match access {
                AnonymousAccess::None => false,
                AnonymousAccess::Read => READS.contains(&op),
                AnonymousAccess::ReadWrite => READS.contains(&op) || WRITES.contains(&op),
            })
    }

    /// An unsigned copy reads its source: the source's bucket must allow anonymous reads too.
    fn check_source(&self, signed: bool, source: &CopySource) -> S3Result<()> {
        let bucket = match source {
            CopySource::Bucket { bucket, .. } => Some(&**bucket),
            _ => None,
        };
        if signed || self.allows(bucket, "GetObject") {
            Ok(())
        } else {
            Err(denied())
        }
    }
}

fn denied() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        "Access Denied: sign the request with a configured access key",
    )
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() || self.allows(cx.s3_path().get_bucket_name(), cx.s3_op().name()) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_source(req.credentials.is_some(), &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_source(req.credentials.is_some(), &req.input.copy_source)
    }
}

/// Bucket names are mount names (a name AWS would refuse, such as `s3`, is fine); names that are
/// no mount get `NoSuchBucket` from the operation.
pub(crate) struct MountNames;

impl NameValidation for MountNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty() && name.len() <= 255 && !name.contains('/') && !name.starts_with('.')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_copy_reads_only_buckets_open_to_anonymous_readers() {
        let access = Access {
            anonymous: [
                ("open".to_owned(), AnonymousAccess::ReadWrite),
                ("shared".to_owned(), AnonymousAccess::Read),
                ("private".to_owned(), AnonymousAccess::None),
            ]
            .into(),
        };
        let from = |bucket: &str| CopySource::Bucket {
            bucket: bucket.into(),
            key: "k".into(),
            version_id: None,
        };
        assert!(access.allows(Some("open"), "CopyObject"));
        assert!(!access.allows(Some("shared"), "PutObject"));
        assert!(access.allows(Some("shared"), "GetObject"));
        assert!(!access.allows(Some("private"), "GetObject") && !access.allows(None, "ListBuckets"));
        assert!(access.check_source(false, &from("shared")).is_ok());
        let e = access
            .check_source(false, &from("private"))
            .expect_err("a private source");
        assert_eq!(e.code(), &S3ErrorCode::AccessDenied);
        assert!(
            access.check_source(true, &from("private")).is_ok(),
            "signed requests may"
        );
    }
}
