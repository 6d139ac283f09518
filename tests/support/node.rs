//! Running the Node.js scripts of `tests/node/` from a test: finding `node`,
//! installing the pinned modules once (`npm ci`), and the skip rule shared by
//! those tests: a missing program skips the test with a message, except under
//! `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;
use tokio::sync::Mutex;

/// `npm ci` deletes `node_modules` first: two tests installing at once would
/// pull the modules from under each other, so installs take turns.
static INSTALL: Mutex<()> = Mutex::const_new(());

/// `tests/node/`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (prints why) or, under CI, fails `test` because `what` is missing.
pub fn missing(test: &str, what: &str) {
    if under_ci() {
        panic!("{what} is required for the {test} test under CI=true");
    }
    eprintln!("SKIPPED {test} test: {what} not available");
}

pub async fn succeeds(command: &mut Command) -> bool {
    matches!(
        command.stdout(Stdio::null()).stderr(Stdio::null()).status().await,
        Ok(s) if s.success()
    )
}

/// Whether `node` runs, and the npm packages `packages` are installed in
/// `tests/node/` (running `npm ci` if one is not). On `Err`, the message says
/// what is missing, for [`missing`].
pub async fn ready(packages: &[&str]) -> Result<(), String> {
    if !succeeds(Command::new("node").arg("--version")).await {
        return Err("node".into());
    }
    let dir = dir();
    let installed = || {
        packages
            .iter()
            .all(|p| dir.join("node_modules").join(p).is_dir())
    };
    let _turn = INSTALL.lock().await;
    if !installed() {
        let ok = succeeds(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
        )
        .await;
        if !ok || !installed() {
            return Err("`npm ci` in tests/node (npm or the registry)".into());
        }
    }
    Ok(())
}

/// Runs `node <script> <args>` in `tests/node/` with extra `env`, bounded by
/// `limit`, and asserts that it exited 0 and printed a `PASS` line; answers
/// its stdout. `what` names the run in failure messages.
pub async fn run_script(
    what: &str,
    script: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &std::ffi::OsStr)],
    limit: std::time::Duration,
) -> String {
    let run = Command::new("node")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {} s", limit.as_secs()))
        .expect("could not start node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("PASS"), "no PASS line:\n{stdout}");
    stdout
}
