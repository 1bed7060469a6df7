//! The first pass over a text, which rules out most of it before the automaton runs.

use std::ops::ControlFlow;

/// A first pass over a text that never misses an occurrence: when every pattern is at least
/// `2 * block - 1` bytes long, each occurrence covers a whole block of `block` bytes that starts
/// at a multiple of `block`, and the bytes of that block are a `block`-gram of the pattern. So
/// only the blocks whose bytes are such a gram (a 64 KiB table by hash, then an exact look-up)
/// need the automaton, on the stretch around them where an occurrence covering them can lie.
/// About two instructions per byte, where the automaton over hundreds of patterns takes thirty.
#[derive(Clone)]
pub(super) struct Sieve {
    pub(super) block: usize,
    /// Byte `hash(gram)` is set for every gram of every pattern (a byte, not a bit: one load
    /// and no shifts per block).
    table: Box<[u8; 65536]>,
    /// Every gram of every pattern, sorted.
    grams: Vec<u32>,
}

fn gram(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .rev()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn gram_hash(g: u32) -> usize {
    (g.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

impl Sieve {
    pub(super) fn new(patterns: &[String]) -> Option<Sieve> {
        let shortest = patterns.iter().map(String::len).min()?;
        let block = shortest.div_ceil(2).min(4);
        if block < 2 {
            return None;
        }
        let mut table: Box<[u8; 65536]> = vec![0u8; 65536].into_boxed_slice().try_into().ok()?;
        let mut grams = Vec::new();
        for p in patterns {
            for w in p.as_bytes().windows(block) {
                let g = gram(w);
                table[gram_hash(g)] = 1;
                grams.push(g);
            }
        }
        grams.sort_unstable();
        grams.dedup();
        Some(Sieve {
            block,
            table,
            grams,
        })
    }

    /// Whether the gram of a block may belong to some pattern (its byte is set).
    #[inline(always)]
    fn maybe(&self, g: u32) -> u8 {
        self.table[gram_hash(g)]
    }

    /// Whether the gram of a block belongs to some pattern.
    #[inline(always)]
    fn known(&self, g: u32) -> bool {
        self.maybe(g) != 0 && self.grams.binary_search(&g).is_ok()
    }

    /// Calls `f` with the start of every block of `text` (at multiples of `block`) whose gram
    /// is known, in order, until `f` breaks.
    pub(super) fn each_candidate(
        &self,
        text: &[u8],
        mut f: impl FnMut(usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.block != 4 {
            let n = self.block;
            for (i, b) in text.chunks_exact(n).enumerate() {
                if self.known(gram(b)) {
                    f(i * n)?;
                }
            }
            return ControlFlow::Continue(());
        }
        // Four blocks at a time, one branch for the four bytes (all clear, nearly always).
        let le = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut wide = text.chunks_exact(16);
        let mut at = 0;
        for b in &mut wide {
            let g = [le(b, 0), le(b, 4), le(b, 8), le(b, 12)];
            if self.maybe(g[0]) | self.maybe(g[1]) | self.maybe(g[2]) | self.maybe(g[3]) != 0 {
                for (k, g) in g.into_iter().enumerate() {
                    if self.known(g) {
                        f(at + 4 * k)?;
                    }
                }
            }
            at += 16;
        }
        for (i, b) in wide.remainder().chunks_exact(4).enumerate() {
            if self.known(le(b, 0)) {
                f(at + 4 * i)?;
            }
        }
        ControlFlow::Continue(())
    }
}
