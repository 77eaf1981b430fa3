//! The `plugboard` command line: argument types and what each command does.
//! `main.rs` only parses, dispatches and turns errors into exit codes.

mod policy;
mod replay;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use policy::{check, compile, run};
pub use replay::run_replay;

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
    /// Run stored calls again through a candidate component and report
    /// what it would have changed (scores, winners, payout), with no side
    /// effect. Reads a data directory no server holds: a stopped node's,
    /// or a copy of it.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate component (`.wasm`).
    #[arg(long)]
    pub policy: PathBuf,
    /// The world it implements: scorer, bidder or selector.
    #[arg(long)]
    pub world: World,
    /// Only this campaign's calls.
    #[arg(long)]
    pub campaign: Option<String>,
    /// Calls received at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<jiff::Timestamp>,
    /// Calls received before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<jiff::Timestamp>,
    /// Calls at most, oldest first.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    /// The data directory (default ./plugboard-data).
    #[arg(long, default_value = "plugboard-data")]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
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
    #[error("{0} holds no store (nothing to replay)")]
    NoStore(PathBuf),
    #[error(
        "{0} is in use by a running server: replay a copy of it, or the directory of a stopped one"
    )]
    StoreInUse(PathBuf),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
}
