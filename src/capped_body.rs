//! The one way a body from outside the process is read whole: at most `max` bytes, refused
//! as soon as it is larger (a missing or false `Content-Length` cannot make the server buffer
//! more). The model client and every tool's third-party API read through it.

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {}", crate::protocol::size_display(*.0 as u64))]
    TooLarge(usize),
    #[error("the answer broke off: {0}")]
    Broken(reqwest::Error),
}

pub async fn read(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Broken)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
