//! The `tutor-queue` binary: command line → `Config` → serve until Ctrl-C or
//! SIGTERM, then close every client with 1001 and exit 0.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A real-time tutoring queue chat server speaking Phoenix Channels.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on (0 picks a free port and logs it).
    #[arg(long, env = "PORT", default_value_t = 4000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Worker threads serving connections (0 = one per core).
    #[arg(long, env = "WORKERS", default_value_t = 0)]
    workers: usize,
    /// Directory of the transcript database (created if missing).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Record no transcripts (benchmarks): nothing is written, the API reads empty.
    #[arg(long)]
    no_transcripts: bool,
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
    let listener = TcpListener::bind(SocketAddr::new(args.bind, args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let config = tutor_queue::Config {
        workers: args.workers,
        data_dir: args.data_dir.clone(),
        transcripts: !args.no_transcripts,
        ..tutor_queue::Config::default()
    };
    let server = tutor_queue::start(listener, config).with_context(|| {
        if args.no_transcripts {
            "cannot start".to_owned()
        } else {
            format!("cannot start (transcripts in {})", args.data_dir.display())
        }
    })?;
    tracing::info!("listening on {}", server.local_addr());
    match server.transcripts().path() {
        Some(path) => tracing::info!("transcripts in {}", path.display()),
        None => tracing::info!("transcripts disabled"),
    }

    let stopper = server.stopper();
    actix_web::rt::spawn(async move {
        wait_for_stop_signal().await;
        stopper.shutdown().await;
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
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
