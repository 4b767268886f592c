//! The `kpbench` binary: sets up logging, parses arguments and dispatches to
//! [`harness::cli`], which maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use harness::cli::Cli;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KPBENCH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,netlink_packet_route=error")
            }),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    match Cli::parse().command.execute() {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            eprintln!("kpbench: {:#}", f.error);
            ExitCode::from(f.code as u8)
        }
    }
}
