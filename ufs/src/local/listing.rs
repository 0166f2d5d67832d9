//! S3 listing semantics over a sorted sequence of keys.
//!
//! S3's `ListObjectsV2` is the contract every under-store follows: keys in byte order, a prefix
//! filter, grouping by a delimiter into common prefixes, and pages that resume strictly after the
//! last entry returned. Doing it once here, as a pure function over sorted keys, keeps the local
//! store and the in-memory test double in agreement with each other and with S3. The function
//! pulls keys lazily and stops once a page is full, so a sorted directory walk
//! ([`super::walk`]) never reads more of the tree than the page needs.

use crate::ListRequest;

/// Entries per page when the request asks for 0 (S3's default and maximum).
pub(crate) const DEFAULT_MAX_KEYS: usize = 1000;

/// File names that hold in-flight writes; never listed, never valid as a key component.
pub(crate) const TMP_PREFIX: &str = ".hoard-tmp-";

/// Directory at the store's root that stages multipart uploads; never listed.
pub(crate) const MULTIPART_DIR: &str = ".hoard-multipart";

/// One page of a listing, before the objects are given their metadata.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyPage {
    /// Object keys, in order.
    pub objects: Vec<String>,
    /// Common prefixes, in order.
    pub common_prefixes: Vec<String>,
    /// The last entry returned, when more entries follow.
    pub next_continuation: Option<String>,
}

/// Applies `req` to `keys`, which must come sorted ascending (byte order) and free of
/// duplicates; stops at the first error.
///
/// An entry is either an object key or a common prefix; both sort in key order, because a common
/// prefix sorts before every key it groups and after every key before the group. The continuation
/// token is the last entry of the previous page, so a page starts strictly after it.
pub(crate) fn paginate<K, E>(keys: impl IntoIterator<Item = Result<K, E>>, req: &ListRequest) -> Result<KeyPage, E>
where
    K: AsRef<str>,
{
    let max = if req.max_keys == 0 {
        DEFAULT_MAX_KEYS
    } else {
        req.max_keys as usize
    };
    let after = req.continuation.as_deref();
    let delimiter = req.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut page = KeyPage::default();
    let mut taken = 0usize;
    let mut previous = String::new(); // Only kept in debug builds, to check the order.
    for key in keys {
        let key = key?;
        let key = key.as_ref();
        if cfg!(debug_assertions) {
            assert!(
                previous.is_empty() || previous.as_str() < key,
                "keys out of order: {previous:?}, {key:?}"
            );
            key.clone_into(&mut previous);
        }
        let Some(rest) = key.strip_prefix(req.prefix.as_str()) else {
            continue;
        };
        let group = delimiter.and_then(|d| rest.find(d).map(|i| &key[..req.prefix.len() + i + d.len()]));
        let entry = group.unwrap_or(key);
        if after.is_some_and(|a| entry <= a) || page.common_prefixes.last().is_some_and(|p| p == entry) {
            continue;
        }
        if taken == max {
            page.next_continuation = last_entry(&page);
            break;
        }
        taken += 1;
        match group {
            Some(prefix) => page.common_prefixes.push(prefix.to_owned()),
            None => page.objects.push(key.to_owned()),
        }
    }
    Ok(page)
}

/// The greatest entry of a page (objects and prefixes are each sorted, so it is one of the lasts).
fn last_entry(page: &KeyPage) -> Option<String> {
    let object = page.objects.last();
    let prefix = page.common_prefixes.last();
    object.max(prefix).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(keys: &[&str], req: &ListRequest) -> KeyPage {
        let keys = keys.iter().map(Ok::<_, std::convert::Infallible>);
        paginate(keys, req).unwrap_or_else(|never| match never {})
    }

    fn req(prefix: &str, delimiter: Option<&str>, continuation: Option<&str>, max_keys: u32) -> ListRequest {
        ListRequest {
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            continuation: continuation.map(str::to_owned),
            max_keys,
        }
    }

    const KEYS: [&str; 6] = ["a-x", "a/b/c", "a/d", "b", "ba/x", "e"];

    #[test]
    fn prefix_filters_without_grouping() {
        let page = run(&KEYS, &req("a", None, None, 0));
        assert_eq!(page.objects, ["a-x", "a/b/c", "a/d"]);
        assert!(page.common_prefixes.is_empty());
        assert_eq!(page.next_continuation, None);
    }

    #[test]
    fn delimiter_groups_after_the_prefix() {
        let page = run(&KEYS, &req("", Some("/"), None, 0));
        assert_eq!(page.objects, ["a-x", "b", "e"]);
        assert_eq!(page.common_prefixes, ["a/", "ba/"]);
        let page = run(&KEYS, &req("a/", Some("/"), None, 0));
        assert_eq!(page.objects, ["a/d"]);
        assert_eq!(page.common_prefixes, ["a/b/"]);
    }

    #[test]
    fn pages_resume_strictly_after_the_token_and_count_prefixes_once() {
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = run(&KEYS, &req("", Some("/"), token.as_deref(), 2));
            assert!(page.objects.len() + page.common_prefixes.len() <= 2);
            seen.extend(page.objects.iter().chain(&page.common_prefixes).cloned());
            match page.next_continuation {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["a-x", "a/", "b", "ba/", "e"]);
    }

    #[test]
    fn a_full_last_page_has_no_token() {
        let page = run(&["x", "y"], &req("", None, None, 2));
        assert_eq!(page.objects, ["x", "y"]);
        assert_eq!(page.next_continuation, None);
        let page = run(&["x", "y", "z"], &req("", None, Some("x"), 1));
        assert_eq!(page.objects, ["y"]);
        assert_eq!(page.next_continuation.as_deref(), Some("y"));
    }

    #[test]
    fn errors_stop_the_listing() {
        let keys = [Ok("a"), Err("broken"), Ok("b")];
        assert_eq!(paginate(keys, &req("", None, None, 0)), Err("broken"));
    }
}
