//! [`InMemoryStore`]: an under-store in a `BTreeMap`, for unit tests of the crates above.
//!
//! Tests of the worker's fill path or the client's fallback need an under-store that is fast,
//! deterministic and inspectable, without a server. It follows the same contract as the real
//! stores (it runs the [`conformance`](crate::conformance) suite), including S3 key semantics:
//! `a` and `a/b` may both exist. Versions come from a counter, so every write is a new version.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::{
    CompletedPart, ListPage, ListRequest, Metadata, ObjectMeta, UfsError, UfsResult, UnderStore, validate_metadata,
};

/// An under-store held in memory. Cheap to create; all data is lost when it is dropped.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Object>,
    uploads: HashMap<String, PendingUpload>,
    /// Source of versions, upload ids and part tags.
    counter: u64,
}

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    version: String,
    mtime: SystemTime,
    metadata: Metadata,
}

#[derive(Debug)]
struct PendingUpload {
    key: String,
    metadata: Metadata,
    /// Part number → (tag, bytes).
    parts: BTreeMap<u32, (String, Bytes)>,
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn insert(&mut self, path: &str, data: Bytes, metadata: Metadata) -> ObjectMeta {
        let object = Object {
            data,
            version: format!("v{}", self.next()),
            mtime: SystemTime::now(),
            metadata,
        };
        let meta = meta_of(path, &object);
        self.objects.insert(path.to_owned(), object);
        meta
    }

    fn upload(&mut self, path: &str, upload_id: &str) -> UfsResult<&mut PendingUpload> {
        match self.uploads.get_mut(upload_id) {
            Some(upload) if upload.key == path => Ok(upload),
            _ => Err(UfsError::NotFound {
                path: format!("{path} (upload {upload_id})"),
            }),
        }
    }
}

fn meta_of(path: &str, object: &Object) -> ObjectMeta {
    ObjectMeta {
        path: path.to_owned(),
        size: object.data.len() as u64,
        version: object.version.clone(),
        mtime: Some(object.mtime),
        metadata: Some(object.metadata.clone()),
    }
}

fn check_key(path: &str) -> UfsResult<()> {
    if path.is_empty() {
        return Err(UfsError::Invalid {
            path: String::new(),
            reason: "empty key".to_owned(),
        });
    }
    Ok(())
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of objects stored.
    pub fn len(&self) -> usize {
        self.state.lock().objects.len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.state.lock().objects.is_empty()
    }

    /// Number of multipart uploads started and neither completed nor aborted.
    pub fn pending_uploads(&self) -> usize {
        self.state.lock().uploads.len()
    }

    fn object(&self, path: &str) -> UfsResult<Object> {
        check_key(path)?;
        let state = self.state.lock();
        state
            .objects
            .get(path)
            .cloned()
            .ok_or_else(|| UfsError::NotFound { path: path.to_owned() })
    }
}

#[async_trait]
impl UnderStore for InMemoryStore {
    async fn stat(&self, path: &str) -> UfsResult<ObjectMeta> {
        Ok(meta_of(path, &self.object(path)?))
    }

    async fn read_range(&self, path: &str, range: Range<u64>, version: Option<&str>) -> UfsResult<Bytes> {
        let object = self.object(path)?;
        if let Some(expected) = version.filter(|v| *v != object.version) {
            return Err(UfsError::VersionMismatch {
                path: path.to_owned(),
                expected: expected.to_owned(),
            });
        }
        if range.start > range.end {
            return Err(UfsError::invalid(
                path,
                format!("range {}..{} ends before it starts", range.start, range.end),
            ));
        }
        let size = object.data.len() as u64;
        let (start, end) = (range.start.min(size), range.end.min(size));
        // Both bounds are at most the length of an in-memory buffer, so they fit in usize.
        Ok(object.data.slice(start as usize..end as usize))
    }

    async fn list(&self, req: &ListRequest) -> UfsResult<ListPage> {
        let state = self.state.lock();
        // Keys before the token belong to earlier pages (see `paginate`), so start at the later of
        // the prefix and the token.
        let start = req
            .continuation
            .as_ref()
            .filter(|t| **t > req.prefix)
            .unwrap_or(&req.prefix);
        let keys = state.objects.range::<String, _>(start..).map(|(k, _)| k.as_str());
        let keys = keys.take_while(|k| k.starts_with(&req.prefix)).map(Ok::<_, Infallible>);
        let page = crate::local::paginate(keys, req).unwrap_or_else(|never| match never {});
        // Like S3, listings carry no user metadata.
        let objects = page
            .objects
            .iter()
            .map(|k| ObjectMeta {
                metadata: None,
                ..meta_of(k, &state.objects[k])
            })
            .collect();
        Ok(ListPage {
            objects,
            common_prefixes: page.common_prefixes,
            next_continuation: page.next_continuation,
        })
    }

