//! The gateway: the S3 operations on the client, and the s3s service around them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hoard_client::Client;
use hoard_transport::cluster::{AnonymousAccess, GatewaySection, WriteMode};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3Request, S3Response, S3Result};

use crate::auth::{Access, Keys, MountNames};
use crate::errors;
use crate::metrics;

/// The S3-compatible endpoint over a hoard client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub client: Client,
    pub settings: GatewaySection,
    /// Anonymous access per bucket.
    pub anonymous: HashMap<String, AnonymousAccess>,
    /// Write mode per bucket.
    pub modes: HashMap<String, WriteMode>,
    /// The cluster's page size (a GET's first piece).
    pub page_size: u64,
}

impl Gateway {
    /// A gateway over `client`, with the `[gateway]` settings and the mounts of its cluster
    /// config.
    pub fn new(client: Client) -> Gateway {
        let config = client.config().clone();
        let anonymous = config.mounts.iter().map(|m| (m.name.clone(), m.anonymous)).collect();
        let modes = config.mounts.iter().map(|m| (m.name.clone(), m.write_mode)).collect();
        Gateway {
            inner: Arc::new(Inner {
                settings: config.gateway.clone(),
                anonymous,
                modes,
                page_size: config.page_size.as_u64(),
                client,
            }),
        }
    }

    /// The client the gateway serves from.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The s3s service: this gateway behind SigV4 authentication (the configured keys), the
    /// per-bucket anonymous access rules and, with `gateway.domain`, virtual-hosted-style names.
    ///
    /// # Errors
    /// When `gateway.domain` is not a valid domain.
    pub fn service(&self) -> Result<S3Service, String> {
        let settings = &self.inner.settings;
        let mut builder = S3ServiceBuilder::new(self.clone());
        builder.set_auth(Keys::new(&settings.keys));
        builder.set_access(Access {
            anonymous: self.inner.anonymous.clone(),
        });
        builder.set_validation(MountNames);
        if let Some(domain) = &settings.domain {
            let host = s3s::host::SingleDomain::new(domain).map_err(|e| format!("gateway.domain `{domain}`: {e}"))?;
            builder.set_host(host);
        }
        Ok(builder.build())
    }

    /// Whether the bucket is a mount of the cluster.
    pub(crate) fn check_bucket(&self, bucket: &str) -> S3Result<()> {
        if self.inner.anonymous.contains_key(bucket) {
            Ok(())
        } else {
            Err(S3Error::with_message(
                s3s::S3ErrorCode::NoSuchBucket,
                format!("The specified bucket does not exist: `{bucket}` is not a mount of this cluster"),
            ))
        }
    }
}

/// Time an operation, count it, and log its failure where it is handled.
async fn timed<T>(
    op: &'static str,
    bucket: &str,
    key: &str,
    f: impl Future<Output = S3Result<S3Response<T>>>,
) -> S3Result<S3Response<T>> {
    timed_as(op, bucket, key, f, |_| "ok").await
}

/// [`timed`], with the status of a success told by `ok`.
async fn timed_as<T>(
    op: &'static str,
    bucket: &str,
    key: &str,
    f: impl Future<Output = S3Result<S3Response<T>>>,
    ok: impl Fn(&T) -> &'static str,
) -> S3Result<S3Response<T>> {
    let started = Instant::now();
    let span = tracing::debug_span!("s3", op, bucket, key);
    let result = tracing::Instrument::instrument(f, span).await;
    let status = match &result {
        Ok(r) => ok(&r.output),
        Err(e) => {
            errors::log(op, bucket, key, e);
            e.code().as_str()
        }
    };
    metrics::record(op, status, started.elapsed());
    result
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("GetObject", &b, &k, self.get(req)).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("HeadObject", &b, &k, self.head(req)).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("PutObject", &b, &k, self.put(req)).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("DeleteObject", &b, &k, self.delete(req)).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let b = req.input.bucket.clone();
        timed("DeleteObjects", &b, "", self.delete_many(req)).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("CopyObject", &b, &k, self.copy(req)).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let b = req.input.bucket.clone();
        timed("ListObjectsV2", &b, "", self.list_v2(req)).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let b = req.input.bucket.clone();
        timed("ListObjects", &b, "", self.list_v1(req)).await
    }

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        timed("ListBuckets", "", "", self.buckets(req)).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let b = req.input.bucket.clone();
        timed("HeadBucket", &b, "", self.head_bucket_of(req)).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let b = req.input.bucket.clone();
        timed("GetBucketLocation", &b, "", self.location(req)).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("CreateMultipartUpload", &b, &k, self.create_upload(req)).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("UploadPart", &b, &k, self.upload(req)).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("UploadPartCopy", &b, &k, self.upload_copy(req)).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        // A completion answered while it runs counts as `accepted`, then once more when it ends.
        let accepted = |o: &CompleteMultipartUploadOutput| if o.future.is_some() { "accepted" } else { "ok" };
        timed_as("CompleteMultipartUpload", &b, &k, self.complete(req), accepted).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("AbortMultipartUpload", &b, &k, self.abort(req)).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        timed("ListParts", &b, &k, self.parts(req)).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let b = req.input.bucket.clone();
        timed("ListMultipartUploads", &b, "", self.uploads(req)).await
    }
}
