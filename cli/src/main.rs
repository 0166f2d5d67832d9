//! The `hoard` binary: parse the command line, set up logging, run the command.
#![deny(clippy::undocumented_unsafe_blocks)]
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cluster_file;
mod commands;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_logging(&args);
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hoard: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
