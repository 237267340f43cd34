//! The test Python: a venv with the real client libraries (`openai`, `websockets`) that tests drive the
//! server with. `scripts/install-test-deps` creates it in ~/.cache/interview-engine/py; `IE_TEST_PYTHON`
//! points elsewhere. Missing, it fails the test with the command that installs it.

// Test support: failing loudly is the point.
#![allow(clippy::panic)]

use std::path::PathBuf;

/// The command that installs every external program the tests use.
pub const INSTALL: &str = "scripts/install-test-deps";

/// The venv's python (`IE_TEST_PYTHON`, else ~/.cache/interview-engine/py/bin/python); panics with the
/// install command when it is missing or lacks a module in `modules`.
pub fn test_python(modules: &[&str]) -> PathBuf {
    let python = std::env::var_os("IE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/interview-engine/py/bin/python")
        });
    if !python.exists() {
        panic!(
            "this test needs the test Python venv at {} (IE_TEST_PYTHON), which does not exist: \
             run `{INSTALL}` (it creates it with `pip install openai websockets`)",
            python.display()
        );
    }
    if !modules.is_empty() {
        let import = format!("import {}", modules.join(", "));
        let ok = std::process::Command::new(&python)
            .args(["-c", &import])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            panic!(
                "the test Python {} cannot `{import}`: run `{INSTALL}`",
                python.display()
            );
        }
    }
    python
}
