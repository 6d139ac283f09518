//! The `tutor-queue` binary: command line → `Config` → serve until Ctrl-C or
//! SIGTERM, then close every client with 1001 and exit 0. `tutor-queue token`
//! prints a token signed with the secret the server would use.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tutor_queue::identity::{Claims, Role, TokenKeys};
use tutor_queue::Config;

/// A real-time tutoring queue chat server speaking Phoenix Channels.
///
/// Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Port to listen on (0 picks a free port and logs it).
    #[arg(long, env = "PORT", default_value_t = 4000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Worker threads serving connections (0 = one per core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    workers: usize,
    /// Open WebSocket connections at most; more upgrades get HTTP 503. Lowered at
    /// startup to what the open-file limit allows (the effective cap is logged).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Open WebSocket connections from one IP address; more get HTTP 429 (0 = no cap).
    /// Behind a reverse proxy every client has the proxy's address: leave it at 0 there.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = Config::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// Open WebSocket connections per signed-in user (token role and sub), over all its tabs and devices; more get HTTP 429 (0 = no cap).
    #[arg(long, env = "MAX_CONNECTIONS_PER_USER", default_value_t = Config::default().max_connections_per_user)]
    max_connections_per_user: usize,
    /// Largest inbound WebSocket message in bytes (larger: close 1009).
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = Config::default().max_frame_bytes)]
    max_frame_bytes: usize,
    /// Channels one connection may have joined at once.
    #[arg(long, env = "MAX_CHANNELS", default_value_t = Config::default().max_channels)]
    max_channels: usize,
    /// Inbound frames per second one connection may keep up (0 = no limit).
    #[arg(long, env = "MAX_FRAMES_PER_SEC", default_value_t = Config::default().max_frames_per_sec)]
    max_frames_per_sec: u32,
    /// Frames one connection may send at once above that rate; past it: close 1008.
    #[arg(long, env = "FRAME_BURST", default_value_t = Config::default().frame_burst)]
    frame_burst: u32,
    /// Frames queued to one connection and not yet written; past it: close 1008 (slow consumer).
    #[arg(long, env = "OUTBOUND_LIMIT", default_value_t = Config::default().outbound_limit)]
    outbound_limit: usize,
    /// Bytes queued to one connection and not yet written; past it: close 1008 (slow consumer).
    #[arg(long, env = "OUTBOUND_BYTES", default_value_t = Config::default().outbound_bytes)]
    outbound_bytes: usize,
    /// Seconds without a frame before a connection is closed.
    #[arg(long, env = "IDLE_TIMEOUT_S", default_value_t = Config::default().idle_timeout.as_secs())]
    idle_timeout_s: u64,
    /// Seconds data written to a connection may stay unacknowledged before the
    /// kernel drops the connection (TCP_USER_TIMEOUT; frees clients that stopped reading).
    #[arg(long, env = "SEND_TIMEOUT_S", default_value_t = Config::default().send_timeout.as_secs())]
    send_timeout_s: u64,
    /// Seconds a token user whose connection dropped keeps its place and its
    /// chats (away) before it is gone; 0: gone at once, as tokenless users.
    #[arg(long, env = "RECONNECT_GRACE_S", default_value_t = Config::default().reconnect_grace.as_secs())]
    reconnect_grace_s: u64,
    /// Messages held per chat for a side that is away; past it: `recipient away`.
    #[arg(long, env = "HELD_MESSAGES", default_value_t = Config::default().held_messages)]
    held_messages: usize,
    /// Payload bytes held per chat for a side that is away; past it: `recipient away`.
    #[arg(long, env = "HELD_BYTES", default_value_t = Config::default().held_bytes)]
    held_bytes: usize,
    /// The Redis the tutoring state lives in, shared by every node (`redis://host:port/db`);
    /// without it everything lives in this process (one node, nothing external).
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// The deployment's name in Redis: its keys are `tq:{<name>}:*`.
    #[arg(long, env = "REDIS_DEPLOYMENT", default_value = "tutor-queue")]
    redis_deployment: String,
    /// Directory of the transcript database and of the generated token secret
    /// (`token-secret`), created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Record no transcripts (benchmarks): nothing is written, the API reads empty.
    #[arg(long)]
    no_transcripts: bool,
    /// Secret (at least 32 bytes) that tokens are signed and verified with (HS256).
    /// Without it: the one in <data-dir>/token-secret, generated at the first start.
    #[arg(long, env = "TOKEN_SECRET", hide_env_values = true, global = true)]
    token_secret: Option<String>,
    /// Refuse (HTTP 401) every WebSocket upgrade that brings no valid token.
    #[arg(long, env = "REQUIRE_TOKEN")]
    require_token: bool,
    /// Roles anyone may sign in as with `POST /api/session` (guest tokens), comma
    /// separated: student, teacher. Empty turns guest sign-in off (403); admin is refused.
    #[arg(long, env = "GUEST_ROLES", default_value = "student,teacher")]
    guest_roles: String,
    /// How long a guest token is valid: 30m, 12h, 7d...
    #[arg(long, env = "GUEST_TOKEN_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    guest_token_ttl: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a token signed with the server's secret (--token-secret, or the
    /// one in --data-dir).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// student, teacher or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The display name.
        #[arg(long)]
        name: String,
        /// How long the token is valid: 30m, 12h, 7d...
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// `--guest-roles`: student and teacher, comma separated; empty is none.
fn parse_guest_roles(text: &str) -> anyhow::Result<Vec<Role>> {
    let mut roles = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<Role>() {
            Ok(Role::Admin) => anyhow::bail!("--guest-roles: admin cannot sign in as a guest"),
            Ok(role) => roles.push(role),
            Err(_) => anyhow::bail!("--guest-roles: {part:?} is not student or teacher"),
        }
    }
    Ok(roles)
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|_| "expected student, teacher or admin".to_owned())
}

