//! The records of the files uploaded to each conversation (`uploads`), by file name. Only the
//! records: the files themselves live in the session's workspace.

use super::{decode, prefix, remove_prefix, Store, StoreError, UploadRecord};
use crate::auth::SessionKey;

impl Store {
    pub fn list_uploads(&self, key: &SessionKey) -> Result<Vec<UploadRecord>, StoreError> {
        self.uploads
            .scan_prefix(prefix(key))
            .map(|item| {
                let (_, value) = item?;
                decode(&value)
            })
            .collect()
    }

    pub fn put_upload(&self, key: &SessionKey, upload: &UploadRecord) -> Result<(), StoreError> {
        let mut k = prefix(key);
        k.extend_from_slice(upload.name.as_bytes());
        self.uploads.insert(k, serde_json::to_vec(upload)?)?;
        Ok(())
    }

    pub fn clear_uploads(&self, key: &SessionKey) -> Result<(), StoreError> {
        remove_prefix(&self.uploads, &prefix(key))
    }
}
