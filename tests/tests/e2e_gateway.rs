//! The S3 gateway served by real worker processes, driven by the AWS Rust SDK (through hoard's
//! own `S3UnderStore`, which is an `aws-sdk-s3` client): the under-store conformance suite passes
//! through it, multipart uploads survive a worker restart, cached objects are served with the S3
//! server down, and a worker killed under a GET does not break the body. The Python suite
//! (`tests/gateway/`) covers each operation with boto3, the AWS CLI and s3torchconnector.

use std::time::Duration;

use bytes::Bytes;
use hoard_tests::cluster::{Cluster, Mount};
use hoard_tests::garage::Garage;
use hoard_tests::pattern;
use hoard_transport::ring::{Ring, chunk_key};
use hoard_ufs::{S3Config, S3UnderStore, UnderStore, conformance};

const ACCESS_KEY: &str = "e2e-gateway";
const SECRET_KEY: &str = "e2e-gateway-secret-key";

fn gateway_keys() -> String {
    format!("[[gateway.keys]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n")
}

/// An S3 client of worker `i`'s gateway, for the keys of `bucket`.
async fn gateway_store(cluster: &Cluster, i: usize, bucket: &str) -> anyhow::Result<S3UnderStore> {
    let addr = cluster.workers[i].gateway.expect("the worker serves the gateway");
    let config = S3Config {
        endpoint: Some(format!("http://{addr}")),
        region: Some("us-east-1".into()),
        path_style: true,
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
    };
    Ok(S3UnderStore::new(bucket.to_owned(), String::new(), &config).await?)
}

fn garage_s3(garage: &Garage) -> String {
    format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_under_store_conformance_suite_passes_through_the_gateway() -> anyhow::Result<()> {
    let garage = Garage::start().await?;
    let mounts = [Mount::new("remote", &garage.uri("through-gateway")).write_mode("back")];
    let cluster = Cluster::start_with_gateways(2, &mounts, Some(garage_s3(&garage)), &gateway_keys(), "32MiB")?;
    let store = gateway_store(&cluster, 0, "remote").await?;
    conformance::run_all(&store).await;
    // What the suite wrote reaches the S3 server (written back), and nothing staged does.
    cluster.client().sync("/remote").await?;
    let direct = garage.under_store("through-gateway/").await?;
    let left = conformance::list_all(&direct, &Default::default()).await;
    assert!(
        left.objects.iter().all(|o| !o.path.contains(".hoard-staging")),
        "staged parts reached the S3 server: {:?}",
        left.objects
    );
    cluster.assert_clean_logs();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_survives_a_restart_of_its_coordinator() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mounts = [Mount::new("data", &format!("file://{}", dir.path().display())).write_mode("back")];
    let mut cluster = Cluster::start_with_gateways(1, &mounts, None, &gateway_keys(), "32MiB")?;
    let store = gateway_store(&cluster, 0, "data").await?;
    let (one, two) = (Bytes::from(pattern(1, 5 << 20)), Bytes::from(pattern(2, 1 << 20)));
    let id = store.create_multipart("big.bin").await?;
    let first = store.upload_part("big.bin", &id, 1, one.clone()).await?;
    // SIGKILL: the part was acknowledged, so it is in the coordinator's journal.
    cluster.kill_worker(0);
    cluster.start_worker(0)?;
    let store = gateway_store(&cluster, 0, "data").await?;
    let second = store.upload_part("big.bin", &id, 2, two.clone()).await?;
    let done = store.complete_multipart("big.bin", &id, vec![first, second]).await?;
    assert_eq!(done.size, (6 << 20) as u64);
    let read = store.read_range("big.bin", 0..u64::MAX, None).await?;
    assert!(read == [one, two].concat(), "the object is its parts, in order");
    cluster.client().sync("/data").await?;
    assert_eq!(std::fs::read(dir.path().join("big.bin"))?.len(), 6 << 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_objects_are_served_with_the_s3_server_down() -> anyhow::Result<()> {
    let mut garage = Garage::start().await?;
    let mounts = [Mount::new("remote", &garage.uri("cached"))];
    let extra = format!("{}\n[worker]\nmetadata_ttl = \"1h\"\n", gateway_keys());
    let cluster = Cluster::start_with_gateways(2, &mounts, Some(garage_s3(&garage)), &extra, "64MiB")?;
    let direct = garage.under_store("cached").await?;
    let data = Bytes::from(pattern(3, 3 << 20));
    let put = direct.put("dataset/shard-0", data.clone()).await?;
    let store = gateway_store(&cluster, 0, "remote").await?;
    let cold = store.stat("dataset/shard-0").await?;
    assert_eq!(
        cold.version, put.version,
        "an object hoard only caches keeps the S3 server's ETag"
    );
    assert!(store.read_range("dataset/shard-0", 0..u64::MAX, None).await? == data);
    garage.stop();
    let other = gateway_store(&cluster, 1, "remote").await?;
    for s in [&store, &other] {
        assert!(s.read_range("dataset/shard-0", 0..u64::MAX, Some(&put.version)).await? == data);
        assert!(s.read_range("dataset/shard-0", 1000..2000, None).await? == data.slice(1000..2000));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_under_a_get_does_not_break_the_body() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // 64 MiB chunks over 3 workers: a 256 MiB object has pages on every one of them.
    let data = pattern(4, 256 << 20);
    std::fs::write(dir.path().join("large.bin"), &data)?;
    let mounts = [Mount::new("data", &format!("file://{}", dir.path().display()))];
    let extra = format!("{}\n[client]\nrequest_timeout = \"2s\"\n", gateway_keys());
    let mut cluster = Cluster::start_with_gateways(3, &mounts, None, &extra, "128MiB")?;
    // The victim: a worker other than the gateway's own that owns a chunk of the object.
    let ids: Vec<&str> = cluster.workers.iter().map(|w| w.id.as_str()).collect();
    let ring = Ring::new(&ids, cluster.config.virtual_nodes);
    let victim = (0..4)
        .filter_map(|chunk| ring.owner(chunk_key("data", "large.bin", chunk)))
        .find(|owner| *owner != 0)
        .expect("4 chunks over 3 workers: one is not on the gateway's worker");
    let store = gateway_store(&cluster, 0, "data").await?;
    let reader = tokio::spawn(async move { store.read_range("large.bin", 0..u64::MAX, None).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_worker(victim);
    let read = reader.await??;
    assert_eq!(read.len(), data.len());
    assert!(read == data, "every byte, though a worker died mid-read");
    Ok(())
}
