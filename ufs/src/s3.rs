//! [`S3UnderStore`]: Amazon S3, or any S3-compatible server, through `aws-sdk-s3`.
//!
//! S3 is hoard's main under-store, and this module is the only place in the workspace that knows
//! the SDK. It maps the [`UnderStore`] calls to single S3 requests under a key prefix, turns the
//! SDK's errors into [`UfsError`]s that say whether a retry can help, and makes versioned reads
//! safe with `If-Match` on the ETag (checked again on the response, for servers that ignore it).
//!
//! Request checksums are sent only where S3 requires them, so that S3-compatible servers that do
//! not implement the newer flexible checksums keep working.

mod errors;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as S3CompletedPart, MetadataDirective};
use bytes::Bytes;

use crate::{
    CompletedPart, ListPage, ListRequest, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore, validate_metadata,
};
use errors::{classify, missing_field};

/// Region used when neither the configuration nor the environment names one (S3-compatible
/// servers usually accept any region).
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach an S3 service. Fields left `None` come from the usual AWS environment: `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` and the rest of the
/// SDK's default chains.
#[derive(Clone, Default)]
pub struct S3Config {
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:3900`); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region to sign requests for.
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint` (most self-hosted servers).
    pub path_style: bool,
    /// Static access key id; must be given together with `secret_access_key`.
    pub access_key_id: Option<String>,
    /// Static secret key; must be given together with `access_key_id`. Never printed.
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The objects of one S3 bucket under a key prefix.
///
/// # Example
/// ```no_run
/// # async fn demo() -> hoard_ufs::UfsResult<()> {
/// use hoard_ufs::{S3Config, S3UnderStore, UnderStore};
/// let cfg = S3Config { endpoint: Some("http://127.0.0.1:3900".into()), path_style: true, ..S3Config::default() };
/// let store = S3UnderStore::new("datasets".into(), "imagenet/".into(), &cfg).await?;
/// let meta = store.stat("train/0001.jpg").await?; // key imagenet/train/0001.jpg
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct S3UnderStore {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
}

impl S3UnderStore {
    /// Connects to `bucket`, serving the keys under `prefix` (a `/` is appended unless empty).
    ///
    /// # Errors
    /// [`UfsError::Config`] for an empty bucket name or a half-given static credential. Nothing is
    /// sent to the service yet, so a wrong endpoint or key shows on the first call.
    pub async fn new(bucket: String, prefix: String, cfg: &S3Config) -> UfsResult<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &cfg.region {
            loader = loader.region(Region::new(region.clone()));
        }
        match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "hoard S3Config"));
            }
            (None, None) => {}
            _ => {
                return Err(UfsError::Config(
                    "access_key_id and secret_access_key must be given together".into(),
                ));
            }
        }
        let sdk = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(cfg.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if sdk.region().is_none() {
            conf = conf.region(Region::from_static(FALLBACK_REGION));
        }
        Self::from_client(Client::from_conf(conf.build()), bucket, prefix)
    }

    /// Serves `bucket`/`prefix` through an already configured client.
    ///
    /// # Errors
    /// [`UfsError::Config`] for an empty bucket name or one containing `/`.
    pub fn from_client(client: Client, bucket: String, prefix: String) -> UfsResult<Self> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(UfsError::Config(format!("invalid S3 bucket name {bucket:?}")));
        }
        let prefix = prefix.trim_start_matches('/');
        let prefix = match prefix.is_empty() || prefix.ends_with('/') {
            true => prefix.to_owned(),
            false => format!("{prefix}/"),
        };
        Ok(Self { client, bucket, prefix })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix of every object (empty, or ending with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The S3 key of `path`.
    fn key(&self, path: &str) -> UfsResult<String> {
        if path.is_empty() {
            return Err(UfsError::Invalid {
                path: String::new(),
                reason: "empty key".into(),
            });
        }
        Ok(format!("{}{path}", self.prefix))
    }

    /// The store path of S3 key `key`, if it lies under the prefix.
    fn path_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str()).filter(|p| !p.is_empty())
    }

    /// Metadata of `path`; with `version`, only if the object still has it.
    async fn head(&self, path: &str, version: Option<&str>) -> UfsResult<ObjectMeta> {
        let key = self.key(path)?;
        let req = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .set_if_match(version.map(quote));
        let out = req.send().await.map_err(|e| classify("HeadObject", path, version, e))?;
        let size = out
            .content_length()
            .ok_or_else(|| missing_field("HeadObject", path, "Content-Length"))?;
        let etag = out.e_tag().ok_or_else(|| missing_field("HeadObject", path, "ETag"))?;
        let mut m = meta(path, size, etag, out.last_modified());
        m.metadata = Some(
            out.metadata()
                .map(|h| h.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                .unwrap_or_default(),
        );
        Ok(m)
    }

    /// A ranged GET. The SDK retries a request that fails; a body that breaks off midway
    /// (a connection reset, a short body) is asked for again here, up to [`BODY_ATTEMPTS`]
    /// times: the GET is read-only and names its version (`If-Match`), so a retry returns the
    /// same bytes or fails with a version mismatch.
    async fn get(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
        let mut attempt = 1;
        loop {
            match self.get_once(path, range.clone(), version).await {
                Err(GetError::Body(e)) if attempt < BODY_ATTEMPTS => {
                    tracing::debug!(path, attempt, "GetObject body broke off, asking again: {e}");
                    attempt += 1;
                }
                Err(GetError::Body(e) | GetError::Other(e)) => return Err(e),
                Ok(bytes) => return Ok(bytes),
            }
        }
    }

    async fn get_once(&self, path: &str, range: Range<u64>, version: Option<&str>) -> Result<Bytes, GetError> {
        let key = self.key(path)?;
        let header = match range.end {
            u64::MAX => format!("bytes={}-", range.start),
            end => format!("bytes={}-{}", range.start, end - 1),
        };
        let req = self.client.get_object().bucket(&self.bucket).key(&key).range(header);
        let out = match req.set_if_match(version.map(quote)).send().await {
            Ok(out) => out,
            // The range starts at or past the end; HEAD tells whether the object (version) exists.
            Err(e) if errors::status(&e) == Some(416) => {
                return Ok(self.head(path, version).await.map(|_| Bytes::new())?);
            }
            Err(e) => return Err(classify("GetObject", path, version, e).into()),
        };
        if let (Some(expected), Some(etag)) = (version, out.e_tag())
            && unquote(etag) != expected
        {
            return Err(UfsError::VersionMismatch {
                path: path.to_owned(),
                expected: expected.to_owned(),
            }
            .into());
        }
        let expected_len = out.content_length();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| GetError::Body(errors::body_error("GetObject", path, e)))?;
        let bytes = body.into_bytes();
        if expected_len.is_some_and(|n| u64::try_from(n) != Ok(bytes.len() as u64)) {
            let msg = format!("body of {} bytes, Content-Length {expected_len:?}", bytes.len());
            return Err(GetError::Body(errors::remote("GetObject", path, msg, true)));
        }
        Ok(bytes)
    }
}

