//! OKCVM: a self-hosted runtime for the "OK Computer" agent.
//!
//! # Code map (the layers and their order are in the README; `tests/tidy.rs` checks them)
//! - `protocol` — wire types of the HTTP/SSE contract; nothing else.
//! - `config`   — okcvm.toml + `OKCVM__SECTION__KEY` overrides, validated.
//! - `auth/`    — owners, callers, the authenticator, users, quotas, sealed secrets.
//! - `spec`     — the system prompt and the 24-tool manifest (`spec/`), encoded once.
//! - `endpoints`— the model endpoints changed at runtime (`/api/config`).
//! - `http/`    — routes and handlers (the only actix-web importer).
//! - `runtime/` — the registry actor and one session actor per (owner, conversation)
//!   (the only actix importer); `Sessions` is what `http/` holds of it.
//! - `agent/`   — pure turn logic: history, request building, the model ↔ tools loop.
//! - `llm/`     — the OpenAI-compatible client, SSE decoding, tool-call assembly.
//! - `tools/`   — the tool trait, registry, sandboxed execution and one file per family.
//! - `workspace`— model paths (`/mnt/okcomputer/…`); the confined opener every file access
//!   goes through (`openat2` beneath the workspace root); git snapshots.
//! - `blocking` — the one way async code runs file, git and store work (blocking pool, limit).
//! - `capped_body` — the one way a body from outside is read whole (at most N bytes).
//! - `store`    — sled: conversations, history and its versions, turn events, uploads,
//!   deployments, the endpoints.
//! - `metrics`  — server-wide counters for `/metrics`.
//!
//! # One turn
//! `POST /api/chat` → `http::chat` resolves the session key → `Registry` finds or starts the
//! `SessionActor` → `StartTurn` lends history and tool state to `agent::run_turn`, which calls
//! the model, runs tool calls in order and loops until a plain answer → the actor numbers
//! every event, sends `final` (or `error`) then `stop`, and takes its parts back → the handler
//! streams the events as SSE or collects them into JSON.

