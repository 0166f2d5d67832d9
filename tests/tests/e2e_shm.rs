//! Shared memory between real processes: a client on the workers' host reads pages out of their
//! regions, hot pages again with no message, and never a page a slot no longer holds.

use std::time::{Duration, Instant};

use hoard_client::{Client, TransportChoice};
use hoard_tests::cluster::Cluster;
use hoard_tests::pattern;
use rand::{Rng, SeedableRng};

const MIB: usize = 1 << 20;

/// Files of awkward sizes (under a page, a page and a bit, many pages) in a local directory.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let sizes = [1, 4095, 4096, 70_000, MIB, MIB + 1, 5 * MIB + 777, 20 * MIB + 3];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let name = format!("f{i}.bin");
            let data = pattern(i as u64 + 100, size);
            std::fs::write(dir.join(&name), &data).expect("write");
            (format!("/local/{name}"), data)
        })
        .collect()
}

async fn read_range(client: &Client, path: &str, offset: usize, len: usize) -> Vec<u8> {
    let file = client.open(path).await.expect("open");
    file.read(offset as u64, len as u64).await.expect("read").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_copy_from_shared_memory_and_hot_rereads_send_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let files = files(data.path());
    let uri = format!("file://{}", data.path().display());
    let cluster = Cluster::start(3, &[("local", uri)], None, "").expect("cluster");
    let client = cluster.client_over(TransportChoice::Auto);

    // Whole files, then random ranges, byte for byte.
    for (path, want) in &files {
        assert!(client.read_all(path).await.expect("read")[..] == want[..], "{path}");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..300 {
        let (path, want) = &files[rng.random_range(0..files.len())];
        let offset = rng.random_range(0..want.len());
        let len = rng.random_range(1..=(want.len() - offset).min(3 * MIB));
        let got = read_range(&client, path, offset, len).await;
        assert!(got[..] == want[offset..offset + len], "{path} [{offset}, +{len})");
    }
    let counts = client.transport_counts();
    assert!(counts.shm_bytes > 20 * MIB as u64, "{counts:?}");
    assert_eq!((counts.tcp_bytes, counts.tcp_requests), (0, 0), "{counts:?}");
    let located: f64 = (0..3)
        .map(|i| cluster.metric_labelled(i, "worker_bytes_served", "transport=\"shm\""))
        .sum();
    assert!(located > 0.0, "the workers located pages");

    // A hot range read again: no request at all, to any worker.
    let (path, want) = &files[7];
    let file = client.open(path).await.expect("open");
    let hot = file.read(3 * MIB as u64, 2 * MIB as u64).await.expect("read");
    assert!(hot[..] == want[3 * MIB..5 * MIB]);
    let before = client.transport_counts();
    let locates: f64 = (0..3)
        .map(|i| cluster.metric_labelled(i, "worker_requests", "kind=\"locate\""))
        .sum();
    for _ in 0..50 {
        let again = file.read(3 * MIB as u64 + 100, 4096).await.expect("read");
        assert!(again[..] == want[3 * MIB + 100..3 * MIB + 100 + 4096]);
    }
    let after = client.transport_counts();
    assert_eq!(
        after.shm_requests, before.shm_requests,
        "no request: {before:?} -> {after:?}"
    );
    assert_eq!(after.shm_cached_copies, before.shm_cached_copies + 50);
    let locates_after: f64 = (0..3)
        .map(|i| cluster.metric_labelled(i, "worker_requests", "kind=\"locate\""))
        .sum();
    assert_eq!(locates_after, locates, "the workers saw no locate");
    cluster.assert_clean_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_is_used_when_forced_or_when_workers_offer_no_shared_memory() {
    let data = tempfile::tempdir().expect("tempdir");
    let files = files(data.path());
    let uri = format!("file://{}", data.path().display());
    let cluster = Cluster::start(2, &[("local", uri.clone())], None, "").expect("cluster");
    let tcp = cluster.client_over(TransportChoice::Tcp);
    let (path, want) = &files[6];
    assert!(tcp.read_all(path).await.expect("read")[..] == want[..]);
    let counts = tcp.transport_counts();
    assert!(counts.tcp_bytes >= want.len() as u64, "{counts:?}");
    assert_eq!((counts.shm_bytes, counts.shm_requests), (0, 0), "{counts:?}");

    // Workers that serve no shared memory: `auto` reads over TCP; `shm` finds no worker to use
    // and reads the under-store itself (the fallback), never failing the read.
    let off = Cluster::start(2, &[("local", uri)], None, "[worker]\nshm = false\n").expect("cluster");
    let auto = off.client_over(TransportChoice::Auto);
    assert!(auto.read_all(path).await.expect("read")[..] == want[..]);
    let counts = auto.transport_counts();
    assert!(
        counts.tcp_bytes >= want.len() as u64 && counts.shm_bytes == 0,
        "{counts:?}"
    );
    let forced = off.client_over(TransportChoice::Shm);
    assert!(forced.read_all(path).await.expect("read")[..] == want[..]);
    let counts = forced.transport_counts();
    assert_eq!((counts.shm_bytes, counts.tcp_bytes), (0, 0), "{counts:?}");
    assert_eq!(
        off.metric_total("worker_bytes_served"),
        want.len() as f64,
        "only `auto` reached them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_is_mapped_again_and_old_locations_are_not_used() {
    let data = tempfile::tempdir().expect("tempdir");
    let files = files(data.path());
    let uri = format!("file://{}", data.path().display());
    let mut cluster = Cluster::start(1, &[("local", uri)], None, "").expect("cluster");
    let client = cluster.client_over(TransportChoice::Shm);
    let (path, want) = &files[6];
    assert!(client.read_all(path).await.expect("read")[..] == want[..]);
    cluster.kill_worker(0);
    cluster.start_worker(0).expect("restart");
    let before = client.transport_counts();
    for _ in 0..3 {
        assert!(client.read_all(path).await.expect("read after the restart")[..] == want[..]);
    }
    let after = client.transport_counts();
    assert!(
        after.shm_requests > before.shm_requests,
        "asked the new worker: {after:?}"
    );
    assert!(
        cluster.metric_labelled(0, "worker_bytes_served", "transport=\"shm\"") >= want.len() as f64,
        "the new worker located the pages again"
    );
}

/// Readers copy pages while a worker with a small memory tier evicts and reuses slots all the
/// time: every byte returned is the file's, however stale the readers' cached locations get.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_evicted_under_readers_are_never_returned_stale() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..12u64 {
        // 12 x 2 MiB + a bit in 64 KiB pages, through a memory tier of 4 MiB.
        let name = format!("e{i}.bin");
        let want = pattern(i + 500, 2 * MIB + 4321);
        std::fs::write(data.path().join(&name), &want).expect("write");
        files.push((format!("/local/{name}"), want));
    }
    let uri = format!("file://{}", data.path().display());
    let extra = "page_size = \"64KiB\"\n[worker]\nreadahead = \"0B\"\n";
    let cluster = Cluster::start_with_memory(1, &[("local", uri)], extra, "4MiB").expect("cluster");
    let files = std::sync::Arc::new(files);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut readers = Vec::new();
    for r in 0..4u64 {
        let (client, files) = (cluster.client_over(TransportChoice::Shm), files.clone());
        readers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(r);
            let mut reads = 0u64;
            while Instant::now() < deadline {
                let (path, want) = &files[rng.random_range(0..files.len())];
                let file = client.open(path).await.expect("open");
                for _ in 0..20 {
                    let offset = rng.random_range(0..want.len());
                    let len = rng.random_range(1..=(want.len() - offset).min(200_000));
                    let got = file.read(offset as u64, len as u64).await.expect("read");
                    assert!(got[..] == want[offset..offset + len], "{path} [{offset}, +{len})");
                    reads += 1;
                }
            }
            (reads, client.transport_counts())
        }));
    }
    let mut total = 0;
    for reader in readers {
        let (reads, counts) = reader.await.expect("reader");
        assert!(counts.shm_bytes > 0 && counts.tcp_bytes == 0, "{counts:?}");
        total += reads;
    }
    let evicted = cluster.metric(0, "worker_evictions");
    eprintln!("{total} verified reads, {evicted} pages evicted meanwhile");
    assert!(total > 1000, "{total} reads");
    assert!(
        evicted > 1000.0,
        "slots were reused under the readers: {evicted} evictions"
    );
    cluster.assert_clean_logs();
}

