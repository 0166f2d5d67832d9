//! Mounting and unmounting: the fuser session around a [`HoardFs`].
//!
//! fuser mounts without libfuse: as root with `mount(2)` on `/dev/fuse`, otherwise through the
//! setuid `fusermount3` (Debian package `fuse3`). The session's threads (one cloned `/dev/fuse`
//! descriptor each) read the kernel's requests and hand them to the file system, which runs
//! them on the caller's tokio runtime.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fuser::{BackgroundSession, MountOption, SessionACL};
use hoard_client::Client;

use crate::config::FuseConfig;
use crate::error::{FuseError, FuseResult};
use crate::fs::HoardFs;

/// How often [`run`] checks whether the file system was unmounted from outside.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A mounted file system. Dropping it unmounts (lazily if it is busy).
#[derive(Debug)]
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

/// Mount `client`'s cluster at `mountpoint`; requests run on `runtime`.
///
/// # Errors
/// [`FuseError::NoSuchMount`] when `config.mount` names no mount; [`FuseError::Mount`] when the
/// kernel refuses (no `/dev/fuse`, no permission, a missing mount point).
pub fn mount(
    client: Client,
    config: FuseConfig,
    runtime: tokio::runtime::Handle,
    mountpoint: &Path,
) -> FuseResult<Mounted> {
    let session_config = session_config(&config);
    let (name, read_ahead) = (config.mount.clone(), config.read_ahead);
    let fs = HoardFs::new(client, config, runtime).map_err(|_| FuseError::NoSuchMount {
        name: name.unwrap_or_default(),
    })?;
    let mount_error = |source| FuseError::Mount {
        path: mountpoint.to_owned(),
        source,
    };
    let session = fuser::Session::new(fs, mountpoint, &session_config).map_err(mount_error)?;
    let session = session.spawn().map_err(mount_error)?;
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    raise_read_ahead(mountpoint, read_ahead);
    Ok(Mounted {
        session: Some(session),
        mountpoint: mountpoint.to_owned(),
    })
}

/// Mount, serve until `shutdown` completes or the file system is unmounted from outside
/// (`hoard umount`, `fusermount3 -u`), then unmount.
///
/// # Errors
/// As [`mount`], and [`FuseError::Unmount`] when the unmount at shutdown fails.
pub async fn run(
    client: Client,
    config: FuseConfig,
    mountpoint: &Path,
    shutdown: impl Future<Output = ()>,
) -> FuseResult<()> {
    let mounted = mount(client, config, tokio::runtime::Handle::current(), mountpoint)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(POLL_INTERVAL) => {
                if mounted.finished() {
                    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
                    break;
                }
            }
        }
    }
    tokio::task::spawn_blocking(move || mounted.unmount())
        .await
        .expect("the unmount task does not panic")
}

impl Mounted {
    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the session ended (the file system was unmounted).
    pub fn finished(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmount and wait for the session to end. A busy file system (open files, a shell inside
    /// it) is detached lazily instead: it disappears from the mount table at once, and what
    /// still uses it fails once this process exits.
    ///
    /// # Errors
    /// [`FuseError::Unmount`] when neither works.
    pub fn unmount(mut self) -> FuseResult<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if session.guard.is_finished() {
            // Unmounted from outside: the session ended by itself. Dropping (or joining) it would
            // make fuser unmount the path again, because fuser 0.18's `is_mounted` takes the
            // POLLERR of a dead connection for "mounted": that fails with EINVAL, or unmounts
            // whatever was mounted there since. Keep it from running (this leaks the finished
            // thread's handle and the /dev/fuse descriptor until the process exits).
            std::mem::forget(session);
            return Ok(());
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "the mount is busy: detaching it lazily");
                unmount_lazy(&self.mountpoint)
            }
            Err(e) if !is_mounted(&self.mountpoint) => {
                tracing::debug!("the FUSE session ended: {e}");
                Ok(())
            }
            Err(source) => Err(FuseError::Unmount {
                path: self.mountpoint.clone(),
                source,
            }),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            let mounted = Mounted {
                session: self.session.take(),
                mountpoint: self.mountpoint.clone(),
            };
            if let Err(e) = mounted.unmount() {
                tracing::warn!("failed to {e:#}");
            }
        }
    }
}

/// Unmount the hoard file system at `mountpoint`: `umount(2)` as root, `fusermount3 -u` for
/// other users.
///
/// # Errors
/// [`FuseError::Unmount`]: `EBUSY` while it is in use, `EINVAL` when nothing is mounted there.
pub fn unmount(mountpoint: &Path) -> FuseResult<()> {
    unmount_with(mountpoint, nix::mount::MntFlags::empty(), "-u")
}

