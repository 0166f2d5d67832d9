//! Multipart uploads, staged in hoard.
//!
//! An upload is a directory of the bucket's mount under the staging directory
//! (`.hoard-staging/s3/<upload id>/`), which workers never write to the under-store and never
//! list with the mount: an `upload` file (the key, when it started, the object's metadata, as
//! JSON) and a file per part (`part-00001`, ...) holding the part's bytes, committed with their
//! MD5 as ETag. Parts are durable once UploadPart returns (in the coordinator's journal), so an
//! upload survives gateway and worker restarts, and any gateway of the cluster can take any of
//! its requests. CompleteMultipartUpload composes the parts into the object (no byte is copied;
//! in `through` mode the object is uploaded to the under-store before the answer) and removes
//! them in the same step; AbortMultipartUpload deletes the directory.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hoard_client::{ComposeOptions, CreateOptions, FileMeta, KeyQuery, ListEntry};
use hoard_transport::cluster::WriteMode;
use hoard_transport::wire::{ETAG_KEY, STAGING_DIR};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};

use crate::body::{self, Expect};
use crate::errors::{Subject, from_client};
use crate::etag::{self, etag_of, last_modified, strong};
use crate::meta::{self, Headers};
use crate::objects::{MAX_PUT_BYTES, body_chunks, object_path};
use crate::service::Gateway;

/// S3's most parts of an upload.
const MAX_PARTS: i32 = 10_000;

/// S3's smallest part (all but the last).
const MIN_PART_BYTES: u64 = 5 << 20;

/// Infos of uploads read at once when listing uploads.
const INFOS_IN_FLIGHT: usize = 16;

/// Where an upload's files live, within the mount.
pub(crate) fn upload_dir(id: &str) -> String {
    format!("{STAGING_DIR}/s3/{id}")
}

/// The directory of every upload, within the mount.
pub(crate) fn uploads_dir() -> String {
    format!("{STAGING_DIR}/s3/")
}

fn part_name(number: i32) -> String {
    format!("part-{number:05}")
}

/// Upload ids are 32 hex digits: anything else names no upload (and no other path).
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What an upload is for, in its `upload` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadInfo {
    /// The object's key.
    pub key: String,
    /// When the upload started, ms since the epoch.
    pub initiated_ms: u64,
    /// The object's metadata (user metadata and headers, as stored).
    pub metadata: BTreeMap<String, String>,
    /// The checksum algorithm the client announced, echoed back.
    pub checksum_algorithm: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn no_such_upload(id: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        format!(
            "The specified multipart upload does not exist: {id} (it was completed, aborted, expired, or never made)"
        ),
    )
}

