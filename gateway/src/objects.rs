//! Objects: GET, HEAD, PUT, DELETE (one and many) and COPY.
//!
//! A key is a file of the bucket's mount (`/BUCKET/KEY` in hoard). A key ending in `/` is a
//! directory marker: a PUT of it with no bytes is a mkdir, and a GET or HEAD of it answers an
//! empty object while the under-store's listing (merged with hoard's changes) holds the marker
//! itself, as S3 does for a marker object; a directory only implied by its keys has none (a
//! local directory shows a marker while it is empty).

use bytes::Bytes;
use futures::StreamExt;
use hoard_client::{ComposeOptions, CreateOptions, FileMeta, KeyQuery, ListEntry, OpenFile, Writer};
use hoard_transport::wire::is_staged;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::body::{self, Expect, Received};
use crate::errors::{Subject, from_client};
use crate::etag::{self, Conditions, EMPTY_ETAG, etag_of, last_modified, strong};
use crate::meta::{self, Headers};
use crate::metrics;
use crate::service::Gateway;

/// S3's largest single PUT (and part, and copy).
pub(crate) const MAX_PUT_BYTES: u64 = 5 << 30;

/// The first piece of a GET's body: small, for a quick first byte.
const FIRST_PIECE_BYTES: u64 = 128 << 10;

/// Most keys of one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;

/// Deletes of one DeleteObjects request in flight at once.
const DELETES_IN_FLIGHT: usize = 16;

/// The hoard path of a key, refusing keys hoard cannot hold.
pub(crate) fn object_path(bucket: &str, key: &str) -> S3Result<String> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "an object key must not be empty"));
    }
    if is_staged(key.trim_end_matches('/')) {
        return Err(s3_error!(
            InvalidArgument,
            "keys under `{}` are reserved for hoard's multipart uploads",
            hoard_transport::wire::STAGING_DIR
        ));
    }
    if key.split('/').any(|c| c == "." || c == "..") || key.contains("//") || key.starts_with('/') {
        return Err(s3_error!(
            InvalidArgument,
            "hoard cannot store this key: keys with empty, `.` or `..` path components are not supported"
        ));
    }
    Ok(format!("/{bucket}/{key}"))
}

/// A GET's or HEAD's answer (`$ty`) for an object: what [`Described`] says, its length and
/// range.
macro_rules! object_answer {
    ($ty:ident, $d:expr, $meta:expr, $len:expr, $range:expr) => {{
        let d: Described = $d;
        let meta: &FileMeta = $meta;
        with_checksum!($ty, d.checksum, {
            content_length: Some($len as i64),
            content_range: $range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(strong(d.etag)),
            last_modified: Some(last_modified(meta)),
            expires: expires(&d.headers),
            content_type: Some(d.headers.content_type.unwrap_or_else(|| "binary/octet-stream".into())),
            content_encoding: d.headers.content_encoding,
            content_disposition: d.headers.content_disposition,
            content_language: d.headers.content_language,
            cache_control: d.headers.cache_control,
            metadata: meta::user(meta),
        })
    }};
}

/// What S3 says of an object, for GET and HEAD.
struct Described {
    etag: String,
    headers: Headers,
    checksum: Checksum,
}

fn describe(meta: &FileMeta, checksum_mode: Option<&ChecksumMode>, whole: bool) -> Described {
    let enabled = checksum_mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    Described {
        etag: etag_of(meta),
        headers: Headers::of(meta),
        // A checksum describes the whole object: S3 sends it only with a whole object.
        checksum: if enabled && whole {
            meta::checksum(meta)
        } else {
            Checksum::default()
        },
    }
}

fn expires(headers: &Headers) -> Option<Timestamp> {
    headers
        .expires
        .as_deref()
        .and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, e).ok())
}

