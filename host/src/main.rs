//! The `plugboard` binary: parse arguments, dispatch, map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use host::cli::{self, AdminCommand, Cli, Command, PolicyCommand, ServeArgs};
use host::config::{Config, ConfigFile, DEFAULT_DATA_DIR};

// glibc's allocator spent a fifth of the call server's CPU under load
// (malloc_consolidate behind sled's node copies); mimalloc does not. Built
// without transparent huge pages (`no_thp`): zeroing a fresh 2 MiB page
// inside a call's allocation put 50-150 ms on the p99 INVITE → 200 time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Cli::parse();
    let default_level = match args.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches!(
        args.command,
        Command::Serve(_) | Command::Admin(_) | Command::Policy(PolicyCommand::Compile(_))
    ) {
        host::runtime::keep_new_files_private();
    }
    if let Command::Policy(PolicyCommand::Compile(compile)) = &args.command {
        return cli::compile(compile);
    }
    let outcome = match &args.command {
        Command::Serve(serve) => run_server(serve).map(|()| String::new()),
        Command::Admin(AdminCommand::Bootstrap { data_dir }) => {
            let dir = data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            host::runtime::bootstrap(&dir).map_err(anyhow::Error::from)
        }
        Command::Policy(PolicyCommand::Check(check)) => {
            cli::check(check).map_err(anyhow::Error::from)
        }
        Command::Policy(PolicyCommand::Run(run)) => cli::run(run).map_err(anyhow::Error::from),
        Command::Replay(replay) => cli::run_replay(replay).map_err(anyhow::Error::from),
        Command::Policy(PolicyCommand::Compile(_)) => unreachable!("answered above"),
    };
    match outcome {
        Ok(report) => {
            if !report.is_empty() {
                println!("{}", report.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: &ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let config = Config::resolve(
        file,
        args.sip_listen.clone(),
        args.http_listen,
        args.data_dir.clone(),
        args.example_policies.clone(),
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(host::runtime::serve(config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
