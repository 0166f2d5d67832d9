//! `hoard-bench gateway`: the S3 gateway against the S3 server it caches, with the same S3 client
//! (the AWS Rust SDK, as an application would use it) on both sides in one run.
//!
//! Three scenarios, one after the other: the S3 server (Garage) as it is on loopback; the same
//! server behind a delay proxy (`--delay`, 20 ms per round trip by default) so that it answers as
//! late as S3 answers a client in its region; and behind a proxy that also paces each connection
//! to `--connection-bandwidth` (100 MiB/s by default), as S3 serves one GET. Each scenario starts
//! a worker process whose gateway serves a mount of the bucket (its under-store reached through
//! the scenario's proxy), writes fresh objects straight to Garage (hoard has never seen them),
//! then measures, with the same client on both sides (the peer reached through the same proxy):
//!
//! - 4 KiB objects: every object GET once straight from the S3 server (the peer), once through
//!   the gateway (cold: the worker fills from the S3 server), then `--warm-passes` times through
//!   the gateway (warm). Time to first byte and to the last byte of each GET, with the AWS SDK;
//!   and the warm and direct GETs again with a minimal HTTP client over presigned URLs
//!   (`gateway/raw.rs`), which leaves out the SDK's own work per request (several hundred µs on
//!   both sides) and so shows what the server and the network take.
//! - one large object: a GET straight from the S3 server, a cold GET through the gateway, and a
//!   warm one; throughput and time to first byte.
//!
//! Every byte read is compared with what was written.

mod proxy;
mod raw;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::GatewayPlan;
use crate::garage::Garage;
use crate::procs::{ChildGuard, free_addr};
use crate::report::{Environment, Row, Target, table};
use proxy::DelayProxy;

const ACCESS_KEY: &str = "hoard-bench";
const SECRET_KEY: &str = "hoard-bench-gateway-secret";

/// GETs of the large object cut off after their first byte, for its time to first byte.
const LARGE_TTFB_SAMPLES: usize = 21;

/// Bytes of a small object.
const SMALL_BYTES: usize = 4096;

/// What one scenario measured.
#[derive(Debug, Serialize)]
pub struct Scenario {
    /// `no delay`, or the delay (and the pace).
    pub name: String,
    /// Round-trip delay added in front of the S3 server, ms.
    pub delay_ms: f64,
    /// Bytes per second one connection to the S3 server is paced to, if it is.
    pub connection_bandwidth: Option<u64>,
    /// Small GETs straight from the S3 server: time to first byte, µs (p50, p99).
    pub direct_small_ttfb_us: (f64, f64),
    /// Small GETs through the gateway, cold.
    pub cold_small_ttfb_us: (f64, f64),
    /// Small GETs through the gateway, warm.
    pub warm_small_ttfb_us: (f64, f64),
    /// Small GETs whole (to the last byte), µs p50: direct, cold, warm.
    pub small_total_p50_us: (f64, f64, f64),
    /// Small GETs with the minimal client over presigned URLs: time to the response headers, µs
    /// (p50, p99), straight from the S3 server.
    pub raw_direct_ttfb_us: (f64, f64),
    /// The same through the gateway, warm.
    pub raw_warm_ttfb_us: (f64, f64),
    /// The large object's time to its first body byte with the minimal client (the median of 21
    /// GETs on new connections, each cut off there), ms: direct, warm.
    pub raw_large_ttfb_ms: (f64, f64),
    /// Large GET throughput, MiB/s: direct, cold, warm.
    pub large_mib_s: (f64, f64, f64),
    /// Large GET time to first byte, ms: direct, cold, warm.
    pub large_ttfb_ms: (f64, f64, f64),
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct GatewayReport {
    /// When and where.
    pub environment: Environment,
    /// The parameters used.
    pub params: serde_json::Value,
    /// Each scenario.
    pub scenarios: Vec<Scenario>,
    /// The comparison rows.
    pub rows: Vec<Row>,
}

/// Run the benchmark, print the table, and write the JSON file if asked.
///
/// # Errors
/// When a system cannot be started or a measurement fails.
pub fn run(plan: GatewayPlan) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("hoard-bench: warning: this is a debug build of the harness; build it with --release");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let report = runtime.block_on(async {
        tokio::select! {
            report = measure(&plan) => report,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("stop on SIGINT")),
        }
    })?;
    println!("{}", table(&report.rows));
    for s in &report.scenarios {
        println!(
            "{}: 4 KiB TTFB p50/p99 µs: direct {:.0}/{:.0}, cold {:.0}/{:.0}, warm {:.0}/{:.0} (minimal client: direct {:.0}/{:.0}, warm {:.0}/{:.0}); \
             large MiB/s: direct {:.0}, cold {:.0}, warm {:.0}; large TTFB ms: direct {:.2}, cold {:.2}, warm {:.2}",
            s.name,
            s.direct_small_ttfb_us.0,
            s.direct_small_ttfb_us.1,
            s.cold_small_ttfb_us.0,
            s.cold_small_ttfb_us.1,
            s.warm_small_ttfb_us.0,
            s.warm_small_ttfb_us.1,
            s.raw_direct_ttfb_us.0,
            s.raw_direct_ttfb_us.1,
            s.raw_warm_ttfb_us.0,
            s.raw_warm_ttfb_us.1,
            s.large_mib_s.0,
            s.large_mib_s.1,
            s.large_mib_s.2,
            s.large_ttfb_ms.0,
            s.large_ttfb_ms.1,
            s.large_ttfb_ms.2,
        );
    }
    if let Some(path) = &plan.json {
        let mut file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
        serde_json::to_writer_pretty(&mut file, &report).context("serialise the report")?;
        eprintln!("hoard-bench: wrote {}", path.display());
    }
    Ok(())
}

