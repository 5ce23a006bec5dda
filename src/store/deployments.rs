//! The websites published from each conversation's workspace (`deployments`), by deployment
//! id. Only the records: the published files belong to `tools/deploy.rs`.

use super::{decode, prefix, remove_prefix, DeploymentRecord, Store, StoreError};
use crate::auth::SessionKey;

impl Store {
    pub fn put_deployment(
        &self,
        key: &SessionKey,
        deployment: &DeploymentRecord,
    ) -> Result<(), StoreError> {
        let mut k = prefix(key);
        k.extend_from_slice(deployment.id.as_bytes());
        self.deployments
            .insert(k, serde_json::to_vec(deployment)?)?;
        Ok(())
    }

    pub fn list_deployments(&self, key: &SessionKey) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.deployments
            .scan_prefix(prefix(key))
            .map(|item| decode(&item?.1))
            .collect()
    }

    /// Forgets a conversation's deployments and returns them (their files are the caller's).
    pub fn remove_deployments(
        &self,
        key: &SessionKey,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let records = self.list_deployments(key)?;
        remove_prefix(&self.deployments, &prefix(key))?;
        Ok(records)
    }
}
