//! Who a request is and what it may do. Every record belongs to an [`Owner`], and a
//! [`SessionKey`] (an owner's conversation) names a session and what is stored under it; a
//! [`Caller`] is an owner with a role. The [`Authenticator`] turns what a request carries (a
//! bearer token, a trusted proxy's user header, or in mode "none" the client id) into a
//! caller; the HTTP layer (`http/identity.rs`) feeds it and nothing else decides identity.
//!
//! Owners of the two kinds can never meet: a client id is `[A-Za-z0-9._-]`, a user's owner is
//! `@` + the user name, so switching modes never hands anonymous data to a user or back.

pub mod quotas;
pub mod secrets;
pub mod users;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, AuthMode, Secret};
use users::Users;

/// Whose records these are: the key prefix of everything stored, and of workspace folders.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Owner(String);

impl Owner {
    /// The owner in mode "none": the client id the request gave (already checked).
    pub fn client(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A signed-in user (the name is checked by [`users::check_name`]).
    pub fn user(name: &str) -> Self {
        Self(format!("@{name}"))
    }
}

impl std::ops::Deref for Owner {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One session: an owner's conversation. The key of everything stored under a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SessionKey {
    pub owner: Owner,
    pub conversation_id: String,
}

impl SessionKey {
    pub fn new(owner: Owner, conversation_id: impl Into<String>) -> Self {
        Self {
            owner,
            conversation_id: conversation_id.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's name; `None` in mode "none".
    pub user: Option<String>,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The owner of what this caller touches: the user, or in mode "none" the client id the
    /// request gave (a namespace of its own).
    pub fn owner(&self, client_id: &str) -> Owner {
        match &self.user {
            Some(name) => Owner::user(name),
            None => Owner::client(client_id),
        }
    }
}

/// Why a request has no identity (401). The texts say what to send, never whether a user
/// exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("sign in: send Authorization: Bearer <token> (an operator creates tokens with `okcvm user add`)")]
    MissingToken,
    #[error("the token is not valid (it may have been removed); sign in again")]
    UnknownToken,
    #[error("this server only accepts requests through its authenticating proxy")]
    UntrustedPeer,
    #[error("the authenticating proxy did not name a user")]
    MissingUser,
    #[error("the authenticating proxy named a user that is not a valid user name")]
    InvalidUser,
}

/// Resolves credentials to callers, per `[auth]`.
pub struct Authenticator {
    mode: AuthMode,
    users: Arc<Users>,
    trusted: Vec<ip_network::IpNetwork>,
    user_header: String,
    admins: HashSet<String>,
    metrics_token: Option<Secret>,
}

impl Authenticator {
    /// Reads the users file (token mode) and the metrics token; the config is validated.
    pub fn new(config: &AuthConfig) -> Result<Self, users::UsersError> {
        let users = if config.mode == AuthMode::Token {
            Users::watch(&config.users_file)?
        } else {
            Arc::new(Users::empty())
        };
        Ok(Self {
            mode: config.mode,
            users,
            trusted: config.trusted_networks().unwrap_or_default(),
            user_header: config.user_header.clone(),
            admins: config.admins.iter().cloned().collect(),
            metrics_token: Secret::from_env(&config.metrics_token_env),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The header a trusted proxy names the user in (`mode = "proxy"`).
    pub fn user_header(&self) -> &str {
        &self.user_header
    }

    /// Users in the users file (token mode).
    pub fn user_count(&self) -> usize {
        self.users.count()
    }

    /// The anonymous caller of mode "none": the operator's own machine, so an administrator.
    pub fn anonymous() -> Caller {
        Caller {
            user: None,
            role: Role::Admin,
        }
    }

    /// Mode "token": the user whose token this is.
    pub fn by_token(&self, token: Option<&str>) -> Result<Caller, Unauthenticated> {
        let token = token.ok_or(Unauthenticated::MissingToken)?;
        self.users
            .find_by_token(token)
            .map(|(user, role)| Caller {
                user: Some(user),
                role,
            })
            .ok_or(Unauthenticated::UnknownToken)
    }

    /// Mode "proxy": the user the proxy names, believed only from a trusted address.
    pub fn by_proxy(
        &self,
        peer: Option<IpAddr>,
        named: Option<&str>,
    ) -> Result<Caller, Unauthenticated> {
        let peer = peer
            .map(|ip| ip.to_canonical())
            .ok_or(Unauthenticated::UntrustedPeer)?;
        if !self.trusted.iter().any(|network| network.contains(peer)) {
            return Err(Unauthenticated::UntrustedPeer);
        }
        let name = named
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .ok_or(Unauthenticated::MissingUser)?;
        users::check_name(name).map_err(|_| Unauthenticated::InvalidUser)?;
        Ok(Caller {
            user: Some(name.to_string()),
            role: if self.admins.contains(name) {
                Role::Admin
            } else {
                Role::User
            },
        })
    }

    /// Whether `token` is the `/metrics` token (compared in constant time).
    pub fn is_metrics_token(&self, token: &str) -> bool {
        self.metrics_token
            .as_ref()
            .is_some_and(|expected| users::same_secret(expected.expose(), token))
    }
}

#[cfg(test)]
mod tests;