/// An S3 client of `endpoint` (path-style).
fn s3_client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "hoard-bench"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A worker process that serves the gateway, with mount `bench` = the bucket's keys under
/// `prefix`, its under-store reached at `s3_endpoint`.
async fn start_worker(
    dir: &Path,
    plan: &GatewayPlan,
    garage: &Garage,
    s3_endpoint: &str,
    prefix: &str,
) -> anyhow::Result<(ChildGuard, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (addr, gateway) = (free_addr()?, free_addr()?);
    let token = format!("hoard-bench-{}-{:016x}", std::process::id(), rand::random::<u64>());
    let s3 = garage.s3_toml().replace(&garage.endpoint, s3_endpoint);
    let memory = (plan.large_bytes * 2 + (64 << 20)) >> 20;
    let ttl = humantime::format_duration(plan.metadata_ttl);
    let text = format!(
        "token = \"{token}\"\n{s3}\n[[workers]]\nid = \"w1\"\naddr = \"{addr}\"\ngateway = \"{gateway}\"\n\
         memory_capacity = \"{memory}MiB\"\njournal_dir = {:?}\n\n[[mounts]]\nname = \"bench\"\n\
         ufs = \"s3://{}/{prefix}\"\n\n[worker]\nmetadata_ttl = \"{ttl}\"\n\n[[gateway.keys]]\naccess_key = \"{ACCESS_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\n",
        dir.join("journal").display().to_string(),
        garage.bucket,
    );
    hoard_transport::cluster::ClusterConfig::parse(&text).context("check the generated cluster config")?;
    let config_path = dir.join("cluster.toml");
    std::fs::write(&config_path, &text).context("write the cluster config")?;
    let mut command = Command::new(&plan.hoard_bin);
    command
        .args(["worker", "--id", "w1", "--cluster"])
        .arg(&config_path)
        .env("HOARD_LOG", "warn");
    let mut worker = ChildGuard::spawn("hoard worker", command, &dir.join("worker.log"))?;
    worker.wait_listening(gateway, Duration::from_secs(60)).await?;
    Ok((worker, format!("http://{gateway}")))
}

