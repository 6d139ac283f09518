//! A `redis-server` of a test's own, on a Unix socket in a temporary directory,
//! that the test can stop and start again (persistence off: a restart is empty,
//! as a Redis that lost its data). Stopped when dropped.
//!
//! Without `redis-server` the test skips with a message, except under
//! `CI=true` (`.ci/run` installs it), where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::node;

pub struct TestRedis {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TestRedis {
    /// A running Redis, or None (after saying why) where there is none to run.
    pub fn start(test: &str) -> Option<TestRedis> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = TestRedis { dir, child: None };
        match redis.spawn() {
            Ok(()) => Some(redis),
            Err(error) => {
                node::missing(test, &format!("redis-server ({error})"));
                None
            }
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL to give the server (`redis+unix://...`).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(self.socket())
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills it (no goodbye): what a crash or a network cut looks like.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts it again on the same socket, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("redis-server starts again");
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
