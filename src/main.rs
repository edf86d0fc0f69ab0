//! The `tern` binary: flags and config file, logging, signals; the broker
//! itself is `tern::Server`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

/// An MQTT 3.1.1 broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; repeat for several. Overrides the config file's
    /// `listen`. [default: 127.0.0.1:1883]
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<std::net::SocketAddr>,
    /// TOML file with limits; see README.md for every key and its default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the runtime: {error}")),
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("tern: {message}");
    ExitCode::FAILURE
}

async fn serve(args: Args) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => tern::Config::from_file(path).map_err(|e| e.to_string())?,
        None => tern::Config::default(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    let mut listeners = Vec::new();
    for address in &config.listen {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
        listeners.push(listener);
    }
    let server = tern::Server::new(config);
    let report = server.run(listeners, stop_signal()).await;
    if report.lingering.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} task(s) did not end: {}",
            report.lingering.len(),
            report.lingering.join(", ")
        ))
    }
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
}
