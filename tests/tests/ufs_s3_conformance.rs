//! The under-store contract against a real S3 server: `S3UnderStore` on Garage must pass the same
//! conformance suite as the local and in-memory stores, reach the bucket through a mount URI, and
//! tell retryable failures (server down) from permanent ones (bad credentials).

use bytes::Bytes;
use hoard_tests::garage::Garage;
use hoard_ufs::{S3Config, UfsError, UnderStore, conformance, open_uri};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_under_store_passes_the_conformance_suite_on_garage() -> anyhow::Result<()> {
    let garage = Garage::start().await?;
    let store = garage.under_store("conformance").await?;
    conformance::run_all(&store).await;
    let whole_bucket = garage.under_store("").await?;
    let left = conformance::list_all(&whole_bucket, &Default::default()).await;
    assert!(
        left.objects.is_empty(),
        "the suite left objects behind: {:?}",
        left.objects
    );
    Ok(())
}

#[tokio::test]
async fn a_mount_uri_of_the_bucket_opens_through_open_uri() -> anyhow::Result<()> {
    let garage = Garage::start().await?;
    let store = open_uri(&garage.uri("via-uri"), &garage.s3_config()).await?;
    let meta = store.put("dir/object", Bytes::from_static(b"through the uri")).await?;
    assert_eq!(meta.path, "dir/object");
    let whole_bucket = garage.under_store("").await?;
    let seen = whole_bucket.stat("via-uri/dir/object").await?;
    assert_eq!(
        (seen.size, &seen.version),
        (15, &meta.version),
        "the URI's prefix is a key prefix"
    );
    let bucket_uri = open_uri(&garage.uri(""), &garage.s3_config()).await?;
    assert_eq!(
        &bucket_uri.read_range("via-uri/dir/object", 0..7, None).await?[..],
        b"through"
    );
    Ok(())
}

#[tokio::test]
async fn objects_survive_a_restart_and_a_stopped_server_is_a_retryable_error() -> anyhow::Result<()> {
    let mut garage = Garage::start().await?;
    let store = garage.under_store("restart").await?;
    let data = conformance::pattern(9, 64 * 1024);
    let meta = store.put("object", data.clone()).await?;

    garage.stop();
    assert!(!garage.is_running());
    let err = store.stat("object").await.expect_err("the server is down");
    assert!(err.is_retryable(), "a stopped server should be retryable: {err:?}");

    garage.restart().await?;
    assert!(garage.is_running());
    assert_eq!(store.stat("object").await?.version, meta.version);
    assert!(store.read_range("object", 0..u64::MAX, Some(&meta.version)).await? == data);
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_error() -> anyhow::Result<()> {
    let garage = Garage::start().await?;
    let cfg = S3Config {
        secret_access_key: Some("0".repeat(64)),
        ..garage.s3_config()
    };
    let store = hoard_ufs::S3UnderStore::new(garage.bucket.clone(), String::new(), &cfg).await?;
    let err = store.stat("anything").await.expect_err("the signature is wrong");
    assert!(matches!(err, UfsError::Remote { retryable: false, .. }), "{err:?}");
    Ok(())
}
