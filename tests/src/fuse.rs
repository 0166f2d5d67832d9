//! A real FUSE mount for tests: `hoard mount` of a test cluster, and shell helpers to drive it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, hoard_bin, tail};

/// A running `hoard mount`, unmounted (and its process ended) when dropped.
#[derive(Debug)]
pub struct MountGuard {
    child: Option<Child>,
    /// The mount point.
    pub path: PathBuf,
    /// The mount process's log.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MountGuard {
    /// `hoard mount` of `cluster` with `args` at a new directory; `None` (after printing why)
    /// when this machine cannot mount FUSE file systems.
    pub fn start(cluster: &Cluster, args: &[&str]) -> Option<MountGuard> {
        if !Path::new("/dev/fuse").exists() {
            eprintln!("skipping: /dev/fuse is missing (no FUSE in this kernel or container)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let log = dir.path().join("mount.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(hoard_bin())
            .arg("--cluster")
            .arg(&cluster.config_path)
            .args(["--log", "info,hoard_fuse=debug"])
            .arg("mount")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("run hoard mount");
        let mut guard = MountGuard {
            child: Some(child),
            path,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !hoard_fuse::is_mounted(&guard.path) {
            if let Some(status) = guard.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                eprintln!(
                    "skipping: `hoard mount` could not mount ({status}): {}",
                    tail(&guard.log)
                );
                guard.child = None;
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "not mounted after 30 s: {}",
                tail(&guard.log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(guard)
    }

    /// A path inside the mount.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Whether the `hoard mount` process has exited, waiting up to `limit`.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // SIGTERM: the process unmounts (lazily if a file is still open) and exits.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        if self.exited_within(Duration::from_secs(10)).is_none()
            && let Some(mut child) = self.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if hoard_fuse::is_mounted(&self.path) {
            let _ = hoard_fuse::unmount_lazy(&self.path);
        }
    }
}

/// `bash -c script` in `dir`; (success, stdout, stderr).
pub fn sh(dir: &Path, script: &str) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `sh`, asserting success.
pub fn ok(dir: &Path, script: &str) -> String {
    let (success, out, err) = sh(dir, script);
    assert!(success, "`{script}` failed: {out}{err}");
    out
}

/// An empty local directory to mount, and its `file://` URI.
pub fn local_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("file://{}", dir.path().display());
    (dir, uri)
}

/// Read `len` bytes at `at` of an open file (`pread`), or the error.
///
/// # Errors
/// The read's.
pub fn read_at(file: &std::fs::File, at: usize, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut got = vec![0u8; len];
    file.read_exact_at(&mut got, at as u64)?;
    Ok(got)
}

/// Read `len` bytes at `at` of an open file and compare them with `want[at..]`.
///
/// # Panics
/// When the read fails or the bytes differ.
pub fn read_and_check(file: &std::fs::File, want: &[u8], at: usize, len: usize, what: &str) {
    let got = read_at(file, at, len).unwrap_or_else(|e| panic!("{what}: read {len} bytes at {at}: {e}"));
    assert!(got == want[at..at + len], "{what}: wrong bytes in [{at}, {})", at + len);
}
