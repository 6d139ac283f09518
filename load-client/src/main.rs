//! The `load-client` binary: parse the command line, run on one multi-threaded tokio
//! runtime (Ctrl-C ends the run early), print the human summary and, with `--json`,
//! the report as the last line of stdout. Exit status: 0 pass, 1 fail, 2 usage/setup.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let json = args.json;
    let threads = args.threads;
    let config = match args.into_config(std::io::stderr().is_terminal()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("load-client: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            builder.worker_threads(threads);
        }
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load-client: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = runtime.block_on(load_client::run_until(config, interrupt));
    match result {
        Ok(report) => {
            // A closed stdout (e.g. `| head`) must not turn a result into a panic.
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", report.summary());
            if json {
                let _ = writeln!(out, "{}", report.json());
            }
            let _ = out.flush();
            if report.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("load-client: {e:#}");
            ExitCode::from(2)
        }
    }
}