/// A lent page is read in place, stays the file's bytes for its lease however hard the worker
/// evicts, and is refused where it cannot be lent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lent_page_is_read_in_place_and_held_for_its_lease() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for i in 0..8u64 {
        let name = format!("l{i}.bin");
        let want = pattern(i + 900, MIB + 99);
        std::fs::write(data.path().join(&name), &want).expect("write");
        files.push((format!("/local/{name}"), want));
    }
    let uri = format!("file://{}", data.path().display());
    let extra = "page_size = \"64KiB\"\n[worker]\nreadahead = \"0B\"\n";
    let cluster = Cluster::start_with_memory(1, &[("local", uri)], extra, "4MiB").expect("cluster");
    let client = cluster.client_over(TransportChoice::Shm);
    let (path, want) = &files[0];
    let file = client.open(path).await.expect("open");
    let page = 64 * 1024;
    let lease = file
        .lend(3 * page + 100, 5000, Duration::from_secs(20))
        .await
        .expect("lend");
    assert_eq!(lease.len(), 5000);
    let same = |b: &[u8]| b == &want[3 * page as usize + 100..3 * page as usize + 5100];
    assert!(lease.with_bytes(same).expect("in place"));
    assert!(cluster.metric(0, "worker_leased_bytes") >= page as f64);

    // Every other file read through the 4 MiB tier (twice its size): the page stays lent.
    for (other, bytes) in &files[1..] {
        assert!(client.read_all(other).await.expect("read")[..] == bytes[..]);
    }
    assert!(cluster.metric(0, "worker_evictions") > 32.0, "the tier turned over");
    assert!(
        lease.with_bytes(same).expect("still lent"),
        "held in its slot for the lease"
    );
    assert!(lease.to_bytes().expect("copy")[..] == want[3 * page as usize + 100..3 * page as usize + 5100]);

    // A lease runs out.
    let short = file.lend(0, 10, Duration::from_millis(300)).await.expect("lend");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = short.with_bytes(|b| b.len()).expect_err("ran out");
    assert!(matches!(err, hoard_client::ClientError::LeaseExpired { .. }), "{err:?}");

    // What cannot be lent: across a page, past the end, over TCP, past the leases' limit (a
    // quarter of the tier: 16 pages of 64 KiB).
    let across = file
        .lend(page - 10, 20, Duration::from_secs(1))
        .await
        .expect_err("across");
    assert!(
        matches!(across, hoard_client::ClientError::NotLendable { .. }),
        "{across:?}"
    );
    assert!(
        file.lend(want.len() as u64 - 5, 10, Duration::from_secs(1))
            .await
            .is_err()
    );
    let tcp = cluster.client_over(TransportChoice::Tcp);
    let over_tcp = tcp
        .open(path)
        .await
        .expect("open")
        .lend(0, 10, Duration::from_secs(1))
        .await;
    assert!(
        matches!(over_tcp, Err(hoard_client::ClientError::NotLendable { .. })),
        "{over_tcp:?}"
    );
    let mut refused = 0;
    for (other, _) in &files[1..] {
        let f = client.open(other).await.expect("open");
        for p in 0..4 {
            if let Err(e) = f.lend(p * page, 10, Duration::from_secs(20)).await {
                assert!(matches!(e, hoard_client::ClientError::NotLendable { .. }), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "leases cannot hold more than a quarter of the tier");
    assert!(cluster.metric(0, "worker_leased_bytes") <= (1 << 20) as f64);
    cluster.assert_clean_logs();
}