/// One GET, checked against `expected`: (time to first byte, time to the last byte).
async fn get(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    expected: &[u8],
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .with_context(|| format!("GET {bucket}/{key}"))?;
    let mut body = out.body;
    let mut first = None;
    let mut at = 0usize;
    while let Some(chunk) = body.try_next().await.with_context(|| format!("read {bucket}/{key}"))? {
        first.get_or_insert_with(|| started.elapsed());
        ensure!(
            expected.get(at..at + chunk.len()) == Some(&chunk[..]),
            "{bucket}/{key}: wrong bytes at {at}"
        );
        at += chunk.len();
    }
    let total = started.elapsed();
    ensure!(
        at == expected.len(),
        "{bucket}/{key}: {at} bytes, not {}",
        expected.len()
    );
    Ok((first.unwrap_or(total), total))
}

/// Deterministic object bytes.
fn content(seed: u64, len: usize) -> Bytes {
    (0..len as u64)
        .map(|i| ((i * 31 + seed * 7 + i / 4099) % 251) as u8)
        .collect()
}

/// Latencies of a set of GETs.
#[derive(Debug)]
struct Latencies {
    ttfb: Histogram<u64>,
    total: Histogram<u64>,
}

impl Latencies {
    fn new() -> anyhow::Result<Latencies> {
        Ok(Latencies {
            ttfb: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            total: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        })
    }

    fn record(&mut self, (ttfb, total): (Duration, Duration)) -> anyhow::Result<()> {
        self.ttfb.record(ttfb.as_micros().max(1) as u64)?;
        self.total.record(total.as_micros().max(1) as u64)?;
        Ok(())
    }

    fn ttfb(&self) -> (f64, f64) {
        (
            self.ttfb.value_at_quantile(0.5) as f64,
            self.ttfb.value_at_quantile(0.99) as f64,
        )
    }
}

/// Small GETs of every key, `passes` times.
async fn small_gets(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[(String, Bytes)],
    passes: u32,
) -> anyhow::Result<Latencies> {
    let mut l = Latencies::new()?;
    for _ in 0..passes {
        for (key, data) in keys {
            l.record(get(client, bucket, key, data).await?)?;
        }
    }
    Ok(l)
}

/// Presigned GET URLs (path and query) of every key, valid for an hour.
async fn presign(client: &aws_sdk_s3::Client, bucket: &str, keys: &[(String, Bytes)]) -> anyhow::Result<Vec<String>> {
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(3600))?;
    let mut urls = Vec::with_capacity(keys.len());
    for (key, _) in keys {
        let request = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config.clone())
            .await?;
        let uri = request.uri();
        let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map(|at| &after_scheme[at..])
            .context("a presigned URL without a path")?;
        urls.push(path.to_owned());
    }
    Ok(urls)
}

/// Small GETs of every presigned URL with the minimal client, `passes` times.
async fn raw_gets(host: &str, urls: &[String], keys: &[(String, Bytes)], passes: u32) -> anyhow::Result<Latencies> {
    let mut client = raw::RawClient::connect(host).await?;
    let mut l = Latencies::new()?;
    for _ in 0..passes {
        for (url, (_, data)) in urls.iter().zip(keys) {
            l.record(client.get(url, data).await?)?;
        }
    }
    Ok(l)
}

