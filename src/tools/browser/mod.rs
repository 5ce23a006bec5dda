//! The browser behind the `browser_*` tools ([`tools`]): one headless Chromium for the
//! server, one private browsing context (own cookies, storage and tab) per session.
//!
//! Chromium starts on the first browser call, on a thread of its own that also drives the
//! DevTools connection, so no session's thread can stall it. The model sees the page as text:
//! the address, title, scroll position, the interactive elements in view numbered `[n]`
//! (marked in the page with `data-okc-index`, which `browser_click`/`browser_input` use) and
//! the visible text. Only http(s) pages are opened, and no connection of Chromium reaches an
//! address that is not public unless `[browser] allow_private_networks` or `allowed_hosts`
//! say so: every connection (pages, frames, workers, WebSockets) goes through the server's
//! filtering proxy ([`proxy`]), which connects only to the address it checked, and a tab's
//! requests also pass DevTools interception as a first filter. A Chromium that died is
//! started again.
//! The session's tab and context close when the session's tool state is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig as LaunchConfig};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams as FetchEnableParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::network::ErrorReason;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::Page;
use futures_util::StreamExt;
use tokio::sync::Mutex;

pub mod address;
pub mod proxy;
mod tools;

pub use tools::{
    BrowserClick, BrowserFind, BrowserInput, BrowserScrollDown, BrowserScrollUp, BrowserState,
    BrowserVisit,
};

use super::slots::{InUse, Slot, Slots};
use super::ToolError;
use crate::config::BrowserConfig;
use address::Policy;

/// The server's Chromium, started on first use (and again if it died).
pub struct BrowserPool {
    config: BrowserConfig,
    /// Open tabs, all sessions together.
    tabs: Arc<Slots>,
    policy: Policy,
    browser: Mutex<Option<Running>>,
    /// Chromium's profile folder, removed with the pool.
    profile: Mutex<Option<PathBuf>>,
}

impl Drop for BrowserPool {
    fn drop(&mut self) {
        if let Some(profile) = self.profile.get_mut().take() {
            let _ = std::fs::remove_file(profile.with_extension("sh"));
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// A started Chromium: the browser, the runtime of its thread, and whether it still runs.
#[derive(Clone)]
struct Running {
    browser: Arc<Browser>,
    runtime: tokio::runtime::Handle,
    alive: Arc<AtomicBool>,
}

/// A session's private browsing context and its tab.
pub struct Tab {
    page: Page,
    context: BrowserContextId,
    browser: Arc<Browser>,
    alive: Arc<AtomicBool>,
    /// Its place among the server's tabs (`[limits] browser_tabs`).
    slot: Slot,
}

impl Tab {
    /// The page, held busy (never reclaimed) while the guard lives.
    fn use_page(&self) -> (Page, InUse) {
        (self.page.clone(), self.slot.in_use())
    }
}

impl std::fmt::Debug for Tab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tab")
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        let (page, context, browser) = (
            self.page.clone(),
            self.context.clone(),
            self.browser.clone(),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = page.close().await;
                let _ = browser.dispose_browser_context(context).await;
            });
        }
    }
}

fn unavailable(why: impl std::fmt::Display) -> ToolError {
    ToolError::RespondToModel(format!(
        "the browser is not available on this server: {why}. It needs Chromium (Debian package \
         chromium, or [browser] executable in okcvm.toml)"
    ))
}

impl BrowserPool {
    pub fn new(config: &BrowserConfig, max_tabs: usize) -> Self {
        Self {
            config: config.clone(),
            tabs: Slots::new("browser tabs", "browser_tabs", max_tabs),
            policy: Policy {
                allow_private_networks: config.allow_private_networks,
                allowed_hosts: config.allowed_hosts.clone(),
            },
            browser: Mutex::new(None),
            profile: Mutex::new(None),
        }
    }

    /// One line for `okcvm check` and the start-up log.
    pub fn readiness(&self) -> String {
        if !self.config.enabled {
            return "off ([browser] enabled = false)".into();
        }
        match find_executable(&self.config.executable) {
            Some(path) => format!("ready ({}, started on first use)", path.display()),
            None => format!(
                "unavailable: {} not found (install chromium)",
                self.config.executable
            ),
        }
    }

    async fn browser(&self) -> Result<Running, ToolError> {
        if !self.config.enabled {
            return Err(unavailable("[browser] enabled = false in okcvm.toml"));
        }
        let mut slot = self.browser.lock().await;
        if let Some(running) = slot.as_ref() {
            if running.alive.load(Ordering::Acquire) && answers(&running.browser).await {
                return Ok(running.clone());
            }
            running.alive.store(false, Ordering::Release); // its tabs are dropped on next use
            tracing::warn!("Chromium stopped; starting it again");
        }
        let running = self.launch().await?;
        *slot = Some(running.clone());
        Ok(running)
    }

