//! `hoard-bench`: hoard's benchmark harness. Each benchmark runs hoard side by side with a peer
//! in the same run and reports ratios, because these machines are shared and noisy; see
//! `docs/benchmarks.md` for what is measured and the latest numbers.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

mod checkpoint;
mod cli;
mod fuse;
mod garage;
mod gateway;
mod hoard_side;
mod iperf;
mod latency;
mod memcached;
mod procs;
mod rdma;
mod read;
mod report;
mod throughput;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Read(read_args) => read_args
            .resolve()
            .and_then(read::run)
            .context("run the read benchmark"),
        cli::Command::Checkpoint(args) => args
            .resolve()
            .and_then(checkpoint::run)
            .context("run the checkpoint benchmark"),
        cli::Command::Fuse(args) => args.resolve().and_then(fuse::run).context("run the FUSE benchmark"),
        cli::Command::Rdma(args) => args.resolve().and_then(rdma::run).context("run the RDMA benchmark"),
        cli::Command::Gateway(args) => args
            .resolve()
            .and_then(gateway::run)
            .context("run the gateway benchmark"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoard-bench: error: failed to {e:#}");
            ExitCode::FAILURE
        }
    }
}
