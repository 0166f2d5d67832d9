//! The `hoard` CLI against a real worker process over a local directory (no S3 needed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoard_client::TransportChoice;
use hoard_tests::cluster::{Cluster, free_addr, hoard, hoard_bin};
use hoard_tests::pattern;

fn populate(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir.join("dir/sub")).expect("mkdir");
    std::fs::write(dir.join("a.txt"), b"hello, hoard!\n").expect("write");
    let big = pattern(11, 3 * 1024 * 1024 + 5);
    std::fs::write(dir.join("dir/b.bin"), &big).expect("write");
    std::fs::write(dir.join("dir/sub/c.txt"), b"c").expect("write");
    big
}

#[test]
fn file_commands_work_and_errors_are_one_clear_line() {
    let data = tempfile::tempdir().expect("tempdir");
    let big = populate(data.path());
    let uri = format!("file://{}", data.path().display());
    let mut cluster = Cluster::start(1, &[("local", uri)], None, "").expect("start worker");
    let cfg = cluster.config_path.clone();

    let (ok, out, _) = hoard(&cfg, &["ls", "/"]);
    assert!(ok && out.contains("local/"), "{out}");
    let (ok, out, _) = hoard(&cfg, &["ls", "/local"]);
    assert!(
        ok && out.contains("a.txt") && out.contains("dir/") && !out.contains("b.bin"),
        "{out}"
    );
    let (ok, out, _) = hoard(&cfg, &["ls", "-r", "/local/dir"]);
    assert!(
        ok && out.contains("dir/b.bin") && out.contains("dir/sub/c.txt"),
        "{out}"
    );
    let (ok, out, _) = hoard(&cfg, &["stat", "/local/dir/b.bin"]);
    assert!(ok && out.contains(&format!("size:    {}", big.len())), "{out}");

    let cat = Command::new(hoard_bin())
        .arg("--cluster")
        .arg(&cfg)
        .args(["cat", "/local/dir/b.bin"])
        .output()
        .expect("cat");
    assert!(cat.status.success());
    assert!(cat.stdout == big, "cat returned other bytes");
    let (ok, out, _) = hoard(&cfg, &["cat", "--offset", "7", "--length", "5", "/local/a.txt"]);
    assert!(ok && out == "hoard", "{out:?}");

    let (ok, out, err) = hoard(&cfg, &["load", "--quiet", "/local"]);
    assert!(ok && out.contains("loaded 3 files"), "{out} {err}");
    let (ok, out, _) = hoard(&cfg, &["load", "--quiet", "/local/dir/b.bin"]);
    assert!(
        ok && out.contains("loaded 1 files") && out.contains("(3.0 MiB already cached)"),
        "{out}"
    );
    let (ok, out, _) = hoard(&cfg, &["cluster", "status"]);
    assert!(
        ok && out.contains("w1") && out.contains(" up ") && out.contains("1 of 1 workers up"),
        "{out}"
    );

    let (ok, _, err) = hoard(&cfg, &["stat", "/local/nope"]);
    assert!(
        !ok && err.trim().lines().count() == 1 && err.contains("no such file"),
        "{err}"
    );
    let (ok, _, err) = hoard(&cfg, &["cat", "/elsewhere/x"]);
    assert!(!ok && err.contains("no mount named `elsewhere`"), "{err}");
    let (ok, _, err) = hoard(&cfg, &["ls", "relative/path"]);
    assert!(!ok && err.contains("must start with `/MOUNT`"), "{err}");

    cluster.kill_worker(0);
    let (ok, out, err) = hoard(&cfg, &["cluster", "status"]);
    assert!(
        !ok && out.contains("down") && err.contains("no worker answers"),
        "{out} {err}"
    );
    // With its worker dead, reads still work: straight from the under-store.
    let (ok, out, _) = hoard(&cfg, &["cat", "/local/a.txt"]);
    assert!(ok && out == "hello, hoard!\n", "{out:?}");
}

#[test]
fn hoard_up_serves_a_directory_with_no_config_given() {
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("mydata");
    populate(&data);
    let (listen, metrics, s3) = (free_addr(), free_addr(), free_addr());
    let mut up = Command::new(hoard_bin())
        .args(["up", "--dir"])
        .arg(&data)
        .args(["--listen", &listen.to_string(), "--metrics", &metrics.to_string()])
        .args(["--s3", &s3.to_string()])
        .env("HOARD_HOME", home.path())
        .env_remove("HOARD_CLUSTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hoard up");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "hoard up did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(hoard_bin())
        .args(["ls", "/data/dir"])
        .env("HOARD_HOME", home.path())
        .env_remove("HOARD_CLUSTER")
        .output()
        .expect("hoard ls");
    // The S3 endpoint answers too, and only signed requests (the key is in the config).
    let s3_reply = {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(s3).expect("the S3 endpoint listens");
        write!(
            conn,
            "GET /data/dir/b.bin HTTP/1.1\r\nHost: {s3}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut reply = String::new();
        let _ = conn.read_to_string(&mut reply);
        reply
    };
    let _ = up.kill();
    let printed = {
        let _ = up.wait();
        let mut s = String::new();
        if let Some(mut o) = up.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut s);
        }
        s
    };
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listing.contains("dir/b.bin"), "{listing}");
    assert!(
        printed.contains("hoard ls /data"),
        "hoard up prints how to use it: {printed}"
    );
    assert!(home.path().join("cluster.toml").exists());
    assert!(
        s3_reply.starts_with("HTTP/1.1 403") && s3_reply.contains("AccessDenied"),
        "{s3_reply}"
    );
    assert!(
        printed.contains("aws --endpoint-url"),
        "hoard up prints the S3 endpoint: {printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_serves_again_at_once() {
    let data = tempfile::tempdir().expect("tempdir");
    let big = populate(data.path());
    let uri = format!("file://{}", data.path().display());
    let mut cluster = Cluster::start(1, &[("local", uri)], None, "").expect("start worker");
    // Over TCP every read reaches the worker (over shared memory hot re-reads need not; the
    // shared-memory restart is e2e_shm's).
    let client = cluster.client_over(TransportChoice::Tcp);
    assert!(client.read_all("/local/dir/b.bin").await.expect("first read")[..] == big[..]);
    // The client's pooled connections now point at a dead process.
    cluster.kill_worker(0);
    cluster.start_worker(0).expect("restart");
    for _ in 0..3 {
        assert!(
            client
                .read_all("/local/dir/b.bin")
                .await
                .expect("read after the restart")[..]
                == big[..]
        );
    }
    // Served by the new worker process (its counters start at zero), not by the fallback.
    assert!(cluster.metric(0, "worker_bytes_served") >= 3.0 * big.len() as f64);
}

