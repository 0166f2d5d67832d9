//! One-sided RDMA reads between real processes on a real verbs stack (Soft-RoCE). These tests run
//! inside the RDMA virtual machine (`scripts/rdma-tests.sh` boots it with `../shared/tools/rdma-vm`,
//! which sets `RDMA_VM=1`); anywhere else they say so and pass without running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hoard_client::{Client, TransportChoice};
use hoard_tests::cluster::Cluster;
use hoard_tests::pattern;
use rand::{Rng, SeedableRng};

const MIB: usize = 1 << 20;

/// Settings of every cluster here: RDMA required of the workers, and deadlines for a machine
/// that is emulated (tens of times slower than the host).
const RDMA: &str = "[worker]\nrdma = \"on\"\nreadahead = \"0B\"\n[client]\nconnect_timeout = \"30s\"\n";

/// Whether this runs where RDMA is (the VM); otherwise say why the test does nothing.
fn in_rdma_vm(test: &str) -> bool {
    if std::env::var_os("RDMA_VM").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_ansi(false)
            .try_init();
        if let Err(e) = hoard_transport::rdma::ClientDevice::shared(&Default::default()) {
            panic!("the VM's RDMA device cannot be opened: {e}");
        }
        return true;
    }
    eprintln!("{test}: skipped here: needs an RDMA device; run scripts/rdma-tests.sh (Soft-RoCE in a VM)");
    false
}

/// `n` files of `size` bytes (plus a little, so the last page is short) under a local mount.
fn files(dir: &std::path::Path, n: u64, size: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let name = format!("r{i}.bin");
            let data = pattern(i + 900, size + 1234 * i as usize + 17);
            std::fs::write(dir.join(&name), &data).expect("write");
            (format!("/local/{name}"), data)
        })
        .collect()
}

async fn check_range(client: &Client, path: &str, want: &[u8], offset: usize, len: usize) {
    let file = client.open(path).await.expect("open");
    let got = file.read(offset as u64, len as u64).await.expect("read");
    assert!(got[..] == want[offset..offset + len], "{path} [{offset}, +{len})");
}

