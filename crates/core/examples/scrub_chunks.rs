//! A focused micro-benchmark of the streaming scrubber, for `valgrind --tool=callgrind` or
//! `perf stat`: `cargo run --release -p latchkey-core --example scrub_chunks -- [MB] [CHUNK] [text|x]`
//! scrubs MB megabytes (default 16) of answer body, cut in CHUNK-byte chunks (default 16384), of
//! the bench upstream's body (`x`, every byte `x`) or of JSON-like text (`text`), with the bench's
//! API key as the secret, and prints the time per megabyte.

use latchkey_core::scrub::{ChunkScrubber, Scrubber};
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let chunk: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16384);
    let kind = args.get(3).map(String::as_str).unwrap_or("x");
    let mut s = Scrubber::new();
    s.add("bench-upstream-key-7d1c");
    let s = Arc::new(s);
    let body: Vec<u8> = match kind {
        "text" => {
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let alphabet =
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-\":{},";
            (0..1024 * 1024)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect()
        }
        _ => vec![b'x'; 1024 * 1024],
    };
    let start = std::time::Instant::now();
    let mut total = 0usize;
    for _ in 0..mb {
        let mut c = ChunkScrubber::new(s.clone());
        for piece in body.chunks(chunk) {
            total += c.push(piece).len();
        }
        total += c.finish().len();
    }
    let el = start.elapsed();
    assert_eq!(total, mb * body.len(), "nothing to redact in this body");
    println!(
        "{mb} MB in {chunk}-byte chunks ({kind}): {:.3} ms per MB",
        el.as_secs_f64() * 1000.0 / mb as f64
    );
}