/// The byte range a request asks for, and its `Content-Range` when it asked for one.
fn resolve_range(
    range: Option<Range>,
    part_number: Option<i32>,
    size: u64,
) -> S3Result<(std::ops::Range<u64>, Option<String>)> {
    match part_number {
        // An object hoard stores is one part; a part number beyond it is out of range.
        Some(1) | None => {}
        Some(n) => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                format!("The requested partnumber {n} is not satisfiable: the object has one part"),
            );
            e.set_status_code(hyper::StatusCode::RANGE_NOT_SATISFIABLE);
            return Err(e);
        }
    }
    match range {
        Some(r) => {
            let r = r.check(size)?;
            let header = format!("bytes {}-{}/{size}", r.start, r.end - 1);
            Ok((r, Some(header)))
        }
        None => Ok((0..size, None)),
    }
}

impl Gateway {
    pub(crate) async fn get(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let conditions = conditions_of!(input);
        let (file, meta) = self.open(&input.bucket, &input.key).await?;
        let (range, content_range) = resolve_range(input.range, input.part_number, meta.size)?;
        let d = describe(&meta, input.checksum_mode.as_ref(), content_range.is_none());
        etag::check(&conditions, &d.etag, meta.mtime_ms, true)?;
        let len = range.end - range.start;
        let body = match file {
            Some(file) => {
                let settings = &self.inner.settings;
                let stream = body::file_stream(
                    file,
                    range,
                    FIRST_PIECE_BYTES.min(self.inner.page_size),
                    settings.get_piece.as_u64(),
                    settings.get_parallel as usize,
                )
                .inspect(|chunk| {
                    if let Ok(bytes) = chunk {
                        metrics::bytes_out(bytes.len());
                    }
                });
                body::blob(stream)
            }
            None => StreamingBlob::from(s3s::Body::from(Bytes::new())),
        };
        let mut output: GetObjectOutput = object_answer!(GetObjectOutput, d, &meta, len, content_range);
        output.body = Some(body);
        Ok(S3Response::new(output))
    }

    pub(crate) async fn head(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let conditions = conditions_of!(input);
        let (_, meta) = self.open(&input.bucket, &input.key).await?;
        let (range, content_range) = resolve_range(input.range, input.part_number, meta.size)?;
        let d = describe(&meta, input.checksum_mode.as_ref(), content_range.is_none());
        etag::check(&conditions, &d.etag, meta.mtime_ms, true)?;
        let output: HeadObjectOutput =
            object_answer!(HeadObjectOutput, d, &meta, range.end - range.start, content_range);
        Ok(S3Response::new(output))
    }

    /// An object opened at its current version (`None` for a directory marker, which has no
    /// bytes), and its metadata.
    async fn open(&self, bucket: &str, key: &str) -> S3Result<(Option<OpenFile>, FileMeta)> {
        let path = object_path(bucket, key)?;
        if key.ends_with('/') {
            return self.marker(bucket, key).await.map(|m| (None, m));
        }
        let file = self
            .inner
            .client
            .open(&path)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let meta = file.meta().clone();
        Ok((Some(file), meta))
    }

    /// A directory marker, as an empty object (it exists while the directory does).
    async fn marker(&self, bucket: &str, key: &str) -> S3Result<FileMeta> {
        let query = KeyQuery {
            prefix: key.to_owned(),
            max_keys: 1,
            ..KeyQuery::default()
        };
        let page = self
            .inner
            .client
            .list_keys(bucket, query)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        match page.entries.first() {
            Some(ListEntry::File(m)) if m.path == key => Ok(FileMeta {
                version: EMPTY_ETAG.into(),
                metadata: None,
                homed: false,
                ..m.clone()
            }),
            _ => Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
        }
    }

