//! What the HTTP layer holds of the runtime: [`Sessions`], a handle to the registry that asks
//! a session (starting it when needed), removes one, or reads the live figures. Actor
//! addresses and mailbox errors stay behind it; callers see [`SessionError`] only.

use actix::prelude::*;

use super::messages::{GetSession, GetStats, RegistryStats, RemoveSession, SessionError};
use super::registry::Registry;
use super::session::SessionActor;
use crate::auth::SessionKey;

#[derive(Clone)]
pub struct Sessions {
    registry: Addr<Registry>,
}

impl Sessions {
    pub fn new(registry: Addr<Registry>) -> Self {
        Self { registry }
    }

    /// Sends `message` to the session of `key`, starting the session if needed. A session
    /// that stopped between the lookup and the send (an idle eviction that got there first)
    /// never handled the message: it is started again from the store and asked once more.
    pub async fn ask<M, T>(&self, key: &SessionKey, message: M) -> Result<T, SessionError>
    where
        M: Message<Result = Result<T, SessionError>> + Clone + Send + 'static,
        T: Send + 'static,
        SessionActor: Handler<M>,
    {
        let mut retried = false;
        loop {
            let session = self
                .registry
                .send(GetSession { key: key.clone() })
                .await??;
            match session.send(message.clone()).await {
                Ok(answer) => return answer,
                Err(MailboxError::Closed) if !retried => retried = true,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Stops the session of `key` (after persisting a running turn) and forgets it.
    pub async fn remove(&self, key: SessionKey) -> Result<(), SessionError> {
        Ok(self.registry.send(RemoveSession { key }).await?)
    }

    /// The live sessions and the registry's counters.
    pub async fn stats(&self) -> Result<RegistryStats, SessionError> {
        Ok(self.registry.send(GetStats).await?)
    }
}
