//! The `peregrine` command: serve the broker, or talk to one.

use clap::Parser;

fn main() {
    let cli = peregrine::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr on a full disk) is dropped: the
        // subscriber's own report of it goes through `eprintln!`, which panics the
        // shard that logged when stderr fails.
        .log_internal_errors(false)
        .init();
    if let Err(e) = peregrine::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