/// GETs of a large object cut off at their first body byte: the median time to it, ms.
async fn first_bytes(host: &str, url: &str) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(LARGE_TTFB_SAMPLES);
    for _ in 0..LARGE_TTFB_SAMPLES {
        times.push(raw::RawClient::first_byte(host, url).await?.as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// `fut`, failing when it takes longer than `limit`.
async fn phase<T>(limit: Duration, name: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .with_context(|| format!("the {name} phase took longer than {limit:?} (--time-limit)"))?
        .with_context(|| format!("measure {name}"))
}

/// What stands between the clients and the S3 server in a scenario.
#[derive(Debug, Clone, Copy)]
struct Link {
    delay: Duration,
    bytes_per_second: Option<u64>,
}

impl Link {
    fn name(&self) -> String {
        match (self.delay.is_zero(), self.bytes_per_second) {
            (true, None) => "no delay".to_owned(),
            (_, None) => format!("{} ms delay", self.delay.as_millis()),
            (_, Some(b)) => format!("{} ms delay, {} MiB/s a connection", self.delay.as_millis(), b >> 20),
        }
    }

    fn tag(&self) -> String {
        format!(
            "delay-{}ms-bw-{}",
            self.delay.as_millis(),
            self.bytes_per_second.unwrap_or(0) >> 20
        )
    }
}

async fn scenario(plan: &GatewayPlan, dir: &Path, garage: &Garage, link: Link) -> anyhow::Result<Scenario> {
    let proxy = match (link.delay.is_zero(), link.bytes_per_second) {
        (true, None) => None,
        _ => {
            let upstream = garage
                .endpoint
                .trim_start_matches("http://")
                .parse()
                .context("Garage's address")?;
            Some(DelayProxy::start(upstream, link.delay, link.bytes_per_second).await?)
        }
    };
    let name = link.name();
    let prefix = link.tag();
    let seeder = s3_client(
        &garage.endpoint,
        &garage.region,
        &garage.access_key(),
        &garage.secret_key(),
    );
    let peer_endpoint = match &proxy {
        None => garage.endpoint.clone(),
        Some(p) => format!("http://{}", p.addr),
    };
    let peer = s3_client(
        &peer_endpoint,
        &garage.region,
        &garage.access_key(),
        &garage.secret_key(),
    );
    // Fresh objects, written straight to the S3 server: two sets of small ones (one read
    // direct, one through the gateway, so neither read is helped by the other) and two large.
    let mut small: [Vec<(String, Bytes)>; 2] = [Vec::new(), Vec::new()];
    for (set, keys) in small.iter_mut().enumerate() {
        for i in 0..plan.small_objects {
            let key = format!("small-{set}/{i:05}");
            let data = content(u64::from(i) + 1000 * set as u64, SMALL_BYTES);
            seeder
                .put_object()
                .bucket(&garage.bucket)
                .key(format!("{prefix}/{key}"))
                .body(data.clone().into())
                .send()
                .await
                .context("seed a small object")?;
            keys.push((key, data));
        }
    }
    let large = content(7, plan.large_bytes as usize);
    for key in ["large-0", "large-1"] {
        seed_large(&seeder, &garage.bucket, &format!("{prefix}/{key}"), &large).await?;
    }
    let endpoint = peer_endpoint.clone();
    // The ports come from `free_addr`, which releases them: another process may take one first.
    let mut attempt = 0;
    let (worker, gateway_url) = loop {
        attempt += 1;
        match start_worker(
            &dir.join(format!("{prefix}-{attempt}")),
            plan,
            garage,
            &endpoint,
            &prefix,
        )
        .await
        {
            Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                eprintln!("hoard-bench: a port was taken meanwhile, starting the worker again");
            }
            other => break other?,
        }
    };
    let gateway = s3_client(&gateway_url, "us-east-1", ACCESS_KEY, SECRET_KEY);
    let limit = plan.time_limit;
    let direct_keys: Vec<(String, Bytes)> = small[0]
        .iter()
        .map(|(k, d)| (format!("{prefix}/{k}"), d.clone()))
        .collect();
    let direct = phase(
        limit,
        "direct small GETs",
        small_gets(&peer, &garage.bucket, &direct_keys, 1),
    )
    .await?;
    let cold = phase(limit, "cold small GETs", small_gets(&gateway, "bench", &small[1], 1)).await?;
    let warm = phase(
        limit,
        "warm small GETs",
        small_gets(&gateway, "bench", &small[1], plan.warm_passes),
    )
    .await?;
    let peer_host = peer_endpoint.trim_start_matches("http://").to_owned();
    let gateway_host = gateway_url.trim_start_matches("http://").to_owned();
    let direct_urls = presign(&peer, &garage.bucket, &direct_keys).await?;
    let warm_urls = presign(&gateway, "bench", &small[1]).await?;
    let raw_direct = raw_gets(&peer_host, &direct_urls, &direct_keys, 1);
    let raw_direct = phase(limit, "direct small GETs, minimal client", raw_direct).await?;
    let raw_warm = raw_gets(&gateway_host, &warm_urls, &small[1], plan.warm_passes);
    let raw_warm = phase(limit, "warm small GETs, minimal client", raw_warm).await?;
    let mib = plan.large_bytes as f64 / f64::from(1u32 << 20);
    let direct_large = phase(
        limit,
        "direct large GET",
        get(&peer, &garage.bucket, &format!("{prefix}/large-0"), &large),
    )
    .await?;
    let cold_large = phase(limit, "cold large GET", get(&gateway, "bench", "large-1", &large))
        .await
        .with_context(|| format!("worker log:\n{}", worker.log_tail()))?;
    let warm_large = phase(limit, "warm large GET", get(&gateway, "bench", "large-1", &large)).await?;
    let large_keys = [("large-1".to_owned(), large.clone())];
    let direct_large_keys = [(format!("{prefix}/large-0"), large.clone())];
    let large_urls = presign(&gateway, "bench", &large_keys).await?;
    let direct_large_urls = presign(&peer, &garage.bucket, &direct_large_keys).await?;
    let raw_direct_large = first_bytes(&peer_host, &direct_large_urls[0]);
    let raw_direct_large = phase(limit, "direct large GET, minimal client", raw_direct_large).await?;
    let raw_warm_large = first_bytes(&gateway_host, &large_urls[0]);
    let raw_warm_large = phase(limit, "warm large GET, minimal client", raw_warm_large).await?;
    let s = Scenario {
        name,
        delay_ms: link.delay.as_secs_f64() * 1e3,
        connection_bandwidth: link.bytes_per_second,
        direct_small_ttfb_us: direct.ttfb(),
        cold_small_ttfb_us: cold.ttfb(),
        warm_small_ttfb_us: warm.ttfb(),
        small_total_p50_us: (
            direct.total.value_at_quantile(0.5) as f64,
            cold.total.value_at_quantile(0.5) as f64,
            warm.total.value_at_quantile(0.5) as f64,
        ),
        raw_direct_ttfb_us: raw_direct.ttfb(),
        raw_warm_ttfb_us: raw_warm.ttfb(),
        raw_large_ttfb_ms: (raw_direct_large, raw_warm_large),
        large_mib_s: (
            mib / direct_large.1.as_secs_f64(),
            mib / cold_large.1.as_secs_f64(),
            mib / warm_large.1.as_secs_f64(),
        ),
        large_ttfb_ms: (
            direct_large.0.as_secs_f64() * 1e3,
            cold_large.0.as_secs_f64() * 1e3,
            warm_large.0.as_secs_f64() * 1e3,
        ),
    };
    drop(worker);
    Ok(s)
}

/// Upload a large object straight to the S3 server (multipart, 16 MiB parts).
async fn seed_large(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &Bytes) -> anyhow::Result<()> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let id = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .context("seed the large object")?
        .upload_id
        .context("no upload id")?;
    let mut parts = Vec::new();
    for (i, start) in (0..data.len()).step_by(16 << 20).enumerate() {
        let n = i as i32 + 1;
        let part = data.slice(start..data.len().min(start + (16 << 20)));
        let out = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(part.into())
            .send()
            .await
            .context("seed a part")?;
        parts.push(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag).build());
    }
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .context("complete the large object")?;
    Ok(())
}

