//! Where the tests and benches of the workspace find the `fake-provider` binary. It is a workspace member
//! of its own (test support, not part of the `interview-engine` package), so Cargo gives the engine's
//! tests no `CARGO_BIN_EXE_fake-provider`: [`binary`] builds it instead (`cargo build -p fake-provider`
//! in the caller's profile and target directory, once per process) and returns its path.
//! `FAKE_PROVIDER_BIN` names a binary to use as it is. The server itself is the binary (main.rs).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The `fake-provider` binary, built on first use; the error says why it could not be built.
pub fn binary() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FAKE_PROVIDER_BIN") {
        return Ok(PathBuf::from(path));
    }
    // A test or bench runs as <target>/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the running test: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no target directory", profile_dir.display()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO")
        .ok()
        .or(option_env!("CARGO").map(str::to_string))
        .unwrap_or_else(|| "cargo".to_string());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "fake-provider",
            "--bin",
            "fake-provider",
        ])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build -p fake-provider failed ({status})"));
    }
    let bin = profile_dir.join(format!("fake-provider{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} is missing after the build", bin.display()))
    }
}
