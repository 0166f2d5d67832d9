//! End to end: a real Garage S3 server, three real `hoard worker` processes on loopback, and the
//! client library reading through them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytesize::ByteSize;
use hoard_client::TransportChoice;
use hoard_tests::cluster::Cluster;
use hoard_tests::garage::Garage;
use hoard_tests::pattern;
use hoard_ufs::{S3UnderStore, UnderStore};
use rand::{Rng, SeedableRng};

const MIB: usize = 1 << 20;

/// Small chunks so that a 100 MiB object spreads over all three workers.
const CLUSTER_TOML: &str = "chunk_size = \"8MiB\"\n[client]\nrequest_timeout = \"5s\"\nworker_retry_after = \"2s\"\n";

async fn setup(extra: &str) -> (Garage, Arc<S3UnderStore>, Cluster) {
    let garage = Garage::start().await.expect("start garage");
    let store = S3UnderStore::new(garage.bucket.clone(), "e2e".into(), &garage.s3_config())
        .await
        .expect("s3 store");
    let s3 = format!(
        "endpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint, garage.region, garage.access_key, garage.secret_key
    );
    let toml = format!("{CLUSTER_TOML}{extra}");
    let cluster = Cluster::start(3, &[("s3", garage.uri("e2e"))], Some(s3), &toml).expect("start workers");
    (garage, Arc::new(store), cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_read_through_hoard_equal_the_objects() {
    let (_garage, store, cluster) = setup("").await;
    let client = cluster.client();
    let sizes = [0, 1, 4096, MIB - 1, MIB, MIB + 1, 100 * MIB];
    for (seed, size) in sizes.iter().enumerate() {
        store
            .put(&format!("obj-{size}"), Bytes::from(pattern(seed as u64, *size)))
            .await
            .expect("put");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (seed, size) in sizes.iter().enumerate() {
        let path = format!("/s3/obj-{size}");
        let want = pattern(seed as u64, *size);
        assert_eq!(client.stat(&path).await.expect("stat").size, *size as u64);
        let all = client.read_all(&path).await.expect("read all");
        assert!(all[..] == want[..], "whole object {path} differs");
        for _ in 0..20 {
            let off = rng.random_range(0..=*size);
            let len = rng.random_range(0..=(*size - off).min(3 * MIB) + 10);
            let got = client.read(&path, off as u64, len as u64).await.expect("read range");
            let end = (off + len).min(*size);
            assert!(got[..] == want[off..end], "{path} range {off}+{len} differs");
        }
    }
    // Every worker took part: the 100 MiB object has 13 chunks.
    for i in 0..3 {
        assert!(
            cluster.metric(i, "worker_bytes_served") > 0.0,
            "worker {i} served nothing"
        );
    }
    let missing = client.stat("/s3/no-such-object").await.expect_err("missing object");
    assert!(missing.is_not_found(), "{missing:?}");
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_read_is_a_cache_hit_and_survives_the_s3_server_stopping() {
    let (mut garage, store, cluster) = setup("[worker]\nmetadata_ttl = \"10m\"\n").await;
    // Over TCP, so that the workers see the warm read (over shared memory it would be copied
    // from cached page locations without asking them).
    let client = cluster.client_over(TransportChoice::Tcp);
    let want = pattern(7, 20 * MIB + 123);
    store.put("warm.bin", Bytes::from(want.clone())).await.expect("put");
    assert!(client.read_all("/s3/warm.bin").await.expect("cold read")[..] == want[..]);
    let (hits, ufs) = (
        cluster.metric_total("worker_page_hits"),
        cluster.metric_total("worker_ufs_requests"),
    );
    assert!(client.read_all("/s3/warm.bin").await.expect("warm read")[..] == want[..]);
    let hits_after = cluster.metric_total("worker_page_hits");
    assert!(
        hits_after >= hits + 21.0,
        "second read must hit all 21 pages: {hits} -> {hits_after}"
    );
    assert_eq!(
        cluster.metric_total("worker_ufs_requests"),
        ufs,
        "a warm read makes no under-store request"
    );

    garage.stop();
    let again = client
        .read_all("/s3/warm.bin")
        .await
        .expect("read with the S3 server down");
    assert!(again[..] == want[..]);
    let range = client
        .read("/s3/warm.bin", 5 * MIB as u64 + 7, 4096)
        .await
        .expect("range with S3 down");
    assert!(range[..] == want[5 * MIB + 7..5 * MIB + 7 + 4096]);
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwritten_object_is_read_fresh_after_the_metadata_ttl() {
    let (_garage, store, cluster) = setup("[worker]\nmetadata_ttl = \"1s\"\n").await;
    let client = cluster.client();
    let (v1, v2) = (pattern(1, 3 * MIB), pattern(2, 3 * MIB));
    store
        .put("changing.bin", Bytes::from(v1.clone()))
        .await
        .expect("put v1");
    assert!(client.read_all("/s3/changing.bin").await.expect("read v1")[..] == v1[..]);
    store
        .put("changing.bin", Bytes::from(v2.clone()))
        .await
        .expect("put v2 (same size)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = client.read_all("/s3/changing.bin").await.expect("read v2");
    assert!(got[..] == v2[..], "old pages were served after the object changed");
    let part = client
        .read("/s3/changing.bin", MIB as u64, 100)
        .await
        .expect("range of v2");
    assert!(part[..] == v2[MIB..MIB + 100]);
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_seen_by_a_read_refreshes_the_cached_stat_at_once() {
    // A long TTL: only the stale-version path can make hoard notice the change.
    let (_garage, store, cluster) = setup("[worker]\nmetadata_ttl = \"10m\"\n").await;
    let client = cluster.client();
    let (v1, v2) = (pattern(4, MIB), pattern(5, 2 * MIB + 3));
    store.put("grows.bin", Bytes::from(v1)).await.expect("put v1");
    assert_eq!(client.stat("/s3/grows.bin").await.expect("stat v1").size, MIB as u64);
    store.put("grows.bin", Bytes::from(v2.clone())).await.expect("put v2");
    // The cached stat still says v1; its pages were never cached, so the fill sees the change.
    let got = client.read_all("/s3/grows.bin").await.expect("read after the change");
    assert!(got[..] == v2[..], "a read after a seen change returns the new version");
    assert_eq!(
        client.stat("/s3/grows.bin").await.expect("stat v2").size,
        v2.len() as u64
    );
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_read_does_not_fail_the_read() {
    let (_garage, store, mut cluster) = setup("[worker]\nreadahead = \"0B\"\n").await;
    // One request in flight at a time, 1 MiB each: a cold 100 MiB read takes a while.
    let mut config = cluster.config.clone();
    config.client.parallel_requests = 1;
    config.client.max_request_bytes = ByteSize::mib(1);
    config.client.request_timeout = Duration::from_secs(3);
    let client = hoard_client::Client::builder().cluster(config).build().expect("client");
    let want = pattern(9, 100 * MIB);
    store.put("big.bin", Bytes::from(want.clone())).await.expect("put");
    let reader = tokio::spawn(async move { client.read_all("/s3/big.bin").await });
    // Kill once the read is under way: at least 10 MiB served, far from the 100 MiB end.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cluster.metric_total("worker_bytes_served") < (10 * MIB) as f64 {
        assert!(std::time::Instant::now() < deadline, "the read made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !reader.is_finished(),
        "the read finished before the kill: make it slower"
    );
    cluster.kill_worker(1);
    let got = reader
        .await
        .expect("join")
        .expect("the read must survive a worker's death");
    assert!(got[..] == want[..], "bytes differ after failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_on_a_worker_port_close_only_that_connection() {
    let (_garage, store, mut cluster) = setup("").await;
    let client = cluster.client();
    let want = pattern(3, 2 * MIB);
    store.put("steady.bin", Bytes::from(want.clone())).await.expect("put");
    let addr = cluster.workers[0].addr;
    let garbage = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut closed = 0;
        for _ in 0..20 {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let junk: Vec<u8> = (0..rng.random_range(64..65536)).map(|_| rng.random()).collect();
            let _ = s.write_all(&junk).await;
            let mut buf = [0u8; 1024];
            // The worker must close the connection (EOF or reset), not hang or crash.
            let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
                .await
                .expect("closed in time");
            if matches!(n, Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        closed
    });
    for _ in 0..30 {
        let got = client
            .read_all("/s3/steady.bin")
            .await
            .expect("reads go on during the garbage");
        assert!(got[..] == want[..]);
    }
    assert_eq!(garbage.await.expect("join"), 20, "every garbage connection was closed");
    assert!(cluster.worker_alive(0), "the worker survived");
    let logged = cluster.log_problems(0).iter().any(|l| l.contains("closing connection"));
    assert!(logged, "the bad frames were logged");
}

/// A worker killed with SIGKILL and restarted serves the pages its NVMe tier holds, with the S3
/// server stopped: the tier's index survives the crash, and nothing is asked of the under-store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nvme_pages_are_served_after_a_sigkill_with_the_s3_server_stopped() {
    let (mut garage, store, mut cluster) = setup("").await;
    let client = cluster.client();
    // 80 MiB, then twice 120 MiB through three workers of 32 MiB memory each: the first
    // object's pages are pushed out of memory into the NVMe tiers.
    let (first, second) = (pattern(41, 80 * MIB + 5), pattern(42, 120 * MIB));
    store.put("first.bin", Bytes::from(first.clone())).await.expect("put");
    store.put("second.bin", Bytes::from(second.clone())).await.expect("put");
    assert!(client.read_all("/s3/first.bin").await.expect("read")[..] == first[..]);
    let file = client.open("/s3/first.bin").await.expect("open");
    for _ in 0..2 {
        assert!(client.read_all("/s3/second.bin").await.expect("read")[..] == second[..]);
    }
    let demoted = cluster.metric_total("worker_nvme_demotions");
    assert!(demoted >= 81.0, "pages went to the NVMe tiers: {demoted}");
    // Wait until the tiers' writes are durable, then crash every worker.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cluster.metric_total("worker_nvme_unflushed") > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the NVMe writes never became durable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..3 {
        cluster.kill_worker(i);
    }
    garage.stop();
    for i in 0..3 {
        cluster.start_worker(i).expect("restart");
    }
    let again = file
        .read(0, first.len() as u64)
        .await
        .expect("read after the crash, S3 down");
    assert!(again[..] == first[..]);
    let nvme_hits: f64 = (0..3)
        .map(|i| cluster.metric_labelled(i, "worker_tier_hits", "tier=\"nvme\""))
        .sum();
    assert!(nvme_hits >= 81.0, "served from the NVMe tiers: {nvme_hits}");
    assert_eq!(cluster.metric_total("worker_ufs_requests"), 0.0, "nothing asked of S3");
}
