//! Permission choices (`permissions`): each conversation's own preset, tool rules and
//! remembered approvals under its key, and each owner's standing approvals under the owner
//! alone (a session key always holds a separator, an owner never does).

use super::{decode, key, Store, StoreError};
use crate::auth::SessionKey;
use crate::permissions::{ConversationPermissions, Remembered};

impl Store {
    pub fn conversation_permissions(
        &self,
        session: &SessionKey,
    ) -> Result<ConversationPermissions, StoreError> {
        Ok(match self.permissions.get(key(session))? {
            Some(value) => decode(&value)?,
            None => ConversationPermissions::default(),
        })
    }

    pub fn put_conversation_permissions(
        &self,
        session: &SessionKey,
        permissions: &ConversationPermissions,
    ) -> Result<(), StoreError> {
        self.permissions
            .insert(key(session), serde_json::to_vec(permissions)?)?;
        Ok(())
    }

    pub(super) fn remove_conversation_permissions(
        &self,
        session: &SessionKey,
    ) -> Result<(), StoreError> {
        self.permissions.remove(key(session))?;
        Ok(())
    }

    /// The approvals an owner gave "always" (every conversation).
    pub fn standing_approvals(&self, owner: &str) -> Result<Vec<Remembered>, StoreError> {
        Ok(match self.permissions.get(owner.as_bytes())? {
            Some(value) => decode(&value)?,
            None => Vec::new(),
        })
    }

    pub fn put_standing_approvals(
        &self,
        owner: &str,
        approvals: &[Remembered],
    ) -> Result<(), StoreError> {
        self.permissions
            .insert(owner.as_bytes(), serde_json::to_vec(approvals)?)?;
        Ok(())
    }
}
