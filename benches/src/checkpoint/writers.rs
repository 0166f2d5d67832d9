//! The four ways one checkpoint is saved: `writers` tasks at once, each streaming one shard in
//! 8 MiB pieces, timed from the first byte until the last writer is done.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::{Bytes, BytesMut};
use hoard_client::{Client, CreateOptions};
use hoard_ufs::{CompletedPart, S3UnderStore, UfsResult, UnderStore};
use rand::{RngCore, SeedableRng};
use tokio::task::JoinHandle;

/// Bytes one write call carries (the size of a training framework's buffer flushes).
pub const PIECE_BYTES: u64 = 8 << 20;

/// Parts of one direct-S3 upload in flight at once: as many as a `through` session uploads.
const PARTS_IN_FLIGHT: usize = 4;

/// The bytes every system writes: one random base block per writer, stamped every 4 KiB with
/// (`tag`, writer, piece, block). No two 4 KiB blocks of a run are equal, and every system and
/// run gets its own `tag`: Garage stores identical blocks once, which would flatter whichever
/// system wrote the same bytes second.
#[derive(Debug, Clone)]
pub struct Shards {
    bases: Arc<Vec<Vec<u8>>>,
    /// Bytes per shard.
    pub shard_bytes: u64,
    tag: u64,
}

impl Shards {
    /// `writers` shards of `shard_bytes`.
    pub fn new(writers: usize, shard_bytes: u64) -> Shards {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x636b_7074);
        let bases = (0..writers)
            .map(|_| {
                let mut base = vec![0u8; PIECE_BYTES as usize];
                rng.fill_bytes(&mut base);
                base
            })
            .collect();
        Shards {
            bases: Arc::new(bases),
            shard_bytes,
            tag: 0,
        }
    }

    /// The same shards stamped with another tag.
    pub fn tagged(&self, tag: u64) -> Shards {
        Shards { tag, ..self.clone() }
    }

    /// Number of shards (writers).
    pub fn writers(&self) -> usize {
        self.bases.len()
    }

    /// Bytes of all shards.
    pub fn total_bytes(&self) -> u64 {
        self.shard_bytes * self.writers() as u64
    }

    fn pieces(&self) -> u64 {
        self.shard_bytes.div_ceil(PIECE_BYTES)
    }

    /// Piece `index` of shard `writer`.
    fn piece(&self, writer: usize, index: u64) -> Bytes {
        let len = PIECE_BYTES.min(self.shard_bytes - index * PIECE_BYTES) as usize;
        let mut out = self.bases[writer][..len].to_vec();
        for (block, chunk) in out.chunks_mut(4096).enumerate() {
            let stamp = (self.tag << 48) ^ ((writer as u64) << 40) ^ (index << 20) ^ block as u64;
            let n = chunk.len().min(8);
            chunk[..n].copy_from_slice(&stamp.to_le_bytes()[..n]);
        }
        Bytes::from(out)
    }
}

/// Run one task per shard and time them from start to the last one's end.
async fn timed<F>(shards: &Shards, task: impl Fn(usize) -> F) -> anyhow::Result<Duration>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<JoinHandle<anyhow::Result<()>>> = (0..shards.writers()).map(|w| tokio::spawn(task(w))).collect();
    for t in tasks {
        t.await.context("join a writer")??;
    }
    Ok(started.elapsed())
}

/// The local-disk peer: each writer writes its shard to a file in `dir` and `fsync`s it, as
/// `dd bs=8M conv=fsync` would.
///
/// # Errors
/// When a file cannot be written.
pub async fn local_disk(dir: &Path, shards: &Shards) -> anyhow::Result<Duration> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    timed(shards, |w| {
        let (path, shards) = (dir.join(format!("shard-{w}")), shards.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut file = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
                for i in 0..shards.pieces() {
                    file.write_all(&shards.piece(w, i)).context("write to local disk")?;
                }
                file.sync_all().context("fsync on local disk")
            })
            .await
            .context("join a disk writer")?
        }
    })
    .await
}