    pub(crate) async fn put(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let path = object_path(&input.bucket, &input.key)?;
        if input.key.ends_with('/') {
            return self.put_marker(&path, input.content_length).await;
        }
        let headers = Headers {
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding.as_deref().and_then(without_aws_chunked),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            expires: input.expires.as_ref().and_then(http_date),
        };
        let metadata = meta::stored(input.metadata.as_ref(), &headers)?;
        let exclusive = self
            .put_condition(&path, input.if_match.as_ref(), input.if_none_match.as_ref())
            .await?;
        let expect = Expect {
            len: input.content_length,
            md5: input.content_md5.as_deref(),
            checksum: checksum_of!(input),
            algorithm: input.checksum_algorithm.as_ref(),
            max: MAX_PUT_BYTES,
        };
        let body = input.body.ok_or_else(|| s3_error!(MissingRequestBodyError))?;
        let options = CreateOptions {
            exclusive,
            append: false,
            metadata,
        };
        let writer = self
            .inner
            .client
            .create(&path, options)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let trailer = req.trailing_headers;
        let (meta, sent) = self
            .write_body(writer, body_chunks(body), &expect, move || {
                body::trailer_checksum(trailer.as_ref().and_then(s3s::TrailingHeaders::take).as_ref())
            })
            .await?;
        let headers = close_unread(&req.headers, meta.size);
        let output = with_checksum!(PutObjectOutput, sent, {
            e_tag: Some(strong(etag_of(&meta))),
            size: Some(meta.size as i64),
        });
        Ok(S3Response::with_headers(output, headers))
    }