    async fn put_with(&self, path: &str, data: Bytes, metadata: &Metadata) -> UfsResult<ObjectMeta> {
        check_key(path)?;
        validate_metadata(path, metadata)?;
        Ok(self.state.lock().insert(path, data, metadata.clone()))
    }

    async fn create_multipart_with(&self, path: &str, metadata: &Metadata) -> UfsResult<String> {
        check_key(path)?;
        validate_metadata(path, metadata)?;
        let mut state = self.state.lock();
        let id = format!("upload-{}", state.next());
        state.uploads.insert(
            id.clone(),
            PendingUpload {
                key: path.to_owned(),
                metadata: metadata.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> UfsResult<CompletedPart> {
        crate::parts::check_part_number(path, part_number)?;
        let mut state = self.state.lock();
        let tag = format!("part-{}", state.next());
        state
            .upload(path, upload_id)?
            .parts
            .insert(part_number, (tag.clone(), data));
        Ok(CompletedPart { part_number, tag })
    }

    async fn upload_part_copy(
        &self,
        path: &str,
        upload_id: &str,
        part_number: u32,
        src: &str,
        range: Range<u64>,
        src_version: Option<&str>,
    ) -> UfsResult<CompletedPart> {
        crate::parts::check_part_number(path, part_number)?;
        let object = self.object(src)?;
        if let Some(expected) = src_version.filter(|v| *v != object.version) {
            return Err(UfsError::VersionMismatch {
                path: src.to_owned(),
                expected: expected.to_owned(),
            });
        }
        crate::parts::check_copy_range(src, &range, object.data.len() as u64)?;
        // The range lies within an in-memory buffer, so both bounds fit in usize.
        let data = object.data.slice(range.start as usize..range.end as usize);
        let mut state = self.state.lock();
        let tag = format!("part-{}", state.next());
        let upload = state.upload(path, upload_id)?;
        upload.parts.insert(part_number, (tag.clone(), data));
        Ok(CompletedPart { part_number, tag })
    }

    async fn complete_multipart(
        &self,
        path: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> UfsResult<ObjectMeta> {
        let mut state = self.state.lock();
        let upload = state.upload(path, upload_id)?;
        crate::parts::check_part_list(path, &parts)?;
        let mut data = BytesMut::new();
        for part in &parts {
            match upload.parts.get(&part.part_number) {
                Some((tag, bytes)) if *tag == part.tag => data.extend_from_slice(bytes),
                _ => {
                    return Err(UfsError::invalid(
                        path,
                        format!("part {} with tag {} was not uploaded", part.part_number, part.tag),
                    ));
                }
            }
        }
        let metadata = std::mem::take(&mut upload.metadata);
        state.uploads.remove(upload_id);
        Ok(state.insert(path, data.freeze(), metadata))
    }

    async fn abort_multipart(&self, path: &str, upload_id: &str) -> UfsResult<()> {
        let mut state = self.state.lock();
        state.upload(path, upload_id)?;
        state.uploads.remove(upload_id);
        Ok(())
    }

    async fn delete(&self, path: &str) -> UfsResult<()> {
        check_key(path)?;
        self.state.lock().objects.remove(path);
        Ok(())
    }

    async fn copy_with(&self, src: &str, dst: &str, metadata: Option<&Metadata>) -> UfsResult<ObjectMeta> {
        let source = self.object(src)?;
        check_key(dst)?;
        let metadata = match metadata {
            Some(m) => {
                validate_metadata(dst, m)?;
                m.clone()
            }
            None => source.metadata,
        };
        Ok(self.state.lock().insert(dst, source.data, metadata))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let store = InMemoryStore::new();
        crate::conformance::run_all(&store).await;
        assert!(store.is_empty(), "the suite cleans up after itself");
        assert_eq!(store.pending_uploads(), 0);
    }

    #[tokio::test]
    async fn every_write_is_a_new_version() {
        let store = InMemoryStore::new();
        let a = store.put("k", Bytes::from_static(b"same")).await.expect("put");
        let b = store.put("k", Bytes::from_static(b"same")).await.expect("put");
        assert_ne!(a.version, b.version);
        let c = store.copy("k", "k2").await.expect("copy");
        assert_ne!(b.version, c.version);
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn a_key_and_its_children_coexist() {
        let store = InMemoryStore::new();
        store.put("a", Bytes::from_static(b"1")).await.expect("put a");
        store.put("a/b", Bytes::from_static(b"2")).await.expect("put a/b");
        let req = ListRequest {
            delimiter: Some("/".to_owned()),
            ..ListRequest::default()
        };
        let page = store.list(&req).await.expect("list");
        assert_eq!(page.objects.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(page.common_prefixes, ["a/"]);
    }
}