pub mod agent;
pub mod auth;
pub mod blocking;
pub mod capped_body;
pub mod client;
pub mod config;
pub mod endpoints;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod permissions;
pub mod protocol;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod tools;
pub mod workspace;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix::{Actor, Arbiter};
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::llm::client::ModelClient;
use crate::runtime::{Registry, Services};
use crate::spec::Spec;
use crate::store::{Flusher, Store};
use crate::tools::browser::BrowserPool;
use crate::tools::data::DataClient;
use crate::tools::deploy::Deployer;
use crate::tools::media::MediaClient;
use crate::tools::sandbox::Sandbox;
use crate::tools::search::SearchClient;
use crate::tools::{ToolRegistry, ToolServices};
use crate::workspace::git::SnapshotPolicy;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Tools(#[from] tools::registry::RegistryError),
    #[error(transparent)]
    Settings(#[from] endpoints::EndpointsError),
    #[error(transparent)]
    Users(#[from] auth::users::UsersError),
    #[error("cannot start the model client: {0}")]
    Llm(#[from] llm::LlmError),
    #[error("cannot create {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] tools::data::DataError),
    #[error("cannot start an HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("server error: {0}")]
    Server(#[from] std::io::Error),
}

/// Builds the shared services from a validated config.
pub fn build_services(config: Config) -> Result<Services, StartError> {
    std::fs::create_dir_all(&config.workspace.root).map_err(|source| StartError::Directory {
        path: config.workspace.root.display().to_string(),
        source,
    })?;
    let spec = Arc::new(Spec::load(&config.spec)?);
    let tools = ToolRegistry::new(spec.clone())?;
    let llm = ModelClient::new(&config.llm)?;
    let sandbox = Arc::new(Sandbox::detect(&config.sandbox));
    let store = Store::open(&config.store.path)?;
    let snapshot_policy = SnapshotPolicy {
        ignore: config.workspace.ignore.clone(),
        max_file_bytes: config.workspace.snapshot_max_file_mb * 1024 * 1024,
    };
    let endpoints = Arc::new(endpoints::Endpoints::load(
        &store,
        &config.llm,
        &llm,
        auth::secrets::SecretBox::from_env(&config.auth.secret_key_env),
    )?);
    let auth = Arc::new(auth::Authenticator::new(&config.auth)?);
    let quotas =
        auth::quotas::Quotas::new(config.quotas.clone(), config.server.max_concurrent_turns);
    let tool_services = ToolServices {
        browser: BrowserPool::new(&config.browser, config.limits.browser_tabs),
        commands: Arc::new(tokio::sync::Semaphore::new(
            config.limits.sandboxed_commands,
        )),
        interpreters: tools::slots::Slots::new(
            "Python interpreters",
            "python_interpreters",
            config.limits.python_interpreters,
        ),
        data: DataClient::new(&config.data)?,
        deployer: Deployer::new(
            &config.deploy,
            &config.public_base(config.server.port),
            store.clone(),
        ),
        media: MediaClient::new(endpoints.clone()).map_err(StartError::Client)?,
        search: SearchClient::new(&config.search).map_err(StartError::Client)?,
        mcp: Arc::new(tools::mcp::McpHub::new(&config.mcp.servers)),
    };
    Ok(Services {
        endpoints,
        tool_services: Arc::new(tool_services),
        auth,
        quotas,
        metrics: Arc::default(),
        flusher: Flusher::start(store.clone()).map_err(StartError::Thread)?,
        store,
        snapshot_policy,
        tools_config: Arc::new(config.tools.clone()),
        config: Arc::new(config),
        spec,
        tools,
        llm,
        sandbox,
        standing: Default::default(),
        manifest_tokens: Default::default(),
    })
}

/// Runs the server on `listener` until `shutdown` resolves, then drains and returns.
/// Must be called inside an actix `System` (as `main` and the tests do).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let services = services_for(config, &listener)?;
    serve(Arc::new(services), listener, shutdown).await
}

/// The shared services for a server on `listener`: links the agent hands out (deployed
/// sites) use the address actually bound unless `[server] public_url` says otherwise.
pub fn services_for(config: Config, listener: &TcpListener) -> Result<Services, StartError> {
    let mut config = config;
    if config.server.public_url.is_none() {
        if let Ok(address) = listener.local_addr() {
            config.server.public_url = Some(config.public_base(address.port()));
        }
    }
    build_services(config)
}

/// Serves `services` on `listener` until `shutdown` resolves, then drains and returns.
pub async fn serve(
    services: Arc<Services>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let workers = match services.config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    for (family, state) in services.readiness() {
        tracing::info!("{family}: {state}");
    }
    // MCP servers are started once to list their tools, in the background.
    services.tool_services.mcp.discover(
        services.sandbox.clone(),
        services.config.workspace.root.join(".mcp"),
    );
    if !services.endpoints.encrypts_keys() {
        tracing::warn!(
            "API keys set through /api/config are stored in plain text: set the variable {} \
             ([auth] secret_key_env) to encrypt them",
            services.config.auth.secret_key_env
        );
    }
    if !services.config.server.is_loopback() && services.config.auth.mode == config::AuthMode::None
    {
        tracing::warn!(
            host = %services.config.server.host,
            "listening beyond loopback WITHOUT authentication ([auth] allow_unauthenticated = true): \
             every client is trusted with the id it gives"
        );
    }
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let registry = Registry::new(
        services.clone(),
        arbiters.iter().map(Arbiter::handle).collect(),
    )
    .start();
    // The model endpoint, tried once in the background: the log says at once what is wrong.
    // Then the context window is worked out (the model's own length asked, its tokenizer
    // loaded off the actors' threads) and said.
    let endpoint = services.llm.endpoint();
    let probing = services.clone();
    actix_rt::spawn(async move {
        let report = llm::probe::probe(&endpoint).await;
        for line in &report.lines {
            if report.ok {
                tracing::info!("model: {line}");
            } else {
                tracing::warn!("model: {line}");
            }
        }
        let context = probing.describe_context().await;
        if context.contains("WARNING") {
            tracing::warn!("context: {context}");
        } else {
            tracing::info!("context: {context}");
        }
    });
    let cors_origins = services.config.server.cors_origins.clone();
    let state = http::AppState {
        sessions: runtime::Sessions::new(registry),
        own_names: Arc::new(http::access::OwnNames::new(&services.config.server)),
        services,
    };
    let mcp = web::Data::new(http::mcp::service(state.sessions.clone()));
    tracing::info!(address = ?listener.local_addr().ok(), workers, "OKCVM listening");
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(http::access::gate))
            .wrap(http::access::cors(&cors_origins))
            .wrap_fn(http::trace::traced)
            .app_data(web::Data::new(state.clone()))
            .app_data(mcp.clone())
            .configure(http::routes)
    })
    .on_connect(|connection, _extensions| {
        // Small SSE frames must leave at once, not wait for Nagle's algorithm.
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown => {
            tracing::info!("shutting down");
            // The server future itself processes the stop command, so keep polling it.
            let stopping = handle.stop(true);
            server.await?;
            stopping.await;
        }
    }
    for arbiter in arbiters {
        arbiter.stop();
    }
    tracing::info!("stopped");
    Ok(())
}