impl Gateway {
    /// An upload's info, checked to be for `key`.
    pub(crate) async fn upload_info(&self, bucket: &str, key: Option<&str>, id: &str) -> S3Result<UploadInfo> {
        if !valid_id(id) {
            return Err(no_such_upload(id));
        }
        let path = format!("/{bucket}/{}/upload", upload_dir(id));
        let bytes = match self.inner.client.read_all(&path).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(no_such_upload(id)),
            Err(e) => return Err(from_client(&e, Subject::Upload)),
        };
        let info: UploadInfo = serde_json::from_slice(&bytes)
            .map_err(|e| s3_error!(InternalError, "the record of upload {id} is unreadable: {e}"))?;
        if key.is_some_and(|k| k != info.key) {
            return Err(no_such_upload(id));
        }
        Ok(info)
    }

    /// Every entry of a staged prefix of a bucket, all pages (the staging directory is the
    /// gateway's own, so it lists it whole).
    async fn staged_entries(&self, bucket: &str, prefix: String, delimiter: Option<&str>) -> S3Result<Vec<ListEntry>> {
        let mut entries = Vec::new();
        let mut continuation = None;
        loop {
            let query = KeyQuery {
                prefix: prefix.clone(),
                delimiter: delimiter.map(str::to_owned),
                continuation,
                max_keys: 1000,
                ..KeyQuery::default()
            };
            let page = self
                .inner
                .client
                .list_keys(bucket, query)
                .await
                .map_err(|e| from_client(&e, Subject::Upload))?;
            entries.extend(page.entries);
            match page.next_continuation {
                Some(next) => continuation = Some(next),
                None => return Ok(entries),
            }
        }
    }

    /// The stored parts of an upload, by number.
    async fn stored_parts(&self, bucket: &str, id: &str) -> S3Result<BTreeMap<i32, FileMeta>> {
        let prefix = format!("{}/part-", upload_dir(id));
        let entries = self.staged_entries(bucket, prefix.clone(), None).await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                ListEntry::File(meta) => {
                    let n = meta.path.strip_prefix(&prefix)?.parse::<i32>().ok()?;
                    Some((n, meta))
                }
                ListEntry::Prefix(_) => None,
            })
            .collect())
    }

    pub(crate) async fn create_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        object_path(&input.bucket, &input.key)?;
        if input.key.ends_with('/') {
            return Err(s3_error!(InvalidRequest, "directory markers hold no bytes to upload"));
        }
        let headers = Headers {
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding.clone(),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            expires: None,
        };
        let info = UploadInfo {
            key: input.key.clone(),
            initiated_ms: now_ms(),
            metadata: meta::stored(input.metadata.as_ref(), &headers)?,
            checksum_algorithm: input.checksum_algorithm.as_ref().map(|a| a.as_str().to_owned()),
        };
        let id = format!("{:032x}", rand::random::<u128>());
        let json = serde_json::to_vec(&info).map_err(|e| s3_error!(InternalError, "encode the upload record: {e}"))?;
        self.inner
            .client
            .put(&format!("/{}/{}/upload", input.bucket, upload_dir(&id)), json.into())
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let output = CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    /// A writer for a part (a part uploaded again replaces the old one).
    async fn part_writer(&self, bucket: &str, id: &str, number: i32) -> S3Result<hoard_client::Writer> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and {MAX_PARTS}, inclusive"
            ));
        }
        let path = format!("/{bucket}/{}/{}", upload_dir(id), part_name(number));
        self.inner
            .client
            .create(&path, CreateOptions::default())
            .await
            .map_err(|e| from_client(&e, Subject::Upload))
    }

    pub(crate) async fn upload(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let req_headers = req.headers;
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        self.upload_info(&input.bucket, Some(&input.key), &input.upload_id)
            .await?;
        let writer = self
            .part_writer(&input.bucket, &input.upload_id, input.part_number)
            .await?;
        let expect = Expect {
            len: input.content_length,
            md5: input.content_md5.as_deref(),
            checksum: checksum_of!(input),
            algorithm: input.checksum_algorithm.as_ref(),
            max: MAX_PUT_BYTES,
        };
        let body = input.body.ok_or_else(|| s3_error!(MissingRequestBodyError))?;
        let trailer = req.trailing_headers;
        let (meta, sent) = self
            .write_body(writer, body_chunks(body), &expect, move || {
                body::trailer_checksum(trailer.as_ref().and_then(s3s::TrailingHeaders::take).as_ref())
            })
            .await?;
        let headers = crate::objects::close_unread(&req_headers, meta.size);
        let output = with_checksum!(UploadPartOutput, sent, {
            e_tag: Some(strong(etag_of(&meta))),
        });
        Ok(S3Response::with_headers(output, headers))
    }

    pub(crate) async fn upload_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        self.upload_info(&input.bucket, Some(&input.key), &input.upload_id)
            .await?;
        let (_, src_path, source) = self
            .copy_source_checked(&input.copy_source, &copy_conditions_of!(input))
            .await?;
        let range = match &input.copy_source_range {
            None => 0..source.size,
            Some(r) => Range::parse(r)
                .map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "The x-amz-copy-source-range value must be of the form bytes=first-last"
                    )
                })?
                .check(source.size)?,
        };
        if range.end - range.start > MAX_PUT_BYTES {
            return Err(s3_error!(EntityTooLarge, "a part holds at most {MAX_PUT_BYTES} bytes"));
        }
        let file = self.read_source(&src_path, &source).await?;
        let writer = self
            .part_writer(&input.bucket, &input.upload_id, input.part_number)
            .await?;
        let expect = Expect {
            max: MAX_PUT_BYTES,
            ..Expect::default()
        };
        let chunks = self.source_chunks(file, range);
        let (meta, _) = self.write_body(writer, chunks, &expect, Checksum::default).await?;
        let output = UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(strong(etag_of(&meta))),
                last_modified: Some(last_modified(&meta)),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let dst = object_path(&input.bucket, &input.key)?;
        let info = self
            .upload_info(&input.bucket, Some(&input.key), &input.upload_id)
            .await?;
        let wanted = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| s3_error!(MalformedXML, "You must specify at least one part"))?;
        let stored = self.stored_parts(&input.bucket, &input.upload_id).await?;
        let chosen = choose_parts(&wanted, &stored)?;
        let digests: Vec<[u8; 16]> = chosen
            .iter()
            .map(|m| {
                etag::parse_md5_hex(&etag_of(m)).ok_or_else(|| s3_error!(InternalError, "a stored part has no MD5"))
            })
            .collect::<S3Result<_>>()?;
        let etag = etag::multipart_etag(&digests);
        let mut metadata: hoard_client::Metadata = info.metadata.clone();
        metadata.insert(ETAG_KEY.to_owned(), etag.clone());
        let exclusive = matches!(input.if_none_match, Some(ETagCondition::Any));
        let sources: Vec<(String, String)> = chosen.iter().map(|m| (m.path.clone(), m.version.clone())).collect();
        let gateway = self.clone();
        let (bucket, key, id) = (input.bucket.clone(), input.key.clone(), input.upload_id.clone());
        let streamed = self.inner.modes.get(&bucket) == Some(&WriteMode::Through);
        let finish = async move {
            let sources: Vec<(String, Option<&str>)> = sources
                .iter()
                .map(|(p, v)| (format!("/{bucket}/{p}"), Some(v.as_str())))
                .collect();
            let refs: Vec<(&str, Option<&str>)> = sources.iter().map(|(p, v)| (p.as_str(), *v)).collect();
            let options = ComposeOptions {
                remove_sources: true,
                metadata: Some(metadata),
                exclusive,
            };
            let meta = gateway
                .inner
                .client
                .compose(&dst, &refs, options)
                .await
                .map_err(|e| from_client(&e, Subject::Object))?;
            gateway.remove_upload(&bucket, &id).await;
            Ok(CompleteMultipartUploadOutput {
                bucket: Some(bucket.clone()),
                key: Some(key.clone()),
                e_tag: Some(strong(etag_of(&meta))),
                location: Some(format!("/{bucket}/{key}")),
                ..Default::default()
            })
        };
        if !streamed {
            // In the journal at once: answer with the result (and a failure's own status).
            return finish.await.map(S3Response::new);
        }
        // In `through` mode the compose uploads the whole object first: s3s answers 200 at once
        // and keeps the connection alive until the result (or the error) follows in the body.
        let (log_bucket, log_key) = (input.bucket, input.key);
        let started = std::time::Instant::now();
        let output = CompleteMultipartUploadOutput {
            future: Some(Box::pin(async move {
                let result = finish.await;
                let status = match &result {
                    Ok(_) => "ok",
                    Err(e) => {
                        crate::errors::log("CompleteMultipartUpload", &log_bucket, &log_key, e);
                        e.code().as_str()
                    }
                };
                crate::metrics::record("CompleteMultipartUpload", status, started.elapsed());
                result
            })),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    /// Delete what is left of an upload (its record, parts not completed); a failure is left to
    /// the sweeper.
    pub(crate) async fn remove_upload(&self, bucket: &str, id: &str) {
        let dir = format!("/{bucket}/{}", upload_dir(id));
        match self.inner.client.delete(&dir, true).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!(
                bucket,
                upload = id,
                "could not remove a finished upload's files (the sweeper will): {e}"
            ),
        }
    }

    pub(crate) async fn abort(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        self.upload_info(&input.bucket, Some(&input.key), &input.upload_id)
            .await?;
        let dir = format!("/{}/{}", input.bucket, upload_dir(&input.upload_id));
        self.inner
            .client
            .delete(&dir, true)
            .await
            .map_err(|e| from_client(&e, Subject::Upload))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(crate) async fn parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let info = self
            .upload_info(&input.bucket, Some(&input.key), &input.upload_id)
            .await?;
        let stored = self.stored_parts(&input.bucket, &input.upload_id).await?;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let after = input.part_number_marker.unwrap_or(0);
        let mut shown: Vec<Part> = Vec::new();
        let mut truncated = false;
        for (n, m) in stored.range(after.saturating_add(1)..) {
            if shown.len() as i32 == max {
                truncated = true;
                break;
            }
            shown.push(Part {
                part_number: Some(*n),
                e_tag: Some(strong(etag_of(m))),
                size: Some(m.size as i64),
                last_modified: Some(last_modified(m)),
                ..Default::default()
            });
        }
        let output = ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(info.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: truncated.then(|| shown.last().and_then(|p| p.part_number)).flatten(),
            max_parts: Some(max),
            is_truncated: Some(truncated),
            parts: Some(shown),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: info.checksum_algorithm.map(ChecksumAlgorithm::from),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    /// The ids of every upload directory of a bucket (with or without a record).
    pub(crate) async fn upload_ids(&self, bucket: &str) -> S3Result<Vec<String>> {
        let dir = uploads_dir();
        let entries = self.staged_entries(bucket, dir.clone(), Some("/")).await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                ListEntry::Prefix(p) => {
                    let id = p.strip_prefix(&dir)?.trim_end_matches('/');
                    valid_id(id).then(|| id.to_owned())
                }
                ListEntry::File(_) => None,
            })
            .collect())
    }

    /// When a part of an upload was last written (`None`: it has none, or they cannot be listed).
    pub(crate) async fn newest_part_ms(&self, bucket: &str, id: &str) -> Option<u64> {
        let parts = self.stored_parts(bucket, id).await.ok()?;
        parts.values().map(|m| m.mtime_ms).max()
    }

    /// Every upload in progress in a bucket: (id, info), sorted by key then id.
    pub(crate) async fn all_uploads(&self, bucket: &str) -> S3Result<Vec<(String, UploadInfo)>> {
        let ids = self.upload_ids(bucket).await?;
        let infos: Vec<(String, S3Result<UploadInfo>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let info = self.upload_info(bucket, None, &id).await;
                (id, info)
            })
            .buffered(INFOS_IN_FLIGHT)
            .collect()
            .await;
        let mut uploads: Vec<(String, UploadInfo)> = Vec::new();
        for (id, info) in infos {
            match info {
                Ok(info) => uploads.push((id, info)),
                // Completed or aborted meanwhile, or parts left without a record (the sweeper's).
                Err(e) if e.code() == &S3ErrorCode::NoSuchUpload => {}
                Err(e) => return Err(e),
            }
        }
        uploads.sort_by(|a, b| (&a.1.key, &a.0).cmp(&(&b.1.key, &b.0)));
        Ok(uploads)
    }

    pub(crate) async fn uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.check_bucket(&input.bucket)?;
        let all = self.all_uploads(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let mut uploads = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, String)> = None;
        for (id, info) in all {
            let key = &info.key;
            let after_marker = key.as_str() > key_marker.as_str()
                || (key == &key_marker && !id_marker.is_empty() && id.as_str() > id_marker.as_str());
            if !key.starts_with(&prefix) || !after_marker {
                continue;
            }
            if uploads.len() + prefixes.len() == max {
                truncated = true;
                break;
            }
            if let Some(d) = &delimiter
                && let Some(at) = key[prefix.len()..].find(d.as_str())
            {
                let common = format!("{prefix}{}", &key[prefix.len()..prefix.len() + at + d.len()]);
                if prefixes.last() != Some(&common) {
                    prefixes.push(common);
                }
                last = Some((key.clone(), id.clone()));
                continue;
            }
            last = Some((key.clone(), id.clone()));
            uploads.push(MultipartUpload {
                key: Some(key.clone()),
                upload_id: Some(id),
                initiated: Some(Timestamp::from(
                    UNIX_EPOCH + std::time::Duration::from_millis(info.initiated_ms),
                )),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: info.checksum_algorithm.map(ChecksumAlgorithm::from),
                ..Default::default()
            });
        }
        let output = ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            next_key_marker: truncated.then(|| last.as_ref().map(|l| l.0.clone())).flatten(),
            next_upload_id_marker: truncated.then(|| last.as_ref().map(|l| l.1.clone())).flatten(),
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            common_prefixes: Some(prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
            encoding_type: input.encoding_type,
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }
}

