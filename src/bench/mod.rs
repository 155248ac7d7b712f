//! `peregrine bench`: load generator with HDR-histogram reports.

use crate::cli::CliResult;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> CliResult {
    Err("peregrine bench is not built yet".into())
}