/// Detach the file system at `mountpoint` even while it is in use (`umount -l`,
/// `fusermount3 -uz`).
///
/// # Errors
/// As [`unmount`].
pub fn unmount_lazy(mountpoint: &Path) -> FuseResult<()> {
    unmount_with(mountpoint, nix::mount::MntFlags::MNT_DETACH, "-uz")
}

fn unmount_with(mountpoint: &Path, flags: nix::mount::MntFlags, fusermount_flag: &str) -> FuseResult<()> {
    let error = |source| FuseError::Unmount {
        path: mountpoint.to_owned(),
        source,
    };
    match nix::mount::umount2(mountpoint, flags) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => fusermount(mountpoint, fusermount_flag).map_err(error),
        Err(e) => Err(error(std::io::Error::from(e))),
    }
}

/// Unmount through the setuid helper, for users who may not call `umount(2)`.
fn fusermount(mountpoint: &Path, flag: &str) -> std::io::Result<()> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "fusermount3 not found (Debian: fuse3)");
    for helper in ["fusermount3", "fusermount"] {
        match std::process::Command::new(helper).arg(flag).arg(mountpoint).output() {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(std::io::Error::other(format!("{helper}: {}", stderr.trim())));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether a FUSE file system is mounted at `mountpoint` (per `/proc/self/mountinfo`).
pub fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(canonical) = mountpoint.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| mountinfo_matches(line, &canonical))
}

/// Whether a `/proc/self/mountinfo` line is a FUSE mount at `path`.
fn mountinfo_matches(line: &str, path: &Path) -> bool {
    let fields: Vec<&str> = line.split(' ').collect();
    let Some(target) = fields.get(4) else {
        return false;
    };
    let fstype = fields
        .iter()
        .position(|f| *f == "-")
        .and_then(|dash| fields.get(dash + 1));
    fstype.is_some_and(|t| t.starts_with("fuse")) && Path::new(&unescape_octal(target)) == path
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Let the kernel read ahead `window` bytes. FUSE mounts start with the default window
/// (128 KiB), which the kernel's `init` offer caps; only its sysfs knob raises it, and only root
/// may write that. Without it, buffered sequential reads arrive as 128 KiB requests (about 30%
/// slower on loopback); with a window of several requests (each at most [`MAX_IO_BYTES`](crate::MAX_IO_BYTES)), the
/// kernel keeps several of them in flight for one sequential reader.
fn raise_read_ahead(mountpoint: &Path, window: u64) {
    use std::os::unix::fs::MetadataExt;
    // Answered by the session just spawned: the root's getattr.
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let (major, minor) = (
        (dev >> 8) & 0xfff | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&knob, (window / 1024).max(4).to_string()) {
        Ok(()) => tracing::debug!(knob, "read-ahead raised to {window} bytes"),
        Err(e) => tracing::debug!(knob, "read-ahead left at the kernel's default: {e}"),
    }
}

/// The fuser session settings for a config.
fn session_config(config: &FuseConfig) -> fuser::Config {
    let mut options = vec![
        MountOption::FSName("hoard".into()),
        MountOption::Subtype("hoard".into()),
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        if config.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    if config.allow_other {
        // Other users get what the permission bits allow them, checked by the kernel.
        options.push(MountOption::DefaultPermissions);
    }
    let mut session = fuser::Config::default();
    session.mount_options = options;
    session.acl = if config.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    session.n_threads = Some(config.threads.max(1));
    session.clone_fd = true;
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_are_read_with_their_escapes() {
        let line = "52 30 0:47 / /tmp/a\\040b rw,nosuid,nodev,noatime - fuse.hoard hoard rw,user_id=0";
        assert!(mountinfo_matches(line, Path::new("/tmp/a b")));
        assert!(!mountinfo_matches(line, Path::new("/tmp/a")));
        let ext4 = "29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw";
        assert!(!mountinfo_matches(ext4, Path::new("/")));
        assert_eq!(unescape_octal("a\\134b\\011"), "a\\b\t");
        assert!(!is_mounted(Path::new("/nonexistent/hoard")));
    }

    #[test]
    fn session_options_follow_the_config() {
        let ro = session_config(&FuseConfig {
            read_only: true,
            allow_other: true,
            threads: 0,
            ..FuseConfig::default()
        });
        assert!(ro.mount_options.contains(&MountOption::RO));
        assert!(ro.mount_options.contains(&MountOption::DefaultPermissions));
        assert_eq!((ro.acl, ro.n_threads), (SessionACL::All, Some(1)));
        let rw = session_config(&FuseConfig::default());
        assert!(rw.mount_options.contains(&MountOption::RW));
        assert_eq!(rw.acl, SessionACL::Owner);
    }
}