/// The stored parts a completion names, checked as S3 checks them: in ascending order, each
/// uploaded with the ETag given, each but the last at least 5 MiB.
fn choose_parts(wanted: &[CompletedPart], stored: &BTreeMap<i32, FileMeta>) -> S3Result<Vec<FileMeta>> {
    let numbers: Vec<i32> = wanted.iter().map(|p| p.part_number.unwrap_or(0)).collect();
    if numbers.windows(2).any(|w| w[0] >= w[1]) || numbers.first().is_some_and(|n| *n < 1) {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidPartOrder,
            "The list of parts was not in ascending order. Parts must be ordered by part number.",
        ));
    }
    let mut chosen = Vec::with_capacity(wanted.len());
    for (part, n) in wanted.iter().zip(&numbers) {
        let meta = stored
            .get(n)
            .filter(|meta| part.e_tag.as_ref().is_none_or(|e| e.value() == etag_of(meta)))
            .ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidPart,
                    format!(
                        "One or more of the specified parts could not be found or its entity tag did not match: part {n}"
                    ),
                )
            })?;
        chosen.push(meta.clone());
    }
    if let Some((n, meta)) = numbers
        .iter()
        .zip(&chosen)
        .take(chosen.len().saturating_sub(1))
        .find(|(_, m)| m.size < MIN_PART_BYTES)
    {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooSmall,
            format!(
                "Your proposed upload is smaller than the minimum allowed object size: part {n} has {} bytes, the minimum is {MIN_PART_BYTES}",
                meta.size
            ),
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i32, size: u64, etag: &str) -> (i32, FileMeta) {
        let meta = FileMeta {
            path: format!("p{n}"),
            size,
            version: "v".into(),
            mtime_ms: 0,
            homed: true,
            metadata: Some(vec![(ETAG_KEY.to_owned(), etag.to_owned())]),
        };
        (n, meta)
    }

    fn completed(n: i32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: Some(n),
            e_tag: Some(ETag::Strong(etag.into())),
            ..Default::default()
        }
    }

    #[test]
    fn completions_are_checked_as_s3_checks_them() {
        let stored: BTreeMap<i32, FileMeta> = [part(1, 5 << 20, "a"), part(2, 1, "b"), part(3, 5 << 20, "c")].into();
        let ok = choose_parts(&[completed(1, "a"), completed(2, "b")], &stored).expect("valid");
        assert_eq!(ok.len(), 2);
        let code = |parts: &[CompletedPart]| choose_parts(parts, &stored).expect_err("refused").code().clone();
        assert_eq!(
            code(&[completed(2, "b"), completed(1, "a")]),
            S3ErrorCode::InvalidPartOrder
        );
        assert_eq!(code(&[completed(1, "a"), completed(4, "d")]), S3ErrorCode::InvalidPart);
        assert_eq!(code(&[completed(1, "x")]), S3ErrorCode::InvalidPart);
        assert_eq!(
            code(&[completed(2, "b"), completed(3, "c")]),
            S3ErrorCode::EntityTooSmall
        );
        assert!(valid_id(&format!("{:032x}", 7u128)) && !valid_id("../../etc") && !valid_id("abc"));
    }
}