/// Times a GET is sent when its body breaks off.
const BODY_ATTEMPTS: u32 = 3;

/// Why one GET failed: its body broke off (worth asking again), or anything else.
enum GetError {
    Body(UfsError),
    Other(UfsError),
}

impl From<UfsError> for GetError {
    fn from(e: UfsError) -> Self {
        GetError::Other(e)
    }
}

fn quote(version: &str) -> String {
    format!("\"{version}\"")
}

fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

fn meta(path: &str, size: i64, etag: &str, mtime: Option<&aws_sdk_s3::primitives::DateTime>) -> ObjectMeta {
    ObjectMeta {
        path: path.to_owned(),
        size: u64::try_from(size).unwrap_or(0),
        version: unquote(etag).to_owned(),
        mtime: mtime.and_then(|t| SystemTime::try_from(*t).ok()),
        metadata: None,
    }
}

/// `metadata` as the SDK's header map; `None` when empty (no headers sent).
fn sdk_metadata(path: &str, metadata: &Metadata) -> UfsResult<Option<HashMap<String, String>>> {
    validate_metadata(path, metadata)?;
    Ok((!metadata.is_empty()).then(|| metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
}

/// `bucket/key`, percent-encoded as the `x-amz-copy-source` header wants it.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in bucket.bytes().chain([b'/']).chain(key.bytes()) {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn part_number(path: &str, n: u32) -> UfsResult<i32> {
    crate::parts::check_part_number(path, n)?;
    Ok(i32::try_from(n).expect("part numbers are at most 10000"))
}

#[async_trait]
impl UnderStore for S3UnderStore {
    async fn stat(&self, path: &str) -> UfsResult<ObjectMeta> {
        self.head(path, None).await
    }

    async fn read_range(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
        if range.start > range.end {
            let reason = format!("range {}..{} ends before it starts", range.start, range.end);
            return Err(UfsError::Invalid {
                path: path.to_owned(),
                reason,
            });
        }
        if range.is_empty() {
            return self.head(path, version).await.map(|_| Bytes::new());
        }
        self.get(path, range, version).await
    }

    async fn list(&self, req: &ListRequest) -> UfsResult<ListPage> {
        let max_keys = if req.max_keys == 0 {
            1000
        } else {
            i32::try_from(req.max_keys).unwrap_or(i32::MAX)
        };
        let request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{}", self.prefix, req.prefix));
        let request = request
            .set_delimiter(req.delimiter.clone().filter(|d| !d.is_empty()))
            .set_continuation_token(req.continuation.clone())
            .max_keys(max_keys);
        let out = request
            .send()
            .await
            .map_err(|e| classify("ListObjectsV2", &req.prefix, None, e))?;
        let mut page = ListPage::default();
        for object in out.contents() {
            let Some(path) = object.key().and_then(|k| self.path_of(k)) else {
                continue;
            };
            let etag = object.e_tag().unwrap_or_default();
            page.objects
                .push(meta(path, object.size().unwrap_or(0), etag, object.last_modified()));
        }
        let prefixes = out.common_prefixes().iter().filter_map(|p| p.prefix());
        page.common_prefixes = prefixes.filter_map(|p| self.path_of(p)).map(str::to_owned).collect();
        if out.is_truncated() == Some(true) {
            let token = out.next_continuation_token();
            let token = token.ok_or_else(|| missing_field("ListObjectsV2", &req.prefix, "NextContinuationToken"))?;
            page.next_continuation = Some(token.to_owned());
        }
        Ok(page)
    }

    async fn put_with(&self, path: &str, data: Bytes, metadata: &Metadata) -> UfsResult<ObjectMeta> {
        let (key, size) = (self.key(path)?, data.len() as i64);
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(sdk_metadata(path, metadata)?)
            .body(ByteStream::from(data));
        let out = req.send().await.map_err(|e| classify("PutObject", path, None, e))?;
        match out.e_tag() {
            Some(etag) => Ok(ObjectMeta {
                metadata: Some(metadata.clone()),
                ..meta(path, size, etag, None)
            }),
            None => self.head(path, None).await,
        }
    }

    async fn create_multipart_with(&self, path: &str, metadata: &Metadata) -> UfsResult<String> {
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(path)?)
            .set_metadata(sdk_metadata(path, metadata)?);
        let out = req
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", path, None, e))?;
        let id = out
            .upload_id()
            .ok_or_else(|| missing_field("CreateMultipartUpload", path, "UploadId"))?;
        Ok(id.to_owned())
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> UfsResult<CompletedPart> {
        let number = self::part_number(path, part_number)?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.key(path)?)
            .upload_id(upload_id);
        let req = req.part_number(number).body(ByteStream::from(data));
        let out = req.send().await.map_err(|e| classify("UploadPart", path, None, e))?;
        let tag = out.e_tag().ok_or_else(|| missing_field("UploadPart", path, "ETag"))?;
        Ok(CompletedPart {
            part_number,
            tag: tag.to_owned(),
        })
    }

    /// One `UploadPartCopy` with `x-amz-copy-source-range` and, given a version,
    /// `x-amz-copy-source-if-match` (a 412 is a [`UfsError::VersionMismatch`] of `src`).
    async fn upload_part_copy(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        src: &str,
        range: Range<u64>,
        src_version: Option<&str>,
    ) -> UfsResult<CompletedPart> {
        let number = self::part_number(path, part_number)?;
        crate::parts::check_copy_range_shape(src, &range)?;
        let req = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(self.key(path)?)
            .upload_id(upload_id)
            .part_number(number);
        let req = req
            .copy_source(copy_source(&self.bucket, &self.key(src)?))
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .set_copy_source_if_match(src_version.map(quote));
        let out = req.send().await.map_err(|e| {
            // A missing upload is the destination's; anything else missing is the source.
            let on = if e.code() == Some("NoSuchUpload") { path } else { src };
            classify("UploadPartCopy", on, src_version, e)
        })?;
        let tag = out.copy_part_result().and_then(|r| r.e_tag());
        let tag = tag.ok_or_else(|| missing_field("UploadPartCopy", path, "CopyPartResult.ETag"))?;
        Ok(CompletedPart {
            part_number,
            tag: tag.to_owned(),
        })
    }

    async fn complete_multipart(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> UfsResult<ObjectMeta> {
        crate::parts::check_part_list(path, &parts)?;
        let mut upload = CompletedMultipartUpload::builder();
        for part in parts {
            let number = self::part_number(path, part.part_number)?;
            upload = upload.parts(S3CompletedPart::builder().part_number(number).e_tag(part.tag).build());
        }
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(path)?);
        let req = req.upload_id(upload_id).multipart_upload(upload.build());
        req.send()
            .await
            .map_err(|e| classify("CompleteMultipartUpload", path, None, e))?;
        self.head(path, None).await
    }

    async fn abort_multipart(&self, path: &str, upload_id: &str) -> UfsResult<()> {
        let req = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(path)?);
        let req = req.upload_id(upload_id);
        req.send()
            .await
            .map_err(|e| classify("AbortMultipartUpload", path, None, e))?;
        Ok(())
    }

    async fn delete(&self, path: &str) -> UfsResult<()> {
        let req = self.client.delete_object().bucket(&self.bucket).key(self.key(path)?);
        match req.send().await.map_err(|e| classify("DeleteObject", path, None, e)) {
            Err(UfsError::NotFound { .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Server-side copy with one `CopyObject` (S3 limits it to sources of at most 5 GiB).
    async fn copy_with(&self, src: &str, dst: &str, metadata: Option<&Metadata>) -> UfsResult<ObjectMeta> {
        let source = copy_source(&self.bucket, &self.key(src)?);
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.key(dst)?)
            .copy_source(source);
        if let Some(metadata) = metadata {
            // REPLACE with no metadata clears it; S3 also needs REPLACE to copy onto itself.
            req = req
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(sdk_metadata(dst, metadata)?.or_else(|| Some(HashMap::new())));
        }
        // A missing object here is the source: the destination is being created.
        req.send().await.map_err(|e| classify("CopyObject", src, None, e))?;
        self.head(dst, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(copy_source("b", "dir/a b+c%d~é"), "b/dir/a%20b%2Bc%25d~%C3%A9");
    }

    #[test]
    fn secrets_are_not_printed() {
        let cfg = S3Config {
            secret_access_key: Some("hunter2-secret".into()),
            ..S3Config::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[tokio::test]
    async fn prefixes_are_normalised_and_keys_mapped() {
        let cfg = S3Config {
            region: Some("r".into()),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Config::default()
        };
        let store = S3UnderStore::new("bucket".into(), "/data/set".into(), &cfg)
            .await
            .expect("store");
        assert_eq!(store.prefix(), "data/set/");
        assert_eq!(store.key("x/y").expect("key"), "data/set/x/y");
        assert_eq!(store.path_of("data/set/x/y"), Some("x/y"));
        assert_eq!(store.path_of("data/set/"), None);
        assert_eq!(store.path_of("other/x"), None);
        let bare = S3UnderStore::new("bucket".into(), String::new(), &cfg)
            .await
            .expect("store");
        assert_eq!(bare.prefix(), "");
        assert!(matches!(
            S3UnderStore::new(String::new(), String::new(), &cfg).await,
            Err(UfsError::Config(_))
        ));
        let half = S3Config {
            access_key_id: Some("id".into()),
            ..cfg
        };
        assert!(matches!(
            S3UnderStore::new("b".into(), String::new(), &half).await,
            Err(UfsError::Config(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_retryable_error() {
        let cfg = S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: Some("r".into()),
            path_style: true,
            access_key_id: Some("GK0123456789abcdef01234567".into()),
            secret_access_key: Some("0".repeat(64)),
        };
        let store = S3UnderStore::new("bucket".into(), String::new(), &cfg)
            .await
            .expect("store");
        let err = store.stat("x").await.expect_err("nothing listens on port 9");
        assert!(err.is_retryable(), "{err:?}");
        assert!(matches!(err, UfsError::Remote { op: "HeadObject", .. }), "{err:?}");
    }
}
