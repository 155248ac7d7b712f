//! `peregrine tune --check`: how far this host is from a low-latency setup.

use crate::cli::CliResult;

#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Report each setting, what it should be and how to change it.
    #[arg(long)]
    pub check: bool,
}

pub fn run(_args: TuneArgs) -> CliResult {
    Err("peregrine tune is not built yet".into())
}
