//! The README's run command, as a new operator runs it: the repository cloned into a temporary
//! directory, the first `cargo run` line of the README's Run section run there verbatim by `sh`, and
//! `/healthz` asked until it answers.
//!
//! Two things differ from a person's first run, both through the environment, never the command:
//! `IE_SERVER__BIND=127.0.0.1:0` (tests never take port 8080; the server prints the port it got), and
//! `CARGO_TARGET_DIR` = this workspace's target directory, so that the clone's release build reuses the
//! dependencies that CI's background `cargo build --release` or an earlier one compiled, and only the
//! workspace's own crates (and a few dependencies whose features differ) are built again: see the
//! README's Test section for what it costs. Release builds use `target/release`, whose lock is not the
//! one `cargo test` holds (`target/debug`); the clone's binary replaces `target/release/interview-engine`.
//! `IE_README_TARGET_DIR` chooses another directory. The clone is of the committed `HEAD`: uncommitted
//! changes are not in it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first `cargo run` line of the first shell block under `## Run`, without its comment.
fn run_command(readme: &str) -> String {
    let run = readme
        .split("\n## ")
        .find(|s| s.starts_with("Run"))
        .expect("the README has a '## Run' section");
    let block = run
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Run section has a ```sh block");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .find(|l| l.starts_with("cargo run"))
        .expect("a `cargo run` line in the Run section")
        .to_string()
}

/// The command's process group, ended on drop (cargo and the server it started).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &pgid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &pgid])
            .status();
        let _ = self.0.wait();
    }
}

/// `IE_README_TARGET_DIR`, else the target directory this test was built in.
fn target_dir() -> PathBuf {
    std::env::var_os("IE_README_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            tmp.parent().unwrap_or(tmp).to_path_buf()
        })
}

#[test]
fn readme_run_command_serves_healthz_from_a_fresh_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let cmd = run_command(&readme);
    assert_eq!(
        cmd, "cargo run --release -- serve",
        "the README's first run command"
    );

    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("interview-engine");
    let out = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(root)
        .arg(&clone)
        .output()
        .expect("git is needed to clone the repository");
    assert!(
        out.status.success(),
        "git clone failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cargo_log = tmp.path().join("cargo-and-server.log");
    let mut sh = Command::new("sh");
    sh.args(["-c", &cmd])
        .current_dir(&clone)
        .env("IE_SERVER__BIND", "127.0.0.1:0")
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&cargo_log).unwrap()))
        .process_group(0);
    for (k, _) in std::env::vars() {
        if k.starts_with("IE_") && k != "IE_SERVER__BIND" {
            sh.env_remove(k);
        }
    }
    let started = Instant::now();
    let mut group = Group(sh.spawn().expect("sh"));
    let stdout = group.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let log = || std::fs::read_to_string(&cargo_log).unwrap_or_default();
    // A release build from scratch takes minutes on two cores: wait long, but not forever.
    let line = rx
        .recv_timeout(Duration::from_secs(45 * 60))
        .unwrap_or_else(|_| panic!("`{cmd}` printed no address; its output:\n{}", log()));
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}; output:\n{}", log()))
        .trim()
        .to_string();
    eprintln!(
        "`{cmd}` listened after {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
                if r.status().is_success() {
                    return r.json::<serde_json::Value>().await.unwrap();
                }
            }
            assert!(
                Instant::now() < deadline,
                "/healthz never answered; log:\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert_eq!(health["status"], "ok");
    // It keeps its data where the README says, and says so at start.
    assert!(clone.join("data").is_dir(), "./data in the clone");
    let data = std::fs::canonicalize(&clone).unwrap().join("data");
    assert!(
        log().contains(&format!("data in {}", data.display())),
        "the start line names the data path; log:\n{}",
        log()
    );
    drop(group);
}

#[test]
fn the_run_command_is_read_from_the_readme() {
    let readme =
        "# x\n\n## Run\n\n```sh\ncargo run --release -- serve   # comment\nother\n```\n\n## Test\n";
    assert_eq!(run_command(readme), "cargo run --release -- serve");
}
