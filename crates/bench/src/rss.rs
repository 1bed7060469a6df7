//! Resident memory of a process (`VmRSS` in `/proc/PID/status`), read once or sampled every
//! 10 ms by a thread of its own (so that a busy load generator does not delay the samples).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PERIOD: Duration = Duration::from_millis(10);
/// A sampler stops by itself after this long.
const MAX_SAMPLING: Duration = Duration::from_secs(600);

/// The process's resident set in bytes, `None` when it cannot be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples a process's RSS every 10 ms until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let until = std::time::Instant::now() + MAX_SAMPLING;
            while !flag.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                if let Some(b) = rss_bytes(pid) {
                    samples.push(b);
                }
                std::thread::sleep(PERIOD);
            }
            samples
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; answers (peak, samples taken).
    pub fn finish(mut self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (samples.iter().copied().max().unwrap_or(0), samples.len())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