    /// Stream bytes into `writer`, check them against `expect` (and the trailer the body's end
    /// yields), and publish them with their ETag and checksum; nothing is published on any
    /// failure. Returns the file and the checksums the client sent.
    pub(crate) async fn write_body(
        &self,
        mut writer: Writer,
        chunks: impl futures::Stream<Item = S3Result<Bytes>> + Unpin,
        expect: &Expect<'_>,
        trailer: impl FnOnce() -> Checksum,
    ) -> S3Result<(FileMeta, Checksum)> {
        let received: S3Result<(Received, Checksum)> = async {
            let got = body::ingest(chunks, &mut writer, expect).await?;
            let trailer = trailer();
            body::verify(&got, expect, &trailer)?;
            let sent = body::sent_checksum(&got, expect, &trailer);
            Ok((got, sent))
        }
        .await;
        let (got, sent) = match received {
            Ok(r) => r,
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::debug!("abort of a refused write failed (the coordinator drops it later): {abort}");
                }
                return Err(e);
            }
        };
        metrics::bytes_in(got.len);
        let meta = writer
            .close_with(meta::content(&got.etag(), &sent))
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        Ok((meta, sent))
    }

    /// A PUT of a directory marker: a mkdir (a marker has no bytes).
    async fn put_marker(&self, path: &str, len: Option<i64>) -> S3Result<S3Response<PutObjectOutput>> {
        if len.is_some_and(|n| n != 0) {
            return Err(s3_error!(
                InvalidRequest,
                "hoard keeps keys ending in `/` as directory markers, which hold no bytes"
            ));
        }
        self.inner
            .client
            .mkdir(path)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let output = PutObjectOutput {
            e_tag: Some(strong(EMPTY_ETAG.into())),
            size: Some(0),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    /// A conditional PUT: `If-None-Match: *` is an exclusive create (checked again atomically when
    /// the object is published); `If-Match` compares the current ETag first.
    async fn put_condition(
        &self,
        path: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<bool> {
        if let Some(cond) = if_match {
            let meta = self
                .inner
                .client
                .stat(path)
                .await
                .map_err(|e| from_client(&e, Subject::Object))?;
            let conditions = Conditions {
                if_match: Some(cond),
                ..Conditions::default()
            };
            etag::check(&conditions, &etag_of(&meta), meta.mtime_ms, false)?;
        }
        match if_none_match {
            None => Ok(false),
            Some(ETagCondition::Any) => Ok(true),
            Some(_) => Err(s3_error!(NotImplemented, "If-None-Match on a PUT takes only `*`")),
        }
    }

    pub(crate) async fn delete(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        if let Some(cond) = &input.if_match {
            let path = object_path(&input.bucket, &input.key)?;
            let meta = self
                .inner
                .client
                .stat(&path)
                .await
                .map_err(|e| from_client(&e, Subject::Object))?;
            let conditions = Conditions {
                if_match: Some(cond),
                ..Conditions::default()
            };
            etag::check(&conditions, &etag_of(&meta), meta.mtime_ms, false)?;
        }
        self.delete_key(&input.bucket, &input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    /// Delete one key. S3 deletes are idempotent: a missing key, or a key that is only a
    /// directory of other keys, is deleted already. A key not ending in `/` deletes a file only
    /// (hoard's delete of a path would take the directory `KEY/` instead when there is no file).
    async fn delete_key(&self, bucket: &str, key: &str) -> S3Result<()> {
        let path = object_path(bucket, key)?;
        if !key.ends_with('/') {
            match self.inner.client.stat(&path).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(from_client(&e, Subject::Object)),
            }
        }
        match self.inner.client.delete(&path, false).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(hoard_client::ClientError::Worker {
                status: hoard_transport::wire::Status::NotEmpty,
                ..
            }) => Ok(()),
            Err(e) => Err(from_client(&e, Subject::Object)),
        }
    }

    pub(crate) async fn delete_many(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let objects = input.delete.objects;
        if objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request takes at most {MAX_DELETE_KEYS} keys, not {}",
                objects.len()
            ));
        }
        let bucket = input.bucket.clone();
        let results: Vec<(String, S3Result<()>)> = futures::stream::iter(objects)
            .map(|o| {
                let bucket = bucket.clone();
                async move {
                    let result = self.delete_key(&bucket, &o.key).await;
                    (o.key, result)
                }
            })
            .buffered(DELETES_IN_FLIGHT)
            .collect()
            .await;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, result) in results {
            match result {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(key),
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        let output = DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn copy(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let dst_path = object_path(&input.bucket, &input.key)?;
        if input.key.ends_with('/') {
            return Err(s3_error!(InvalidRequest, "directory markers cannot be copied"));
        }
        let (src_bucket, src_path, source) = self
            .copy_source_checked(&input.copy_source, &copy_conditions_of!(input))
            .await?;
        let source_etag = etag_of(&source);
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        if src_path == dst_path && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let mut metadata = if replace {
            let headers = Headers {
                content_type: input.content_type.clone(),
                content_encoding: input.content_encoding.clone(),
                content_disposition: input.content_disposition.clone(),
                content_language: input.content_language.clone(),
                cache_control: input.cache_control.clone(),
                expires: input.expires.as_ref().and_then(http_date),
            };
            meta::stored(input.metadata.as_ref(), &headers)?
        } else {
            meta::without_content(&source)
        };
        // The same bytes: the same ETag and checksum.
        metadata.extend(meta::content(&source_etag, &meta::checksum(&source)));
        let meta = if src_bucket == input.bucket {
            let options = ComposeOptions {
                metadata: Some(metadata),
                ..ComposeOptions::default()
            };
            self.inner
                .client
                .compose(
                    &dst_path,
                    &[(src_path.as_str(), Some(source.version.as_str()))],
                    options,
                )
                .await
                .map_err(|e| from_client(&e, Subject::Object))?
        } else {
            self.copy_across(&src_path, &source, &dst_path, metadata).await?
        };
        let output = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(strong(etag_of(&meta))),
                last_modified: Some(last_modified(&meta)),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    /// A copy between mounts (two under-stores): the bytes go through the gateway.
    async fn copy_across(
        &self,
        src_path: &str,
        source: &FileMeta,
        dst_path: &str,
        mut metadata: hoard_client::Metadata,
    ) -> S3Result<FileMeta> {
        metadata.retain(|k, _| !hoard_transport::wire::is_content_bound(k));
        let file = self.read_source(src_path, source).await?;
        let options = CreateOptions {
            metadata,
            ..CreateOptions::default()
        };
        let writer = self
            .inner
            .client
            .create(dst_path, options)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let expect = Expect {
            max: MAX_PUT_BYTES,
            ..Expect::default()
        };
        let chunks = self.source_chunks(file, 0..source.size);
        let (meta, _) = self.write_body(writer, chunks, &expect, Checksum::default).await?;
        Ok(meta)
    }

    /// A copy's source: its bucket, path and metadata, once its conditions hold.
    ///
    /// # Errors
    /// `NoSuchBucket`, `NoSuchKey`, `PreconditionFailed`; `InvalidRequest` for a marker.
    pub(crate) async fn copy_source_checked(
        &self,
        source: &CopySource,
        conditions: &Conditions<'_>,
    ) -> S3Result<(String, String, FileMeta)> {
        let (bucket, key) = copy_source(source)?;
        self.check_bucket(&bucket)?;
        if key.ends_with('/') {
            return Err(s3_error!(InvalidRequest, "directory markers cannot be copied"));
        }
        let path = object_path(&bucket, &key)?;
        let meta = self
            .inner
            .client
            .stat(&path)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        etag::check(conditions, &etag_of(&meta), meta.mtime_ms, false)?;
        Ok((bucket, path, meta))
    }

    /// A copy's source, opened at the version its conditions were checked against.
    pub(crate) async fn read_source(&self, path: &str, source: &FileMeta) -> S3Result<OpenFile> {
        let file = self
            .inner
            .client
            .open(path)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        if file.meta().version != source.version {
            return Err(s3_error!(
                PreconditionFailed,
                "the source object changed during the copy"
            ));
        }
        Ok(file)
    }

    /// The bytes of a range of an opened file, as body chunks.
    pub(crate) fn source_chunks(
        &self,
        file: OpenFile,
        range: std::ops::Range<u64>,
    ) -> impl futures::Stream<Item = S3Result<Bytes>> + Unpin + use<> {
        let settings = &self.inner.settings;
        Box::pin(
            body::file_stream(
                file,
                range,
                settings.get_piece.as_u64(),
                settings.get_piece.as_u64(),
                settings.get_parallel as usize,
            )
            .map(|r| r.map_err(|e| from_client(&e, Subject::Object))),
        )
    }
}

/// `Connection: close` for a request that asked `Expect: 100-continue` and whose body decoded to
/// nothing: s3s then never reads the raw body (an empty aws-chunked body still has a trailer), so
/// hyper never asks the client for it, and bytes the client sends anyway would be taken for the
/// next request on the connection.
pub(crate) fn close_unread(request: &hyper::HeaderMap, received: u64) -> hyper::HeaderMap {
    let mut headers = hyper::HeaderMap::new();
    let expects = request
        .get(hyper::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects && received == 0 {
        headers.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    headers
}

/// A request body as chunks, its errors as S3 errors.
pub(crate) fn body_chunks(body: StreamingBlob) -> impl futures::Stream<Item = S3Result<Bytes>> + Unpin {
    body.map(|r| r.map_err(|e| crate::errors::from_body(e.as_ref())))
}

/// The bucket and key of a copy source (versions do not exist in hoard).
pub(crate) fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(
                    InvalidArgument,
                    "hoard keeps no object versions: drop versionId"
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented, "copy sources must be bucket/key")),
    }
}

/// `Content-Encoding` without the `aws-chunked` of the upload itself.
fn without_aws_chunked(encoding: &str) -> Option<String> {
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn http_date(t: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hoard_cannot_hold_are_refused_clearly() {
        assert_eq!(object_path("b", "a/b.bin").expect("valid"), "/b/a/b.bin");
        assert!(object_path("b", "dir/").is_ok());
        for bad in ["", "a//b", "a/../b", "./x", "/abs", ".hoard-staging/x"] {
            let e = object_path("b", bad).expect_err(bad);
            assert_eq!(e.code(), &S3ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn ranges_resolve_as_s3_does() {
        let r = |s: &str| Some(Range::parse(s).expect("range"));
        assert_eq!(
            resolve_range(r("bytes=0-9"), None, 100).expect("ok"),
            (0..10, Some("bytes 0-9/100".into()))
        );
        assert_eq!(resolve_range(r("bytes=-10"), None, 100).expect("ok").0, 90..100);
        assert_eq!(resolve_range(r("bytes=90-"), None, 100).expect("ok").0, 90..100);
        assert_eq!(resolve_range(None, Some(1), 100).expect("ok"), (0..100, None));
        let e = resolve_range(r("bytes=100-"), None, 100).expect_err("past the end");
        assert_eq!(e.code(), &S3ErrorCode::InvalidRange);
        assert!(resolve_range(None, Some(2), 100).is_err());
        assert_eq!(without_aws_chunked("aws-chunked, gzip").as_deref(), Some("gzip"));
        assert_eq!(without_aws_chunked("aws-chunked"), None);
    }
}
