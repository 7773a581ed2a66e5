//! Helpers the CLI's integration tests share: running the `trailhound` binary, reading
//! its output, and a running `trailhound collect`. Each test file uses some of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// The workspace's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Runs the `trailhound` binary (without a write key from the environment).
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(args)
        .env_remove("TRAILHOUND_WRITE_KEY")
        .output()
        .expect("run trailhound")
}

/// What a run wrote to standard output.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a run wrote to standard error.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The standard output of a run that must succeed (else fails the test, showing both).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "trailhound failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Standard output and standard error of a run that must fail.
pub fn failed(out: &Output) -> (String, String) {
    assert!(
        !out.status.success(),
        "expected a failure, got success:\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    (stdout(out), stderr(out))
}

/// A running `trailhound collect` on a free local port; killed when dropped.
pub struct Bin {
    child: Child,
    /// Its base URL, from the first line it printed.
    pub url: String,
    /// The rest of its standard output.
    pub stdout: BufReader<ChildStdout>,
}

impl Bin {
    /// Starts `trailhound collect --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn spawn(args: &[&str]) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .arg("collect")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn trailhound");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        let url = first
            .strip_prefix("trailhound collect: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .trim_end()
            .to_owned();
        Bin { child, url, stdout }
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the real SDK that keeps what it tracks in the queue at `data` (offline:
/// nothing is sent), as a device without network would.
pub fn offline_device(data: &Path) -> trailhound::Client {
    trailhound::Builder::new("device-key", "http://127.0.0.1:9", data)
        .conditions(trailhound::DeviceConditions {
            network: trailhound::Network::Offline,
            ..trailhound::DeviceConditions::default()
        })
        .build()
        .expect("an offline client")
}

/// The `messageId`s of an `/api/events` answer, in its order.
pub fn message_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .expect("an events list")
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
        .collect()
}
