//! Scrubbing a body that arrives in chunks.

use super::{merge, Scrubber};

/// Scrubs a body that arrives in chunks: a secret split across two chunks is still found,
/// because the last bytes of each chunk (shorter than the longest pattern) wait for the next.
pub struct ChunkScrubber {
    scrubber: std::sync::Arc<Scrubber>,
    carry: Vec<u8>,
}

/// What can go out after a chunk: `head` (owned bytes), then the bytes `tail` of the chunk
/// itself, so that a clean chunk is passed on without a copy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Emit {
    /// Bytes held back from earlier chunks (and any redacted part), to send first.
    pub head: Vec<u8>,
    /// The range of the current chunk to send after `head`, as it is.
    pub tail: std::ops::Range<usize>,
}

impl ChunkScrubber {
    /// Scrubs with `scrubber`'s patterns, with nothing carried over yet.
    pub fn new(scrubber: std::sync::Arc<Scrubber>) -> Self {
        Self {
            scrubber,
            carry: Vec::new(),
        }
    }

    /// The scrubbed bytes that can go out now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Emit { mut head, tail } = self.push_parts(chunk);
        head.extend_from_slice(&chunk[tail]);
        head
    }

    /// Like [`ChunkScrubber::push`], without copying the clean part of `chunk`.
    pub fn push_parts(&mut self, chunk: &[u8]) -> Emit {
        let reach = self.scrubber.longest();
        let hold = reach.saturating_sub(1);
        if chunk.len() <= hold + reach {
            // Short: join it to what waits and scrub the whole.
            self.carry.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.carry);
            let hits = self.scrubber.hit_ranges(&buf);
            let safe = Self::safe_end(buf.len() - hold.min(buf.len()), buf.len(), &hits);
            self.carry = buf[safe..].to_vec();
            return Emit {
                head: Scrubber::redact(&buf[..safe], Self::before(&hits, safe)),
                tail: 0..0,
            };
        }
        // The body so far is `carry ++ chunk`. An occurrence that starts in `carry` ends within
        // the first `reach` bytes of the chunk; any other lies inside the chunk.
        let carry = std::mem::take(&mut self.carry);
        let c = carry.len();
        let mut hits: Vec<(usize, usize)> = self
            .scrubber
            .hit_ranges(chunk)
            .into_iter()
            .map(|(s, e)| (s + c, e + c))
            .collect();
        if c > 0 {
            let mut join = Vec::with_capacity(c + reach);
            join.extend_from_slice(&carry);
            join.extend_from_slice(&chunk[..reach]);
            hits.extend(self.scrubber.hit_ranges(&join));
            hits = merge(hits);
        }
        let total = c + chunk.len();
        // chunk.len() > hold, so safe > c: what waits is a tail of the chunk.
        let safe = Self::safe_end(total - hold, total, &hits);
        self.carry = chunk[safe - c..].to_vec();
        let hits = Self::before(&hits, safe);
        if hits.is_empty() {
            return Emit {
                head: carry,
                tail: 0..safe - c,
            };
        }
        let mut buf = carry;
        buf.extend_from_slice(&chunk[..safe - c]);
        Emit {
            head: Scrubber::redact(&buf, hits),
            tail: 0..0,
        }
    }

    /// Where what goes out now ends: `safe`, moved past a run of secret bytes it would cut
    /// (the run goes out replaced, whole).
    fn safe_end(safe: usize, len: usize, hits: &[(usize, usize)]) -> usize {
        match hits.iter().find(|(s, e)| *s < safe && safe < *e) {
            Some(&(_, e)) if safe > 0 => e.min(len),
            _ => safe,
        }
    }

    /// The hit ranges that end by `safe` (the others start at or after it).
    fn before(hits: &[(usize, usize)], safe: usize) -> &[(usize, usize)] {
        &hits[..hits.partition_point(|(s, _)| *s < safe)]
    }

    /// The rest, at the end of the body.
    pub fn finish(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.carry);
        self.scrubber.scrub_bytes(&buf)
    }
}
