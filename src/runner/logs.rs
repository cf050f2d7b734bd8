//! Stage output: raw chunks from a container turned into masked lines.
//!
//! Output arrives in arbitrary chunks; lines are cut at `\n`, and a line longer than
//! [`MAX_LINE_BYTES`] is cut into several so one runaway line cannot grow memory. Secrets are
//! masked per whole line, so a value split across two chunks is still caught.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::domain::Secret;

/// Longest line kept whole. Longer output without a newline (a progress bar, a minified
/// file) is split into lines of this size.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// What a masked secret shows as.
pub const MASK: &str = "****";

/// Replaces secret values in lines.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Each non-empty line of each secret, longest first so a secret that contains another
    /// is masked whole.
    needles: Vec<String>,
}

impl Masker {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut needles: Vec<String> = secrets
            .into_iter()
            .flat_map(|secret| {
                secret
                    .expose()
                    .lines()
                    .map(str::trim_end)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| !line.is_empty())
            .collect();
        needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
        needles.dedup();
        Self { needles }
    }

    pub fn mask(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }
}

/// What one stage may still write to its log (`runner.max_log_size`), and what it dropped.
/// Whole lines are kept or dropped, never a part of one, so a secret is never cut in two
/// by the cap and left half unmasked; once a line is dropped, every later one is too, so
/// the kept log is the stage's output from its start.
#[derive(Debug)]
pub struct LogBudget {
    left: AtomicU64,
    exhausted: AtomicBool,
    dropped: AtomicU64,
}

impl LogBudget {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            left: AtomicU64::new(max_bytes),
            exhausted: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Takes room for `line` and its newline; `false`, counting them dropped, when the
    /// log is full.
    pub fn take(&self, line: &str) -> bool {
        let size = line.len() as u64 + 1;
        if !self.exhausted.load(Ordering::Relaxed) {
            let taken = self
                .left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(size)
                });
            if taken.is_ok() {
                return true;
            }
            self.exhausted.store(true, Ordering::Relaxed);
        }
        self.dropped.fetch_add(size, Ordering::Relaxed);
        false
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Cuts a byte stream into lines. One per output stream (stdout, stderr), so their
/// partial lines never mix.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; calls `emit` with each complete line (without its newline).
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&str)) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline);
            if self.partial.is_empty() {
                emit_line(line, &mut emit);
            } else {
                self.partial.extend_from_slice(line);
                emit_line(&std::mem::take(&mut self.partial), &mut emit);
            }
            rest = &after[1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE_BYTES {
            // Cut at a character boundary so the piece is valid text.
            let mut cut = MAX_LINE_BYTES;
            while cut > 0 && !is_char_boundary(&self.partial, cut) {
                cut -= 1;
            }
            let cut = if cut == 0 { MAX_LINE_BYTES } else { cut };
            let piece: Vec<u8> = self.partial.drain(..cut).collect();
            emit_line(&piece, &mut emit);
        }
    }

    /// Emits what is left when the stream ends without a final newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            emit_line(&std::mem::take(&mut self.partial), &mut emit);
        }
    }
}

fn is_char_boundary(bytes: &[u8], at: usize) -> bool {
    at >= bytes.len() || (bytes[at] as i8) >= -0x40
}

fn emit_line(line: &[u8], emit: &mut impl FnMut(&str)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => emit(text),
        Err(_) => emit(&String::from_utf8_lossy(line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |line| out.push(line.to_owned()));
        }
        splitter.finish(|line| out.push(line.to_owned()));
        out
    }

    #[test]
    fn lines_are_cut_across_chunks() {
        assert_eq!(
            lines(&[b"a\nb", b"c\r\n", b"\nlast"]),
            ["a", "bc", "", "last"]
        );
    }

    #[test]
    fn runaway_lines_are_cut_into_bounded_pieces() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let out = lines(&[&long]);
        assert_eq!(
            out.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]
        );
    }

    #[test]
    fn the_budget_keeps_whole_lines_from_the_start_and_counts_the_rest() {
        let budget = LogBudget::new(10);
        assert!(budget.take("abcd")); // 5 bytes with its newline
        assert!(!budget.take("abcdefgh")); // would need 9: the log is full
        assert!(
            !budget.take("a"),
            "nothing after the first dropped line is kept"
        );
        assert_eq!(budget.dropped(), 9 + 2);
    }

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let secrets = [
            Secret::new("hunter2"),
            Secret::new("-----BEGIN KEY-----\nabc123\n"),
        ];
        let masker = Masker::new(&secrets);
        assert_eq!(
            masker.mask("token=hunter2;again:hunter2"),
            "token=****;again:****"
        );
        assert_eq!(masker.mask("abc123"), "****");
        assert_eq!(masker.mask("nothing here"), "nothing here");
        assert_eq!(Masker::new(&[Secret::new("")]).mask("a"), "a");
    }
}
