//! Who may use the server and how much (`[auth]`, `[quotas]`): the typed settings only; the
//! checks live in `auth/` and the HTTP identity layer.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a request says who it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No identity: the client id a request gives is its owner (loopback only, unless
    /// `allow_unauthenticated`).
    #[default]
    None,
    /// `Authorization: Bearer <token>`, users from `users_file`.
    Token,
    /// A user name in `user_header`, set by an authenticating reverse proxy at one of
    /// `trusted_proxies`.
    Proxy,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// Listen on a non-loopback address with `mode = "none"` (a warning at every start).
    pub allow_unauthenticated: bool,
    /// Users and their token hashes (TOML, or JSON when the name ends in `.json`), managed
    /// with `okcvm user`.
    pub users_file: PathBuf,
    /// The header an authenticating reverse proxy puts the user name in (`mode = "proxy"`).
    pub user_header: String,
    /// Addresses or networks (CIDR) whose `user_header` is believed.
    pub trusted_proxies: Vec<String>,
    /// Users that are administrators in `mode = "proxy"` (token users have a role).
    pub admins: Vec<String>,
    /// Name of the environment variable holding a bearer token for `GET /metrics` alone.
    pub metrics_token_env: String,
    /// Name of the environment variable holding the key that encrypts stored API keys.
    pub secret_key_env: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            allow_unauthenticated: false,
            users_file: PathBuf::from("data/users.toml"),
            user_header: "X-Forwarded-User".into(),
            trusted_proxies: Vec::new(),
            admins: Vec::new(),
            metrics_token_env: "OKCVM_METRICS_TOKEN".into(),
            secret_key_env: "OKCVM_SECRET_KEY".into(),
        }
    }
}

/// `[quotas]`: what one owner (a user; in `mode = "none"` a client id) may use. 0 = no limit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Turns running at once, over all of the owner's conversations.
    pub concurrent_turns: u32,
    /// Sessions held live at once; an idle one is evicted to make room before refusing.
    pub live_sessions: usize,
    /// Turns started per minute (a token bucket: bursts up to this many).
    pub turns_per_minute: u32,
    /// Bytes uploaded per UTC day, in MiB.
    pub upload_mb_per_day: u64,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            concurrent_turns: 4,
            live_sessions: 32,
            turns_per_minute: 0,
            upload_mb_per_day: 0,
        }
    }
}

impl AuthConfig {
    /// `trusted_proxies` as networks: a bare address is that one address.
    pub fn trusted_networks(&self) -> Result<Vec<ip_network::IpNetwork>, String> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                if entry.contains('/') {
                    entry.parse::<ip_network::IpNetwork>().map_err(|e| {
                        format!("{entry:?} is not an address or a network such as 10.0.0.0/8 ({e})")
                    })
                } else {
                    entry
                        .parse::<std::net::IpAddr>()
                        .map(ip_network::IpNetwork::from)
                        .map_err(|_| {
                            format!("{entry:?} is not an address or a network such as 10.0.0.0/8")
                        })
                }
            })
            .collect()
    }
}

impl super::Config {
    /// The `[auth]`, `[quotas]` and CORS checks of [`super::Config::validate`].
    pub(super) fn validate_access(&self) -> Result<(), super::ConfigError> {
        let invalid =
            |key: &'static str, message: String| super::ConfigError::Invalid { key, message };
        let auth = &self.auth;
        if auth.mode == AuthMode::None && !self.server.is_loopback() && !auth.allow_unauthenticated
        {
            return Err(invalid(
                "auth.mode",
                format!(
                    "is \"none\" while [server] host {} is not a loopback address: anyone who \
                     reaches it could use every session, file and model key. Turn \
                     authentication on ([auth] mode = \"token\" or \"proxy\"), or set \
                     [auth] allow_unauthenticated = true for a network you trust",
                    self.server.host
                ),
            ));
        }
        if auth.mode == AuthMode::Proxy {
            if reqwest::header::HeaderName::from_bytes(auth.user_header.as_bytes()).is_err() {
                return Err(invalid("auth.user_header", "must be a header name".into()));
            }
            let networks = self
                .auth
                .trusted_networks()
                .map_err(|e| invalid("auth.trusted_proxies", e))?;
            if networks.is_empty() {
                return Err(invalid(
                    "auth.trusted_proxies",
                    "must name the reverse proxy's address in mode = \"proxy\" (e.g. [\"127.0.0.1\"])".into(),
                ));
            }
            let loopback: [std::net::IpAddr; 2] = [
                std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::Ipv6Addr::LOCALHOST.into(),
            ];
            let trusts_loopback = networks
                .iter()
                .any(|network| loopback.iter().any(|ip| network.contains(*ip)));
            if trusts_loopback && self.sandbox.network {
                return Err(invalid(
                    "auth.trusted_proxies",
                    "trusts loopback while [sandbox] network = true: code the agent runs could \
                     reach the server on loopback and claim to be any user. Turn the sandbox's \
                     network off, or trust only the proxy's own non-loopback address"
                        .into(),
                ));
            }
        }
        for origin in &self.server.cors_origins {
            let parsed = reqwest::Url::parse(origin).ok();
            let is_origin = parsed.as_ref().is_some_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
                    && !origin.ends_with('/')
            });
            if !is_origin {
                return Err(invalid(
                    "server.cors_origins",
                    format!("{origin:?} is not an origin such as https://app.example.com"),
                ));
            }
        }
        if self.server.max_concurrent_turns == 0 {
            return Err(invalid(
                "server.max_concurrent_turns",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