/// The secret of `--token-secret`, else the one kept in the data directory.
fn token_keys(args: &Args) -> anyhow::Result<TokenKeys> {
    match &args.token_secret {
        Some(secret) => TokenKeys::from_secret(secret.as_bytes()).context("--token-secret"),
        None => TokenKeys::load_or_create(&args.data_dir)
            .context("cannot load or create the token secret"),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    if let Some(Command::Token {
        sub,
        role,
        name,
        ttl,
    }) = &args.command
    {
        let keys = token_keys(&args)?;
        let token = keys
            .mint(&Claims::new(sub.as_str(), *role, name.as_str(), *ttl))
            .context("cannot mint")?;
        println!("{token}");
        return Ok(());
    }
    let tokens = token_keys(&args)?;
    let guest_roles = parse_guest_roles(&args.guest_roles)?;
    let listener = TcpListener::bind(SocketAddr::new(args.bind, args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let mut config = Config {
        workers: args.workers,
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        max_connections_per_user: args.max_connections_per_user,
        max_frame_bytes: args.max_frame_bytes,
        max_channels: args.max_channels,
        max_frames_per_sec: args.max_frames_per_sec,
        frame_burst: args.frame_burst,
        outbound_limit: args.outbound_limit,
        outbound_bytes: args.outbound_bytes,
        idle_timeout: Duration::from_secs(args.idle_timeout_s.max(1)),
        send_timeout: Duration::from_secs(args.send_timeout_s.max(1)),
        data_dir: args.data_dir.clone(),
        transcripts: !args.no_transcripts,
        tokens: Some(tokens),
        require_token: args.require_token,
        guest_roles,
        guest_token_ttl: args.guest_token_ttl,
        reconnect_grace: Duration::from_secs(args.reconnect_grace_s),
        held_messages: args.held_messages,
        held_bytes: args.held_bytes,
        redis_url: args.redis_url.clone(),
        redis_deployment: args.redis_deployment.clone(),
        ..Config::default()
    };
    fit_to_open_files(&mut config);
    if let Some(url) = &config.redis_url {
        // Fail the start, not the first client, when Redis cannot be reached.
        tutor_queue::redis_engine::RedisTutoring::new(url, &config.redis_deployment)
            .context("bad --redis-url")?
            .connect()
            .await
            .with_context(|| format!("cannot reach Redis at {url}"))?;
        tracing::info!(deployment = %config.redis_deployment, "tutoring state in Redis");
    }
    let server = tutor_queue::start(listener, config).with_context(|| {
        if args.no_transcripts {
            "cannot start".to_owned()
        } else {
            format!("cannot start (transcripts in {})", args.data_dir.display())
        }
    })?;
    tracing::info!(
        require_token = args.require_token,
        "token secret from {}",
        if args.token_secret.is_some() {
            "--token-secret".to_owned()
        } else {
            args.data_dir
                .join(tutor_queue::identity::SECRET_FILE)
                .display()
                .to_string()
        }
    );
    tracing::info!("listening on {}", server.local_addr());
    match server.transcripts().path() {
        Some(path) => tracing::info!("transcripts in {}", path.display()),
        None => tracing::info!("transcripts disabled"),
    }

    let health = server.engine_health();
    let fence = health.clone().map(|health| {
        // A node the others declared dead is fenced for good: it stops, and a
        // supervisor's fresh start is a new node.
        let stopper = server.stopper();
        actix_web::rt::spawn(async move {
            while !health.is_fenced() {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            tracing::error!("fenced: stopping");
            stopper.shutdown().await;
        })
    });
    let stopper = server.stopper();
    let signalled = actix_web::rt::spawn(async move {
        wait_for_stop_signal().await;
        stopper.shutdown().await;
    });
    server.wait().await?;
    // The HTTP server stops before the shutdown that stopped it has finished:
    // a fenced node waits for it, then exits with its own status (not 0).
    if let (Some(health), Some(fence)) = (health, fence) {
        if health.is_fenced() {
            let _ = fence.await;
            tracing::error!("stopped: fenced");
            std::process::exit(75);
        }
    }
    // Likewise after a stop signal: the shutdown commits what came in while
    // the connections closed once the HTTP server has stopped.
    let _ = signalled.await;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft open-file limit to the hard one, then lowers the
/// connection caps to what it allows, so that clients past them get 503
/// instead of the accept loop running into `EMFILE` (clients hanging, the log
/// filling with "Too many open files").
fn fit_to_open_files(config: &mut Config) {
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(nofile) => nofile,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            match rlimit::getrlimit(rlimit::Resource::NOFILE) {
                Ok((soft, _)) => soft,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the open-file limit; caps left as configured");
                    return;
                }
            }
        }
    };
    let wanted = config.max_connections;
    let caps = config.fit_to_descriptors(nofile);
    tracing::info!(
        open_files = caps.nofile,
        reserved = caps.reserved,
        accepted_per_worker = caps.accept_per_worker,
        workers = config.worker_threads(),
        max_connections = caps.websockets,
        max_connections_per_ip = config.max_connections_per_ip,
        "connection caps"
    );
    if caps.websockets < wanted {
        tracing::warn!(
            wanted,
            effective = caps.websockets,
            "the open-file limit ({nofile}) lowers max_connections; raise it (ulimit -n, LimitNOFILE=) for more"
        );
    }
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