/// Runs `hoard --cluster CONFIG ARGS` with `input` on its standard input.
fn hoard_with_stdin(config: &Path, args: &[&str], input: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(hoard_bin())
        .arg("--cluster")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hoard");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for hoard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn write_commands_put_append_move_and_delete() {
    let data = tempfile::tempdir().expect("tempdir");
    let uri = format!("file://{}", data.path().display());
    let mut cluster = Cluster::start(1, &[("local", uri)], None, "").expect("start worker");
    let cfg = cluster.config_path.clone();
    let local = tempfile::tempdir().expect("tempdir");
    // More than two of the 8 MiB pieces `put` reads at a time.
    let big = pattern(5, 20 * 1024 * 1024 + 3);
    let src = local.path().join("big.bin");
    std::fs::write(&src, &big).expect("write");
    let src = src.to_str().expect("a UTF-8 temporary path");

    // Silent on success; a trailing `/` keeps the local name; `through` mode: on disk at once.
    let (ok, out, err) = hoard(&cfg, &["put", src, "/local/in/"]);
    assert!(ok && out.is_empty() && err.is_empty(), "{out} {err}");
    assert!(std::fs::read(data.path().join("in/big.bin")).expect("persisted") == big);
    let cat = Command::new(hoard_bin())
        .arg("--cluster")
        .arg(&cfg)
        .args(["cat", "/local/in/big.bin"])
        .output()
        .expect("cat");
    assert!(cat.status.success() && cat.stdout == big);

    let (ok, out, _) = hoard(&cfg, &["put", "-v", src, "/local/copy.bin"]);
    assert!(
        ok && out.contains("/local/copy.bin: wrote 20.0 MiB") && out.contains("version hoard:"),
        "{out}"
    );
    let (ok, _, err) = hoard(&cfg, &["put", "--exclusive", src, "/local/copy.bin"]);
    assert!(
        !ok && err.trim().lines().count() == 1 && err.contains("already exists"),
        "{err}"
    );

    // Standard input, and an append to what `put` wrote.
    let (ok, _, err) = hoard_with_stdin(&cfg, &["put", "-", "/local/log.txt"], b"one\n");
    assert!(ok, "{err}");
    let (ok, out, err) = hoard_with_stdin(&cfg, &["append", "-v", "-", "/local/log.txt"], b"two\n");
    assert!(
        ok && out.contains("appended 4 B") && out.contains("now 8 B"),
        "{out} {err}"
    );
    let (ok, out, _) = hoard(&cfg, &["cat", "/local/log.txt"]);
    assert!(ok && out == "one\ntwo\n", "{out:?}");

    let (ok, _, err) = hoard(&cfg, &["mkdir", "/local/empty"]);
    assert!(ok && data.path().join("empty").is_dir(), "{err}");
    let (ok, _, err) = hoard(&cfg, &["mv", "/local/in", "/local/out"]);
    assert!(ok, "{err}");
    assert!(!data.path().join("in/big.bin").exists() && data.path().join("out/big.bin").exists());
    let (ok, _, err) = hoard(&cfg, &["rm", "/local/out"]);
    assert!(
        !ok && err.trim().lines().count() == 1 && err.contains("directory not empty") && err.contains("rm -r"),
        "{err}"
    );
    let (ok, _, err) = hoard(&cfg, &["rm", "-r", "/local/out"]);
    assert!(ok && !data.path().join("out").exists(), "{err}");
    let (ok, _, err) = hoard(&cfg, &["rm", "/local/nope"]);
    assert!(!ok && err.contains("no such file"), "{err}");
    let (ok, out, err) = hoard(&cfg, &["sync", "/local"]);
    assert!(ok && out.is_empty(), "{out} {err}");
    let (ok, _, err) = hoard(&cfg, &["put", "/nonexistent/file", "/local/x"]);
    assert!(
        !ok && err.trim().lines().count() == 1 && err.contains("open /nonexistent/file"),
        "{err}"
    );

    let (ok, out, _) = hoard(&cfg, &["cluster", "status"]);
    assert!(
        ok && out.contains("BACKLOG") && out.lines().any(|l| l.starts_with("total ")),
        "{out}"
    );

    // Writes do not fail over: with the coordinator gone they fail, and say why.
    cluster.kill_worker(0);
    let (ok, _, err) = hoard(&cfg, &["put", src, "/local/late.bin"]);
    assert!(!ok && err.contains("coordinator is unavailable"), "{err}");
}