async fn measure(plan: &GatewayPlan) -> anyhow::Result<GatewayReport> {
    let environment = Environment::detect();
    let dir = tempfile::Builder::new()
        .prefix("hoard-bench-gateway-")
        .tempdir_in(&plan.dir)
        .with_context(|| format!("create a directory in {}", plan.dir.display()))?;
    let garage = Garage::start(&dir.path().join("garage")).await?;
    eprintln!(
        "hoard-bench: {} small objects x {} warm passes, one {} MiB object, delay {:?}; files in {}",
        plan.small_objects,
        plan.warm_passes,
        plan.large_bytes >> 20,
        plan.delay,
        dir.path().display()
    );
    let mut links = vec![
        Link {
            delay: Duration::ZERO,
            bytes_per_second: None,
        },
        Link {
            delay: plan.delay,
            bytes_per_second: None,
        },
    ];
    if let Some(b) = plan.connection_bandwidth {
        links.push(Link {
            delay: plan.delay,
            bytes_per_second: Some(b),
        });
    }
    let mut scenarios = Vec::new();
    for link in links {
        scenarios.push(scenario(plan, dir.path(), &garage, link).await?);
    }
    let rows = rows(&scenarios);
    let params = serde_json::json!({
        "small_objects": plan.small_objects, "small_bytes": SMALL_BYTES, "warm_passes": plan.warm_passes,
        "large_bytes": plan.large_bytes, "delay_ms": plan.delay.as_secs_f64() * 1e3,
        "connection_bandwidth": plan.connection_bandwidth,
        "metadata_ttl_s": plan.metadata_ttl.as_secs_f64(), "quick": plan.quick,
    });
    Ok(GatewayReport {
        environment,
        params,
        scenarios,
        rows,
    })
}