    /// Starts Chromium (through the `setpriv` launcher when it works, else directly) on a
    /// thread that keeps driving its DevTools connection. A previous profile is removed.
    async fn launch(&self) -> Result<Running, ToolError> {
        let executable = find_executable(&self.config.executable)
            .ok_or_else(|| unavailable(format!("{} was not found", self.config.executable)))?;
        let profile = std::env::temp_dir().join(format!(
            "okcvm-chromium-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        if let Some(previous) = self.profile.lock().await.replace(profile.clone()) {
            // A profile is thousands of files: removed on the blocking pool, not awaited.
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(previous.with_extension("sh"));
                let _ = std::fs::remove_dir_all(previous);
            });
        }
        let launcher = die_with_server(&profile, &executable);
        match self.launch_with(&launcher, &profile).await {
            Err(error) if launcher != executable => {
                tracing::warn!(%error, "Chromium did not start through setpriv; starting it directly");
                self.launch_with(&executable, &profile).await
            }
            result => result,
        }
    }

    async fn launch_with(&self, executable: &Path, profile: &Path) -> Result<Running, ToolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let running_flag = alive.clone();
        let policy = self.policy.clone();
        let mut builder = LaunchConfig::builder()
            .chrome_executable(executable)
            .user_data_dir(profile)
            .window_size(1280, 900)
            .viewport(Viewport {
                width: 1280,
                height: 900,
                ..Viewport::default()
            })
            .request_timeout(Duration::from_secs(self.config.page_timeout_secs))
            // Pages stay in their tab's process and cannot open new ones, so the tab's request
            // interception sees their frames' requests too.
            .args([
                "block-new-web-contents",
                "disable-site-isolation-trials",
                "disable-features=TranslateUI,IsolateOrigins,site-per-process",
            ]);
        if nix::unistd::geteuid().is_root() {
            builder = builder.no_sandbox(); // Chromium refuses its sandbox as root
        }
        std::thread::Builder::new()
            .name("chromium".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    // The proxy lives on this thread's runtime, as long as the browser.
                    let proxy = match proxy::start(policy, proxy::Net::system()).await {
                        Ok(address) => address,
                        Err(error) => {
                            let _ =
                                tx.send(Err(format!("cannot start the browser's proxy: {error}")));
                            return;
                        }
                    };
                    let launched = builder
                        .args([
                            format!("proxy-server=http://{proxy}"),
                            // Loopback too goes through the proxy (Chromium skips it otherwise).
                            "proxy-bypass-list=<-loopback>".to_string(),
                        ])
                        .build();
                    let config = match launched {
                        Ok(config) => config,
                        Err(error) => {
                            let _ = tx.send(Err(error));
                            return;
                        }
                    };
                    match Browser::launch(config).await {
                        Ok((browser, mut handler)) => {
                            let handle = tokio::runtime::Handle::current();
                            let _ = tx.send(Ok((browser, handle)));
                            while handler.next().await.is_some() {}
                        }
                        Err(error) => {
                            let _ = tx.send(Err(error.to_string()));
                        }
                    }
                    running_flag.store(false, Ordering::Release);
                });
            })
            .map_err(unavailable)?;
        match rx.await {
            Ok(Ok((browser, runtime))) => Ok(Running {
                browser: Arc::new(browser),
                runtime,
                alive,
            }),
            Ok(Err(error)) => Err(unavailable(format!("Chromium did not start: {error}"))),
            Err(_) => Err(unavailable("Chromium did not start")),
        }
    }

    pub(super) async fn open_tab(&self) -> Result<Tab, ToolError> {
        let Running {
            browser,
            runtime,
            alive,
        } = self.browser().await?;
        // Reclaiming the slot closes the tab and its context (once they exist).
        let opened: Arc<std::sync::Mutex<Option<(Page, BrowserContextId)>>> = Arc::default();
        let slot = self.tabs.acquire({
            let (opened, browser, runtime) = (opened.clone(), browser.clone(), runtime.clone());
            move || {
                let taken = opened.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((page, context)) = taken {
                    let browser = browser.clone();
                    runtime.spawn(async move {
                        let _ = page.close().await;
                        let _ = browser.dispose_browser_context(context).await;
                    });
                }
            }
        })?;
        let failed =
            |e: chromiumoxide::error::CdpError| unavailable(format!("cannot open a tab: {e}"));
        let context = browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(failed)?;
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context.clone())
            .build()
            .map_err(unavailable)?;
        let page = browser.new_page(target).await.map_err(failed)?;
        *opened.lock().unwrap_or_else(|p| p.into_inner()) = Some((page.clone(), context.clone()));
        if !self.config.allow_private_networks {
            // Every request of the tab (redirects, links, scripts, forms) waits for a verdict.
            let mut paused = page
                .event_listener::<EventRequestPaused>()
                .await
                .map_err(failed)?;
            page.execute(FetchEnableParams::default())
                .await
                .map_err(failed)?;
            let guarded = page.clone();
            let policy = self.policy.clone();
            runtime.spawn(async move {
                let mut verdicts: HashMap<String, bool> = HashMap::new();
                while let Some(event) = paused.next().await {
                    let id = event.request_id.clone();
                    let url = &event.request.url;
                    if allowed_request(url, &policy, &mut verdicts).await {
                        let _ = guarded.execute(ContinueRequestParams::new(id)).await;
                    } else {
                        let blocked = FailRequestParams::new(id, ErrorReason::BlockedByClient);
                        let _ = guarded.execute(blocked).await;
                    }
                }
            });
        }
        Ok(Tab {
            page,
            context,
            browser,
            alive,
            slot,
        })
    }

    /// Refuses addresses the browser must not open.
    pub(super) async fn check_url(&self, raw: &str) -> Result<String, ToolError> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|_| {
            ToolError::RespondToModel(format!("{raw:?} is not a valid address (include https://)"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::RespondToModel(format!(
                "only http and https pages can be opened, not {}:",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
        let port = url.port_or_known_default().unwrap_or(80);
        if self.policy.trusts_host(host, port) {
            return Ok(url.to_string());
        }
        let private = reaches_private(host, port)
            .await
            .map_err(|e| ToolError::RespondToModel(format!("cannot resolve {host}: {e}")))?;
        if private {
            return Err(ToolError::RespondToModel(format!(
                "{host} is a local or private network address, which this server does not let \
                 the browser open"
            )));
        }
        Ok(url.to_string())
    }
}

/// Whether a request of a tab may go out: not to a private address (each host resolved once
/// per tab). Addresses without a host (data:, blob:, about:) stay inside the browser.
async fn allowed_request(url: &str, policy: &Policy, verdicts: &mut HashMap<String, bool>) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_string())
    else {
        return !matches!(
            url.scheme(),
            "http" | "https" | "ws" | "wss" | "file" | "ftp"
        );
    };
    let port = url.port_or_known_default().unwrap_or(80);
    if policy.trusts_host(&host, port) {
        return true;
    }
    if let Some(verdict) = verdicts.get(&host) {
        return *verdict;
    }
    // A host that does not resolve has nothing to check: refused (Chromium would fail too).
    let verdict = matches!(reaches_private(&host, port).await, Ok(false));
    verdicts.insert(host, verdict);
    verdict
}

/// Whether `host` is, or resolves to, an address that is not public (the proxy checks again
/// the address it connects to).
async fn reaches_private(host: &str, port: u16) -> std::io::Result<bool> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(!address::is_public(ip));
    }
    Ok(tokio::net::lookup_host((host, port))
        .await?
        .any(|resolved| !address::is_public(resolved.ip())))
}

/// A launcher that ties Chromium's life to the server's: `setpriv --pdeathsig KILL` (util-linux)
/// kills it when the thread that started it ends, which includes the server dying, even from
/// `kill -9`. Without setpriv, Chromium itself (it is then closed on drop only).
fn die_with_server(profile: &Path, executable: &Path) -> PathBuf {
    let Some(setpriv) = find_executable("setpriv") else {
        return executable.to_path_buf();
    };
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\nexec {} --pdeathsig KILL -- {} \"$@\"\n",
        quote(&setpriv),
        quote(executable)
    );
    let launcher = profile.with_extension("sh");
    let written = std::fs::write(&launcher, script).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o700))
    });
    match written {
        Ok(()) => launcher,
        Err(_) => executable.to_path_buf(),
    }
}

fn find_executable(name: &str) -> Option<PathBuf> {
    super::exec::find_program(Path::new(name))
}

/// Whether a browser still answers (the DevTools handler does not notice a killed one).
pub(super) async fn answers(browser: &Browser) -> bool {
    tokio::time::timeout(Duration::from_secs(3), browser.version())
        .await
        .is_ok_and(|r| r.is_ok())
}
