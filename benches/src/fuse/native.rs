//! The native client on the same files as fio: one task per file, the same access patterns
//! (1 MiB reads in order, 4 KiB reads at random offsets), one read outstanding per task, so the
//! mount and the client it is built on are compared at the same concurrency.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hoard_client::{Client, OpenFile};
use rand::{Rng, SeedableRng};

use super::cpu::CpuUse;
use super::fio::FioResult;

/// Bytes per sequential read.
const SEQ_BYTES: u64 = 1 << 20;
/// Bytes per random read.
const RANDOM_BYTES: u64 = 4096;

/// Read every file in order, 1 MiB per `read_into` call, all files at once. With `check`, every
/// byte is compared with the file on local disk (that pass is slower: do not time it).
///
/// # Errors
/// When a read fails, comes back short, or (with `check`) returns other bytes.
pub async fn sequential(client: &Client, paths: &[String], check: Option<&[PathBuf]>) -> anyhow::Result<FioResult> {
    let files = open_all(client, paths).await?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(files.len());
    for (i, file) in files.into_iter().enumerate() {
        let local = check.map(|c| c[i].clone());
        tasks.push(tokio::spawn(async move { read_in_order(&file, local).await }));
    }
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await.context("join a reader")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(FioResult {
        io_bytes: bytes,
        bytes_per_s: bytes as f64 / seconds,
        iops: bytes as f64 / SEQ_BYTES as f64 / seconds,
        seconds,
        cpu: CpuUse::default(),
    })
}

/// 4 KiB reads at random 4 KiB-aligned offsets for `length`, one task per file.
///
/// # Errors
/// When a read fails or comes back short.
pub async fn random(client: &Client, paths: &[String], length: Duration) -> anyhow::Result<FioResult> {
    let files = open_all(client, paths).await?;
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::with_capacity(files.len());
    for (i, file) in files.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64 + 1);
            let blocks = file.meta().size / RANDOM_BYTES;
            let mut ops = 0u64;
            while Instant::now() < deadline {
                let offset = rng.random_range(0..blocks) * RANDOM_BYTES;
                let got = file.read(offset, RANDOM_BYTES).await.context("read 4 KiB")?;
                ensure!(got.len() as u64 == RANDOM_BYTES, "a 4 KiB read returned {}", got.len());
                ops += 1;
            }
            anyhow::Ok(ops)
        }));
    }
    let mut ops = 0;
    for task in tasks {
        ops += task.await.context("join a reader")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(FioResult {
        io_bytes: ops * RANDOM_BYTES,
        bytes_per_s: (ops * RANDOM_BYTES) as f64 / seconds,
        iops: ops as f64 / seconds,
        seconds,
        cpu: CpuUse::default(),
    })
}

/// Open every path (one stat each).
async fn open_all(client: &Client, paths: &[String]) -> anyhow::Result<Vec<OpenFile>> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        files.push(client.open(path).await.with_context(|| format!("open {path}"))?);
    }
    Ok(files)
}

/// Read one file in order into one reused buffer; compare with `local` if given. Bytes read.
async fn read_in_order(file: &OpenFile, local: Option<PathBuf>) -> anyhow::Result<u64> {
    let size = file.meta().size;
    let local = local
        .map(|p| std::fs::File::open(&p).with_context(|| format!("open {}", p.display())))
        .transpose()?;
    let mut want = vec![0u8; SEQ_BYTES as usize];
    let mut buf = bytes::BytesMut::with_capacity(SEQ_BYTES as usize);
    let mut offset = 0;
    while offset < size {
        let len = SEQ_BYTES.min(size - offset);
        buf.clear();
        buf = file
            .read_into(offset, len, buf)
            .await
            .context("read 1 MiB through hoard")?;
        ensure!(
            buf.len() as u64 == len,
            "hoard returned {} bytes at {offset}",
            buf.len()
        );
        if let Some(local) = &local {
            let want = &mut want[..len as usize];
            local.read_exact_at(want, offset).context("read the local file")?;
            ensure!(buf[..] == want[..], "hoard returned other bytes at {offset}");
        }
        offset += len;
    }
    Ok(size)
}
