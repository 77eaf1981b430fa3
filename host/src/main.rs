//! The `plugboard` binary: parse arguments, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use host::cli::{self, Cli, Command, PolicyCommand};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Cli::parse();
    let outcome = match &args.command {
        Command::Policy(PolicyCommand::Check(check)) => cli::check(check),
        Command::Policy(PolicyCommand::Run(run)) => cli::run(run),
    };
    match outcome {
        Ok(report) => {
            println!("{}", report.trim_end());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
