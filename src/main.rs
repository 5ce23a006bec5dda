//! The `okcvm` binary: `okcvm serve [--config okcvm.toml]`, `okcvm tools`, `okcvm check`.
//! Parses the command line, initialises tracing and hands over to [`okcvm::run`].

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use okcvm::config::Config;

#[derive(Parser)]
#[command(
    name = "okcvm",
    version,
    about = "Self-hosted runtime for the OK Computer agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        #[arg(long, default_value = "okcvm.toml")]
        config: PathBuf,
    },
    /// List the tools of the manifest.
    Tools {
        #[arg(long, default_value = "okcvm.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and the tool contract, then exit.
    Check {
        #[arg(long, default_value = "okcvm.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OKCVM_LOG")
                // The DevTools client warns about every protocol message it does not know.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,chromiumoxide=error")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { config } => serve(&config),
        Command::Tools { config } => {
            let config = Config::load(&config)?;
            let spec = okcvm::spec::Spec::load(&config.spec)?;
            let mut out = String::new();
            for tool in &spec.tools {
                out.push_str(&format!("{}\t{}\n", tool.name, tool.required.join(",")));
            }
            write_stdout(&out)
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let services = okcvm::build_services(config)?;
            let mut out = String::from("configuration OK\n");
            for (family, state) in services.readiness() {
                out.push_str(&format!("{family}: {state}\n"));
            }
            write_stdout(&out)
        }
    }
}

fn serve(config_path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let address = format!("{}:{}", config.server.host, config.server.port);
    let listener =
        TcpListener::bind(&address).with_context(|| format!("cannot listen on {address}"))?;
    actix_rt::System::new()
        .block_on(async move { okcvm::run(config, listener, shutdown_signal()).await })?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
