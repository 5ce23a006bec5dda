//! Incremental decoder of a `text/event-stream` body into the `data` payloads of its events.
//!
//! Pure: bytes in, payload strings out, no I/O and no timers. Chunk boundaries may fall anywhere
//! (inside a line, inside a UTF-8 character); `\n`, `\r\n` and `\r` line ends are accepted;
//! comments and fields other than `data` are skipped.

/// Keeps the unfinished line and the current event's data between chunks.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
    /// The last chunk ended with `\r`, so a leading `\n` of the next one belongs to it.
    pending_cr: bool,
}

/// The longest line we buffer: a model that never ends a line must not eat memory.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("event-stream line longer than {MAX_LINE_BYTES} bytes")]
pub struct LineTooLong;

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; returns the payloads of the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut events = Vec::new();
        for &byte in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.pending_cr = true;
                    self.end_line(&mut events);
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(events)
    }

    /// The stream ended: an event whose blank line never came is still delivered.
    pub fn finish(&mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.end_line(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.find(':') {
            Some(at) => {
                let value = &text[at + 1..];
                (&text[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text.as_ref(), ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(body: &[u8], size: usize) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            out.extend(decoder.feed(chunk).unwrap());
        }
        out.extend(decoder.finish());
        out
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let body =
            "data: {\"a\":1}\n\n: ping\n\nevent: x\ndata: two\ndata: lines\r\n\r\ndata:[DONE]\n\n"
                .as_bytes();
        let want = vec!["{\"a\":1}", "two\nlines", "[DONE]"];
        for size in 1..body.len() {
            assert_eq!(decode_in_chunks(body, size), want, "chunk size {size}");
        }
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let body = "data: héllo ✓\n\n".as_bytes();
        assert_eq!(decode_in_chunks(body, 1), vec!["héllo ✓"]);
    }

    #[test]
    fn unterminated_final_event_is_delivered() {
        assert_eq!(decode_in_chunks(b"data: last", 4), vec!["last"]);
        assert_eq!(decode_in_chunks(b"", 4), Vec::<String>::new());
    }

    #[test]
    fn lone_cr_ends_lines() {
        assert_eq!(
            decode_in_chunks(b"data: a\r\rdata: b\r\r", 3),
            vec!["a", "b"]
        );
    }
}
