//! Caps on text that flows back to the model.
//!
//! Pure. A result longer than the cap keeps its head and tail with a notice in between saying
//! how much was left out, so the model sees both how a command started and how it ended.
//! Cuts never split a UTF-8 character.

/// Cuts `text` to at most about `cap` bytes, keeping head and tail.
pub fn cap_middle(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let keep = cap.saturating_sub(120);
    let head_len = floor_char_boundary(text, keep * 2 / 3);
    let tail_start = ceil_char_boundary(text, text.len() - (keep - keep * 2 / 3));
    let omitted = tail_start - head_len;
    format!(
        "{}\n\n[... {omitted} bytes omitted; the output was {} bytes in all ...]\n\n{}",
        &text[..head_len],
        text.len(),
        &text[tail_start..]
    )
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// Collects a child's output as it streams without ever holding more than `cap` bytes: the
/// first half is kept, then a ring of the latest bytes.
#[derive(Debug)]
pub struct HeadTailBuffer {
    cap: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: usize,
}

impl HeadTailBuffer {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        let head_cap = self.cap / 2;
        let room = head_cap.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        let tail_cap = self.cap - head_cap;
        self.tail.extend(rest);
        while self.tail.len() > tail_cap {
            self.tail.pop_front();
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept text, with a notice where bytes were dropped.
    pub fn into_text(self) -> String {
        let kept = self.head.len() + self.tail.len();
        let head = String::from_utf8_lossy(&self.head).into_owned();
        let tail: Vec<u8> = self.tail.into_iter().collect();
        let tail = String::from_utf8_lossy(&tail);
        if kept == self.total {
            return format!("{head}{tail}");
        }
        format!(
            "{head}\n\n[... {} bytes omitted; the output was {} bytes in all ...]\n\n{tail}",
            self.total - kept,
            self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(cap_middle("abc", 1000), "abc");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let text = format!("START{}END", "x".repeat(10_000));
        let capped = cap_middle(&text, 1024);
        assert!(capped.starts_with("START"));
        assert!(capped.ends_with("END"));
        assert!(capped.contains("bytes omitted"));
        assert!(capped.len() < 1200);
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é".repeat(5000);
        let capped = cap_middle(&text, 1001);
        assert!(capped.contains("omitted"));
    }

    #[test]
    fn head_tail_buffer_bounds_memory() {
        let mut buffer = HeadTailBuffer::new(10);
        buffer.push(b"0123456789");
        buffer.push(b"abcdefghij");
        assert_eq!(buffer.total(), 20);
        let text = buffer.into_text();
        assert!(text.starts_with("01234"), "{text}");
        assert!(text.ends_with("fghij"), "{text}");
        assert!(text.contains("10 bytes omitted"), "{text}");
        let mut small = HeadTailBuffer::new(10);
        small.push(b"abc");
        assert_eq!(small.into_text(), "abc");
    }
}