fn rdma_bytes_served(cluster: &Cluster) -> f64 {
    (0..cluster.workers.len())
        .map(|i| cluster.metric_labelled(i, "worker_bytes_served", "transport=\"rdma\""))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_ranges_are_read_over_rdma_byte_for_byte() {
    if !in_rdma_vm("a_thousand_random_ranges_are_read_over_rdma_byte_for_byte") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let files = files(data.path(), 2, 6 * MIB);
    let uri = format!("file://{}", data.path().display());
    let cluster = Cluster::start(1, &[("local", uri)], None, RDMA).expect("cluster");
    let client = cluster.client_over(TransportChoice::Rdma);
    for (path, want) in &files {
        assert!(client.read_all(path).await.expect("read")[..] == want[..], "{path}");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    for _ in 0..1000 {
        let (path, want) = &files[rng.random_range(0..files.len())];
        let offset = rng.random_range(0..want.len());
        let len = rng.random_range(1..=(want.len() - offset).min(256 << 10));
        check_range(&client, path, want, offset, len).await;
    }
    let counts = client.transport_counts();
    eprintln!("{counts:?}\n{}", hoard_tests::cluster::tail(&cluster.workers[0].log));
    assert!(counts.rdma_bytes > 12 * MIB as u64, "{counts:?}");
    assert!(
        counts.rdma_cached_reads > 500,
        "hot ranges were read with no request: {counts:?}"
    );
    assert_eq!((counts.tcp_bytes, counts.shm_bytes), (0, 0), "{counts:?}");
    assert!(
        rdma_bytes_served(&cluster) > 0.0,
        "the worker counts located bytes under rdma"
    );
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_evicted_under_rdma_readers_are_never_returned_stale() {
    if !in_rdma_vm("pages_evicted_under_rdma_readers_are_never_returned_stale") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    // 8 x 1 MiB + a bit in 64 KiB pages, through a memory tier of 2 MiB: slots are reused all
    // the time under the readers' READs.
    let files = Arc::new(files(data.path(), 8, MIB));
    let uri = format!("file://{}", data.path().display());
    let extra = format!("page_size = \"64KiB\"\n{RDMA}");
    let cluster = Cluster::start_with_memory(1, &[("local", uri)], &extra, "2MiB").expect("cluster");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (client, files) = (cluster.client_over(TransportChoice::Rdma), files.clone());
        readers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(r);
            let mut reads = 0u64;
            while Instant::now() < deadline {
                let (path, want) = &files[rng.random_range(0..files.len())];
                for _ in 0..10 {
                    let offset = rng.random_range(0..want.len());
                    let len = rng.random_range(1..=(want.len() - offset).min(150_000));
                    check_range(&client, path, want, offset, len).await;
                    reads += 1;
                }
            }
            (reads, client.transport_counts())
        }));
    }
    let mut total = 0;
    for reader in readers {
        let (reads, counts) = reader.await.expect("reader");
        assert!(counts.rdma_bytes > 0, "{counts:?}");
        total += reads;
    }
    let evicted = cluster.metric(0, "worker_evictions");
    eprintln!("{total} verified reads over RDMA, {evicted} pages evicted meanwhile");
    assert!(total > 200, "{total} reads");
    assert!(
        evicted > 200.0,
        "slots were reused under the readers: {evicted} evictions"
    );
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_finish_over_tcp_or_the_under_store_when_a_worker_dies_mid_read() {
    if !in_rdma_vm("reads_finish_over_tcp_or_the_under_store_when_a_worker_dies_mid_read") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let files = Arc::new(files(data.path(), 4, 4 * MIB));
    let uri = format!("file://{}", data.path().display());
    let extra = format!("{RDMA}request_timeout = \"5s\"\nworker_retry_after = \"60s\"\n");
    let mut cluster = Cluster::start(2, &[("local", uri)], None, &extra).expect("cluster");
    // RDMA forced (shared memory would win on this host): TCP to the next owner and the
    // under-store are the fallbacks.
    let client = cluster.client_over(TransportChoice::Rdma);
    for (path, want) in files.iter() {
        assert!(client.read_all(path).await.expect("read")[..] == want[..], "{path}");
    }
    let before = client.transport_counts();
    assert!(before.rdma_bytes > 0, "{before:?}");
    let reader = {
        let (client, files) = (client.clone(), files.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(9);
            let mut reads = 0;
            let until = Instant::now() + Duration::from_secs(12);
            while Instant::now() < until {
                let (path, want) = &files[rng.random_range(0..files.len())];
                let offset = rng.random_range(0..want.len());
                let len = rng.random_range(1..=(want.len() - offset).min(MIB));
                check_range(&client, path, want, offset, len).await;
                reads += 1;
            }
            reads
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill_worker(0);
    let reads = reader.await.expect("every read succeeded, byte for byte");
    let after = client.transport_counts();
    eprintln!("{reads} reads; before {before:?}; after {after:?}");
    assert!(reads > 20, "{reads} reads");
    assert!(
        after.rdma_bytes > before.rdma_bytes,
        "the live worker kept serving over RDMA"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_of_pages_larger_than_a_buffer_are_read_over_tcp_and_the_link_stays_up() {
    if !in_rdma_vm("parts_of_pages_larger_than_a_buffer_are_read_over_tcp_and_the_link_stays_up") {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let files = files(data.path(), 1, 5 * MIB);
    let (path, want) = &files[0];
    let uri = format!("file://{}", data.path().display());
    // 2 MiB pages: a part of more than 1 MiB of one page does not fit an RDMA buffer.
    let extra = format!("page_size = \"2MiB\"\n{RDMA}");
    let cluster = Cluster::start(1, &[("local", uri)], None, &extra).expect("cluster");
    let client = cluster.client_over(TransportChoice::Rdma);
    assert!(client.read_all(path).await.expect("read")[..] == want[..]);
    let big = client.transport_counts();
    assert!(big.tcp_bytes > 0, "whole 2 MiB pages went over TCP: {big:?}");
    // Small ranges still go over RDMA: the link was not failed by the large ones.
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    for _ in 0..50 {
        let offset = rng.random_range(0..want.len() - 4096);
        check_range(&client, path, want, offset, 4096).await;
    }
    let after = client.transport_counts();
    assert!(after.rdma_bytes >= big.rdma_bytes + 50 * 4096, "{big:?} -> {after:?}");
    cluster.assert_clean_logs();
}
