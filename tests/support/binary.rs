//! The real `tutor-queue` binary (`CARGO_BIN_EXE_tutor-queue`) as a child process.
//!
//! It owns the command line a test starts it with ([`RealServer::builder`]: 127.0.0.1,
//! port 0, a data directory, extra arguments, an open-file limit; the environment
//! variables the binary reads its settings from are removed, so the test's environment
//! cannot change what runs), and the running process ([`RealServer`]): the port it logged,
//! every line of its stderr (read on a thread that drains the pipe until it closes, so the
//! child never blocks on a full pipe), signals, a bounded wait for its exit, and killing
//! and reaping it on drop. A data directory the test does not give is a temporary one,
//! removed with the server.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{kill_process, Pid};

use super::server::Server;
use super::WAIT;

/// What the binary logs once it accepts connections, followed by the port.
const LISTENING: &str = "listening on 127.0.0.1:";

/// The environment variables `src/main.rs` reads settings from; removed from the child's
/// environment so that only the builder decides them.
const SETTINGS: &[&str] = &[
    "PORT",
    "BIND",
    "WORKERS",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_IP",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_FRAME_BYTES",
    "MAX_CHANNELS",
    "MAX_FRAMES_PER_SEC",
    "FRAME_BURST",
    "OUTBOUND_LIMIT",
    "OUTBOUND_BYTES",
    "IDLE_TIMEOUT_S",
    "SEND_TIMEOUT_S",
    "RECONNECT_GRACE_S",
    "HELD_MESSAGES",
    "HELD_BYTES",
    "REDIS_URL",
    "REDIS_DEPLOYMENT",
    "DATA_DIR",
    "TOKEN_SECRET",
    "REQUIRE_TOKEN",
    "GUEST_ROLES",
    "GUEST_TOKEN_TTL",
];

/// How the binary is started; see [`RealServer::builder`].
#[derive(Debug, Default)]
pub struct RealServerBuilder {
    data_dir: Option<PathBuf>,
    args: Vec<OsString>,
    open_files: Option<u64>,
}

impl RealServerBuilder {
    /// `--data-dir`: an existing path the test owns (a restart on the same data, or a
    /// path that is not a usable directory). Without it: a fresh temporary directory.
    pub fn data_dir(mut self, path: impl AsRef<Path>) -> Self {
        self.data_dir = Some(path.as_ref().to_owned());
        self
    }

    /// One more command-line argument, after `--port 0 --bind 127.0.0.1 --data-dir <dir>`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `--token-secret` [`TEST_SECRET`](super::auth::TEST_SECRET), so tokens from
    /// `token_for` and `admin_token` read its API.
    pub fn test_tokens(self) -> Self {
        self.arg("--token-secret").arg(super::auth::TEST_SECRET)
    }

    /// `--redis-url <url> --redis-deployment <deployment>`: a node of that deployment
    /// (README "Many nodes (Redis)").
    pub fn redis(self, url: &str, deployment: &str) -> Self {
        self.arg("--redis-url")
            .arg(url)
            .arg("--redis-deployment")
            .arg(deployment)
    }

    /// Starts the binary with an open-file limit (`RLIMIT_NOFILE`, soft and hard) of `n`.
    pub fn open_files(mut self, n: u64) -> Self {
        self.open_files = Some(n);
        self
    }

    fn command(&self, data_dir: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tutor-queue"));
        command
            .args(["--port", "0", "--bind", "127.0.0.1", "--data-dir"])
            .arg(data_dir)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        for name in SETTINGS {
            command.env_remove(name);
        }
        if let Some(nofile) = self.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command
                    .pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, nofile, nofile));
            }
        }
        command
    }

    /// Runs the binary to its exit and returns what it wrote: for a start that fails.
    pub fn output(self) -> Output {
        let temp = tempfile::tempdir().expect("temp data dir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().to_owned());
        self.command(&data_dir)
            .output()
            .expect("run the tutor-queue binary")
    }

    /// Starts the binary and waits (at most [`WAIT`]) until it logs the port it listens on;
    /// panics with its stderr if it does not.
    pub fn spawn(self) -> RealServer {
        let (temp, data_dir) = match &self.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::tempdir().expect("temp data dir");
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let mut child = self
            .command(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the tutor-queue binary");
        let pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || drain(pipe, &lines, &tx));
        let mut server = RealServer {
            child,
            exit: None,
            port: 0,
            log,
            data_dir,
            _temp: temp,
        };
        let deadline = Instant::now() + WAIT;
        server.port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                server.kill_and_reap();
                panic!(
                    "the binary did not log `{LISTENING}<port>` within {WAIT:?} (exit: {:?}); stderr: {:#?}",
                    server.exit,
                    server.log()
                );
            };
            if let Some((_, rest)) = line.split_once(LISTENING) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits
                    .parse()
                    .unwrap_or_else(|_| panic!("no port in {line:?}"));
            }
        };
        server
    }
}

/// Reads the child's stderr until it closes: every line goes into `log`, and to `seen`
/// while someone listens. Bytes that are not UTF-8 are replaced, never a reason to stop.
fn drain(pipe: ChildStderr, log: &Mutex<Vec<String>>, seen: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.clone());
        let _ = seen.send(line);
    }
}

/// A running `tutor-queue` binary, killed (SIGKILL) and reaped on drop unless it has
/// exited already.
pub struct RealServer {
    child: Child,
    /// Set once the child is reaped: from then on its pid may be another process's.
    exit: Option<ExitStatus>,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    data_dir: PathBuf,
    /// The data directory when the test gave none; removed after the child is gone.
    _temp: Option<tempfile::TempDir>,
}

impl RealServer {
    pub fn builder() -> RealServerBuilder {
        RealServerBuilder::default()
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A handle for the test clients (`connect`, `teacher`, ...), which take a [`Server`].
    pub fn server(&self) -> Server {
        Server { port: self.port }
    }

    /// Its `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Every line it has written to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `signal` to the process (which has not been reaped, so the pid is still its).
    pub fn signal(&self, signal: Signal) {
        assert!(
            self.exit.is_none(),
            "{signal:?} to a binary that has exited ({:?})",
            self.exit
        );
        kill_process(Pid::from_child(&self.child), signal)
            .unwrap_or_else(|e| panic!("kill -{signal:?} {}: {e}", self.pid()));
    }

    /// Waits (bounded by `timeout`) for the process to exit and returns its status; if it
    /// does not, kills it and panics with its stderr.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit {
                return status;
            }
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(None) | Err(_) => {
                    self.kill_and_reap();
                    panic!(
                        "the binary did not exit within {timeout:?}; stderr: {:#?}",
                        self.log()
                    )
                }
            }
        }
    }

    /// SIGKILL, then [`wait_exit`](Self::wait_exit) with [`WAIT`].
    pub async fn sigkill(&mut self) -> ExitStatus {
        self.signal(Signal::KILL);
        self.wait_exit(WAIT).await
    }

    fn kill_and_reap(&mut self) {
        if self.exit.is_none() {
            // Only ever the process this test spawned, not yet reaped.
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
