//! Server-wide settings (`settings`): named JSON values that belong to no owner, such as the
//! model endpoints set from the console.

use serde::{de::DeserializeOwned, Serialize};

use super::{decode, Store, StoreError};

impl Store {
    pub fn get_setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.settings.get(name)?.map(|v| decode(&v)).transpose()
    }

    pub fn put_setting<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StoreError> {
        self.settings.insert(name, serde_json::to_vec(value)?)?;
        Ok(())
    }
}
