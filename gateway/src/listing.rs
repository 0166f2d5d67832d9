//! Buckets and listings: every mount is a bucket; ListObjectsV2 and ListObjects page through
//! hoard's listings of the mount (the coordinator merges what hoard wrote and has not yet
//! persisted over the under-store's listing), with directory markers listed as S3 lists them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hoard_client::{FileMeta, KeyQuery, ListEntry, ListReply};
use hoard_transport::wire::is_staged;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::errors::{Subject, from_client};
use crate::etag::{EMPTY_ETAG, etag_of, last_modified, strong};
use crate::service::Gateway;

/// S3's largest page.
const MAX_KEYS: i32 = 1000;

/// One listing page, as both listing versions need it.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    /// The key or prefix the page ends with.
    last: Option<String>,
    /// hoard's token for the next page.
    next: Option<String>,
}

impl Page {
    fn empty() -> Page {
        Page {
            contents: Vec::new(),
            prefixes: Vec::new(),
            last: None,
            next: None,
        }
    }
}

/// S3's `encoding-type=url`: keys percent-encoded except unreserved characters and `/`.
fn encode(s: &str, url: bool) -> String {
    if !url {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Continuation tokens are hoard's (an under-store's token, or a key to start after), made
/// opaque and safe in a query string.
fn token_out(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(token)
}

fn token_in(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

fn object(meta: &FileMeta, url: bool, owner: Option<Owner>) -> Object {
    let marker = meta.path.ends_with('/');
    Object {
        key: Some(encode(&meta.path, url)),
        size: Some(if marker { 0 } else { meta.size as i64 }),
        e_tag: Some(strong(if marker { EMPTY_ETAG.into() } else { etag_of(meta) })),
        last_modified: Some(last_modified(meta)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner,
        ..Default::default()
    }
}

fn owner() -> Owner {
    Owner {
        display_name: Some("hoard".into()),
        id: Some("hoard".into()),
    }
}

impl Gateway {
    /// One page of a bucket's keys.
    async fn page(&self, bucket: &str, query: KeyQuery, url: bool, owner: Option<Owner>) -> S3Result<Page> {
        self.check_bucket(bucket)?;
        // The staging directory is hoard's: listing into it shows nothing.
        if is_staged(&query.prefix) {
            return Ok(Page::empty());
        }
        let ListReply {
            entries,
            next_continuation,
        } = self
            .inner
            .client
            .list_keys(bucket, query)
            .await
            .map_err(|e| from_client(&e, Subject::Object))?;
        let mut page = Page {
            contents: Vec::new(),
            prefixes: Vec::new(),
            last: None,
            next: next_continuation,
        };
        for entry in entries {
            match entry {
                ListEntry::File(meta) => {
                    page.last = Some(meta.path.clone());
                    page.contents.push(object(&meta, url, owner.clone()));
                }
                ListEntry::Prefix(p) => {
                    page.prefixes.push(CommonPrefix {
                        prefix: Some(encode(&p, url)),
                    });
                    page.last = Some(p);
                }
            }
        }
        Ok(page)
    }

    pub(crate) async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS);
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let page = if max_keys == 0 {
            self.check_bucket(&input.bucket)?;
            Page::empty()
        } else {
            let query = KeyQuery {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                continuation: input.continuation_token.as_deref().map(token_in).transpose()?,
                start_after: input.start_after.clone(),
                max_keys: max_keys as u32,
            };
            let owner = input.fetch_owner.unwrap_or(false).then(owner);
            self.page(&input.bucket, query, url, owner).await?
        };
        let output = ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix, url)),
            delimiter: delimiter.map(|d| encode(&d, url)),
            max_keys: Some(max_keys),
            key_count: Some((page.contents.len() + page.prefixes.len()) as i32),
            is_truncated: Some(page.next.is_some()),
            continuation_token: input.continuation_token,
            next_continuation_token: page.next.as_deref().map(token_out),
            start_after: input.start_after.map(|s| encode(&s, url)),
            encoding_type: input.encoding_type,
            contents: Some(page.contents),
            common_prefixes: Some(page.prefixes),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn list_v1(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let url = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let max_keys = input.max_keys.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS);
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        // Version 1 pages by key: the next page starts after the last key (or prefix) of this one.
        let query = KeyQuery {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            continuation: None,
            start_after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys.max(1) as u32,
        };
        let page = self.page(&input.bucket, query, url, Some(owner())).await?;
        let (page, truncated) = if max_keys == 0 {
            let empty = Page::empty();
            (empty, false)
        } else {
            let truncated = page.next.is_some();
            (page, truncated)
        };
        let output = ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix, url)),
            delimiter: delimiter.map(|d| encode(&d, url)),
            marker: Some(input.marker.map(|m| encode(&m, url)).unwrap_or_default()),
            next_marker: truncated
                .then(|| page.last.as_deref().map(|l| encode(l, url)))
                .flatten(),
            max_keys: Some(max_keys),
            is_truncated: Some(truncated),
            encoding_type: input.encoding_type,
            contents: Some(page.contents),
            common_prefixes: Some(page.prefixes),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn buckets(&self, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let created = Timestamp::from(std::time::UNIX_EPOCH);
        let mut names: Vec<&String> = self.inner.anonymous.keys().collect();
        names.sort();
        let buckets = names
            .into_iter()
            .map(|name| Bucket {
                name: Some(name.clone()),
                creation_date: Some(created.clone()),
                bucket_region: Some(self.inner.settings.region.clone()),
            })
            .collect();
        let output = ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner()),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn head_bucket_of(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let output = HeadBucketOutput {
            bucket_region: Some(self.inner.settings.region.clone()),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    pub(crate) async fn location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.check_bucket(&req.input.bucket)?;
        let region = &self.inner.settings.region;
        // S3 answers an empty constraint for us-east-1.
        let location_constraint = (region != "us-east-1").then(|| BucketLocationConstraint::from(region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved_characters() {
        assert_eq!(encode("a b/ç+x.txt", true), "a%20b/%C3%A7%2Bx.txt");
        assert_eq!(encode("a b", false), "a b");
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = "hoard-after:dir/ké y+1";
        assert_eq!(token_in(&token_out(token)).expect("round trip"), token);
        assert!(token_in("%%%").is_err());
    }
}
