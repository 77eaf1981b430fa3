//! The `plugboard` command line: argument types and what each command does.
//! `main.rs` only parses, dispatches and turns errors into exit codes.

mod policy;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use policy::{check, compile, run};

use crate::model::World;

#[derive(Debug, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Call routing for pay-per-call marketing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API and embedded store.
    Serve(ServeArgs),
    /// Administration of a data directory.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Work with policy components locally: validate, run on a sample.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file setting any of the keys the README lists (flags win over it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A SIP listener, UDP and TCP on the same address; repeatable
    /// (default 0.0.0.0:5060).
    #[arg(long = "sip-listen")]
    pub sip_listen: Vec<std::net::SocketAddr>,
    /// Address of the HTTP API (default 127.0.0.1:8080).
    #[arg(long)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Folder of the embedded store (default ./plugboard-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Folder of example policies to load on first start (default
    /// target/policies when it exists).
    #[arg(long)]
    pub example_policies: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first operator and print its API key (once).
    Bootstrap {
        /// Folder of the embedded store (default ./plugboard-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a component exactly as an upload would.
    Check(CheckArgs),
    /// Run a policy on a sample input and print its result, cost and logs.
    Run(RunArgs),
    /// The server's compile process: compiles the component on stdin
    /// within a budget into `--out`.
    #[command(hide = true)]
    Compile(CompileArgs),
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Where to write the compiled artifact.
    #[arg(long)]
    pub out: PathBuf,
    /// The server's memory cap per invocation, in MiB (it shapes the code).
    #[arg(long)]
    pub memory_mib: usize,
    /// CPU seconds the compile may take.
    #[arg(long)]
    pub budget_cpu_seconds: u64,
    /// Bytes of address space the compile may take.
    #[arg(long)]
    pub budget_memory_bytes: u64,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The component file (`.wasm`).
    pub file: PathBuf,
    /// The world it must implement: scorer, bidder or selector.
    #[arg(long)]
    pub world: World,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component file (`.wasm`).
    pub file: PathBuf,
    /// The world it implements: scorer, bidder or selector.
    #[arg(long)]
    pub world: World,
    /// Sample input: JSON with `call` (+ `caller_history`) for a scorer, `offer`
    /// for a bidder, `call`, `quality` and `bids` for a selector.
    #[arg(long)]
    pub input: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Fuel budget (instructions) of the invocation.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Wall-clock budget of the invocation, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Memory cap of the invocation, in MiB.
    #[arg(long)]
    pub memory_mib: Option<usize>,
}

/// Why a command failed; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("bad input {path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error(transparent)]
    Engine(#[from] crate::policy::EngineError),
    #[error(transparent)]
    Load(#[from] crate::policy::LoadError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyFailure),
}
