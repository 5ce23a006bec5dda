//! The `okcvm` binary: `okcvm serve [--config okcvm.toml]`, `okcvm tools`, `okcvm check`,
//! `okcvm user add|list|remove`, `okcvm chat`, `okcvm mcp-serve`.
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
    /// Talk to the agent from the terminal, through a running server's API.
    Chat {
        /// The running server.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        server: String,
        /// The environment variable holding the sign-in token (default `OKCVM_TOKEN`, then
        /// `~/.config/okcvm/token`); tokens never go on the command line.
        #[arg(long)]
        token_env: Option<String>,
        /// The client id to work as when the server has no sign-in.
        #[arg(long, default_value = "okcvm-cli")]
        client_id: String,
        /// Talk in this conversation.
        #[arg(long, conflicts_with_all = ["continue_last", "new"])]
        conversation: Option<String>,
        /// Continue your most recent conversation.
        #[arg(long = "continue", conflicts_with = "new")]
        continue_last: bool,
        /// Start a new conversation (the default).
        #[arg(long)]
        new: bool,
        /// Send this message, print the final reply and exit (stdin, when piped, is added).
        #[arg(short = 'p', long = "prompt")]
        prompt: Option<String>,
        /// Print every event of the turn as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// An MCP server on stdio whose `okcvm_task` tool hands work to a running OKCVM server.
    McpServe {
        /// The running server.
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        server: String,
        /// The environment variable holding the sign-in token (tokens never go on the
        /// command line).
        #[arg(long)]
        token_env: Option<String>,
        /// The client id to work as when the server has no sign-in.
        #[arg(long, default_value = "okcvm-mcp")]
        client_id: String,
    },
    /// Manage the users of `[auth] mode = "token"` (the users file of `[auth] users_file`).
    User {
        #[arg(long, default_value = "okcvm.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user and print their token (shown this once; only its hash is kept).
    Add {
        name: String,
        /// May change the model endpoints and see every live session.
        #[arg(long)]
        admin: bool,
    },
    /// List the users and their roles.
    List,
    /// Remove a user: their token stops working within seconds; their conversations stay.
    Remove { name: String },
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
        Command::Check { config } => check(&config),
        Command::User { config, action } => user(&config, action),
        Command::Chat {
            server,
            token_env,
            client_id,
            conversation,
            continue_last,
            new: _,
            prompt,
            json,
        } => {
            let conversation = match (conversation, continue_last) {
                (Some(id), _) => okcvm::client::Conversation::Named(id),
                (None, true) => okcvm::client::Conversation::Continue,
                (None, false) => okcvm::client::Conversation::New,
            };
            let options = okcvm::client::ChatOptions {
                server,
                token_env,
                client_id,
                conversation,
                prompt,
                json,
            };
            let code = tokio::runtime::Runtime::new()?.block_on(okcvm::client::run(options));
            std::process::exit(code);
        }
        Command::McpServe {
            server,
            token_env,
            client_id,
        } => mcp_serve(server, token_env, client_id),
    }
}

fn mcp_serve(server: String, token_env: Option<String>, client_id: String) -> anyhow::Result<()> {
    let token = match token_env {
        Some(name) => {
            Some(std::env::var(&name).with_context(|| format!("the variable {name} is not set"))?)
        }
        None => None,
    };
    let remote = okcvm::client::Api::new(&server, token, &client_id)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(okcvm::http::mcp::serve_stdio(remote))
        .map_err(anyhow::Error::msg)
}

fn user(config_path: &std::path::Path, action: UserAction) -> anyhow::Result<()> {
    use okcvm::auth::{users, Role};
    let config = Config::load(config_path)?;
    let path = &config.auth.users_file;
    let note = if config.auth.mode == okcvm::config::AuthMode::Token {
        String::new()
    } else {
        "note: [auth] mode is not \"token\", so these users cannot sign in yet\n".into()
    };
    match action {
        UserAction::Add { name, admin } => {
            let role = if admin { Role::Admin } else { Role::User };
            let token = users::add(path, &name, role)?;
            write_stdout(&format!(
                "{note}added {name} ({}) to {}\ntoken (shown once, keep it secret):\n{token}\n",
                if admin { "admin" } else { "user" },
                path.display()
            ))
        }
        UserAction::List => {
            let mut out = note;
            for user in users::read(path)? {
                let role = match user.role {
                    Role::Admin => "admin",
                    Role::User => "user",
                };
                out.push_str(&format!("{}\t{role}\t{}\n", user.name, user.created_at));
            }
            write_stdout(&out)
        }
        UserAction::Remove { name } => {
            if !users::remove(path, &name)? {
                anyhow::bail!("there is no user named {name} in {}", path.display());
            }
            write_stdout(&format!("removed {name}\n"))
        }
    }
}

/// `okcvm check`: the configuration, what each tool family can do, and the model endpoint.
/// Works beside a running server: its store is then left alone.
fn check(config_path: &std::path::Path) -> anyhow::Result<()> {
    let mut config = Config::load(config_path)?;
    let mut out = String::from("configuration OK\n");
    let scratch =
        match okcvm::store::Store::open_waiting(&config.store.path, std::time::Duration::ZERO) {
            Err(okcvm::store::StoreError::InUse(path)) => {
                out.push_str(&format!(
                    "store: {path} is in use by a running server (checked without it)\n"
                ));
                let scratch = tempfile_dir()?;
                config.store.path = scratch.join("store");
                Some(scratch)
            }
            Ok(_) | Err(_) => None,
        };
    let services = okcvm::build_services(config)?;
    for (family, state) in services.readiness() {
        out.push_str(&format!("{family}: {state}\n"));
    }
    let endpoint = services.llm.endpoint();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(okcvm::llm::probe::probe(&endpoint));
    for line in &report.lines {
        out.push_str(&format!("model: {line}\n"));
    }
    let context = runtime.block_on(services.describe_context());
    out.push_str(&format!("context: {context}\n"));
    if let Some(scratch) = scratch {
        let _ = std::fs::remove_dir_all(scratch);
    }
    write_stdout(&out)
}

/// A fresh private folder for `check`'s stand-in store.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("okcvm-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
