//! `kpbench serve`: the backend server on its own, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use crate::datapath::serve::{ServeOptions, Server};

/// `kpbench serve` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (`0.0.0.0:8080` answers on every local address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Delay before each response, e.g. `20ms` (emulates backend work).
    #[arg(long, value_parser = super::duration::parse, default_value = "0s")]
    pub delay: Duration,
    /// Runtime worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `kpbench serve`: runs the server in the current namespace until SIGINT or SIGTERM.
pub fn serve_main(args: ServeArgs) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let server = Server::start(
        None,
        ServeOptions {
            listen: args.listen,
            delay: args.delay,
            threads: args.threads,
            hits: None,
        },
    )?;
    eprintln!(
        "kpbench serve: listening on http://{}/ (Ctrl-C to stop)",
        server.local_addr()
    );
    signals.forever().next();
    let served = server.served();
    server.stop()?;
    eprintln!("kpbench serve: stopped after {served} requests");
    Ok(())
}