/// The comparison rows; the targets (design.md) apply with the delay, as S3 answers.
fn rows(scenarios: &[Scenario]) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in scenarios {
        let delayed = s.delay_ms > 0.0;
        let target = |t: Target| if delayed { t } else { Target::None };
        let at = |m: &str| format!("{m}, {}", s.name);
        rows.push(Row::new(
            &at("4 KiB GET TTFB p50 warm, minimal client (µs)"),
            s.raw_warm_ttfb_us.0,
            "S3 direct",
            s.raw_direct_ttfb_us.0,
            target(Target::AtMost(0.01)),
        ));
        rows.push(Row::new(
            &at("4 KiB GET TTFB p99 warm, minimal client (µs)"),
            s.raw_warm_ttfb_us.1,
            "S3 direct",
            s.raw_direct_ttfb_us.1,
            Target::None,
        ));
        rows.push(Row::new(
            &at("4 KiB GET TTFB p50 warm, AWS SDK (µs)"),
            s.warm_small_ttfb_us.0,
            "S3 direct",
            s.direct_small_ttfb_us.0,
            Target::None,
        ));
        rows.push(Row::new(
            &at("4 KiB GET TTFB p99 warm, AWS SDK (µs)"),
            s.warm_small_ttfb_us.1,
            "S3 direct",
            s.direct_small_ttfb_us.1,
            Target::None,
        ));
        rows.push(Row::new(
            &at("4 KiB GET TTFB p50 cold, AWS SDK (µs)"),
            s.cold_small_ttfb_us.0,
            "S3 direct",
            s.direct_small_ttfb_us.0,
            Target::None,
        ));
        rows.push(Row::new(
            &at("large GET TTFB warm, minimal client (ms)"),
            s.raw_large_ttfb_ms.1,
            "S3 direct",
            s.raw_large_ttfb_ms.0,
            target(Target::AtMost(0.01)),
        ));
        rows.push(Row::new(
            &at("large GET TTFB warm, AWS SDK (ms)"),
            s.large_ttfb_ms.2,
            "S3 direct",
            s.large_ttfb_ms.0,
            Target::None,
        ));
        rows.push(Row::new(
            &at("large GET cold (MiB/s)"),
            s.large_mib_s.1,
            "S3 direct",
            s.large_mib_s.0,
            target(Target::AtLeast(1.0)),
        ));
        rows.push(Row::new(
            &at("large GET warm (MiB/s)"),
            s.large_mib_s.2,
            "S3 direct",
            s.large_mib_s.0,
            Target::None,
        ));
    }
    rows
}