/// hoard: each writer streams its shard to `dir/shard-W` through `Writer` and closes it (in
/// `back` mode the close returns once the journal has the bytes; in `through` mode once S3 has
/// the object).
///
/// # Errors
/// When a write or a close fails.
pub async fn hoard(client: &Client, dir: &str, shards: &Shards) -> anyhow::Result<Duration> {
    timed(shards, |w| {
        let (client, path, shards) = (client.clone(), format!("{dir}/shard-{w}"), shards.clone());
        async move {
            let mut writer = client
                .create(&path, CreateOptions::default())
                .await
                .with_context(|| format!("create {path}"))?;
            for i in 0..shards.pieces() {
                writer
                    .write_bytes(shards.piece(w, i))
                    .await
                    .context("write through hoard")?;
            }
            let meta = writer.close().await.with_context(|| format!("close {path}"))?;
            ensure!(meta.size == shards.shard_bytes, "{path} has {} bytes", meta.size);
            Ok(())
        }
    })
    .await
}

/// The S3 peer: each writer uploads its shard straight to the S3 server under `prefix`, as a
/// multipart upload of `part_size` parts (hoard's), [`PARTS_IN_FLIGHT`] at once.
///
/// # Errors
/// When a request fails.
pub async fn direct_s3(
    store: &Arc<S3UnderStore>,
    prefix: &str,
    shards: &Shards,
    part_size: u64,
) -> anyhow::Result<Duration> {
    timed(shards, |w| {
        let (store, key, shards) = (store.clone(), format!("{prefix}/shard-{w}"), shards.clone());
        async move { s3_shard(store, &key, &shards, w, part_size).await }
    })
    .await
}

async fn s3_shard(
    store: Arc<S3UnderStore>,
    key: &str,
    shards: &Shards,
    w: usize,
    part_size: u64,
) -> anyhow::Result<()> {
    if shards.shard_bytes <= part_size {
        let mut all = BytesMut::new();
        for i in 0..shards.pieces() {
            all.extend_from_slice(&shards.piece(w, i));
        }
        store.put(key, all.freeze()).await.context("PUT to S3")?;
        return Ok(());
    }
    let upload = store.create_multipart(key).await.context("create a multipart upload")?;
    let mut buf = BytesMut::new();
    let mut pending: std::collections::VecDeque<JoinHandle<UfsResult<CompletedPart>>> = Default::default();
    let mut done = Vec::new();
    let mut number = 0u32;
    let mut spawn_part = |part: Bytes| {
        number += 1;
        let (store, key, upload, n) = (store.clone(), key.to_owned(), upload.clone(), number);
        tokio::spawn(async move { store.upload_part(&key, &upload, n, part).await })
    };
    for i in 0..shards.pieces() {
        buf.extend_from_slice(&shards.piece(w, i));
        while buf.len() as u64 >= part_size {
            pending.push_back(spawn_part(buf.split_to(part_size as usize).freeze()));
            while pending.len() > PARTS_IN_FLIGHT {
                let part = pending.pop_front().expect("more than PARTS_IN_FLIGHT pending");
                done.push(part.await.context("join a part upload")?.context("upload a part")?);
            }
        }
    }
    if !buf.is_empty() {
        pending.push_back(spawn_part(buf.split().freeze()));
    }
    for part in pending {
        done.push(part.await.context("join a part upload")?.context("upload a part")?);
    }
    done.sort_by_key(|p| p.part_number);
    store
        .complete_multipart(key, &upload, done)
        .await
        .context("complete a multipart upload")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_shard_and_no_two_blocks_are_equal() {
        let shards = Shards::new(2, 20 << 20);
        let lens: Vec<usize> = (0..shards.pieces()).map(|i| shards.piece(0, i).len()).collect();
        assert_eq!(lens, [8 << 20, 8 << 20, 4 << 20]);
        let mut blocks = std::collections::HashSet::new();
        for tagged in [shards.tagged(1), shards.tagged(2)] {
            for w in 0..2 {
                for i in 0..tagged.pieces() {
                    for block in tagged.piece(w, i).chunks(4096) {
                        assert!(blocks.insert(block.to_vec()), "a repeated 4 KiB block");
                    }
                }
            }
        }
    }
}
