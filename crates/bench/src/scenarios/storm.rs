//! Figure 3: a refresh storm. The stored token is expired directly in the store (as the OAuth
//! tests do, waiting out the in-memory hot path's recheck interval), the simulator's token endpoint is slowed to 200 ms, and 1,000 callers, each on a
//! connection opened beforehand, ask for the token at the same moment. Measured: refreshes the
//! simulator received (must be 1), callers served, and how long after the refresh's answer came
//! back from the simulator (seen by the tap) the last caller had its token.

use crate::db;
use crate::load::{self, Target as Dest};
use crate::report::{Row, Table, Target, Unit};
use crate::setup::{Backend, Latchkey, Stack, SF, TOKEN_PATH};
use futures::future::join_all;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIG: &str = "3 refresh storm";
/// How long the simulator takes to answer the refresh.
pub const TOKEN_DELAY: Duration = Duration::from_millis(200);
/// A storm that has not settled by then failed.
const STORM_LIMIT: Duration = Duration::from_secs(60);

struct Outcome {
    refreshes: f64,
    served: f64,
    /// From the refresh's answer to the last caller served.
    after_answer_ms: f64,
    /// From the refresh's answer to the first caller served.
    first_after_answer_ms: f64,
    /// From the start of the storm to the last caller served.
    total_ms: f64,
    /// From the start of the storm to the refresh's answer.
    refresh_ms: f64,
}

async fn storm(stack: &Stack, lk: &Latchkey, callers: usize) -> anyhow::Result<Outcome> {
    db::expire_stored_token(&lk.database_url, SF).await?;
    // Token reads are answered from memory for a moment before the store is asked again.
    tokio::time::sleep(latchkey_server::oauth::tokens::HOT_RECHECK + Duration::from_millis(200))
        .await;
    let dest = Arc::new(load::target(&format!("{}{TOKEN_PATH}", lk.url))?);
    let headers = Arc::new(vec![(
        hyper::header::AUTHORIZATION,
        hyper::header::HeaderValue::from_str(&format!("Bearer {}", lk.key))?,
    )]);
    // Connections first, in groups so the accept queue does not overflow.
    let mut senders = Vec::with_capacity(callers);
    for group in (0..callers).collect::<Vec<_>>().chunks(100) {
        let opened = join_all(group.iter().map(|_| load::connect(&dest.authority))).await;
        for s in opened {
            senders.push(s?);
        }
    }
    stack.sim.set_token_delay(TOKEN_DELAY);
    let refreshes_before = stack.sim.refresh_count();
    let answers_before = stack.tap.refresh_answers().len();
    let (go, ready) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            let (dest, headers, mut ready): (Arc<Dest>, _, _) =
                (dest.clone(), headers.clone(), ready.clone());
            tokio::spawn(async move {
                let _ = ready.wait_for(|v| *v).await;
                let req = load::request(&dest, &headers);
                let r = load::exchange(&mut s, req, None).await;
                (r.map(|(status, _, _)| status).unwrap_or(0), Instant::now())
            })
        })
        .collect();
    let start = Instant::now();
    go.send(true)?;
    let results = tokio::time::timeout(STORM_LIMIT, join_all(tasks)).await;
    stack.sim.set_token_delay(Duration::ZERO);
    let results =
        results.map_err(|_| anyhow::anyhow!("the storm did not settle within {STORM_LIMIT:?}"))?;
    let mut served = 0usize;
    let mut last = start;
    let mut first: Option<Instant> = None;
    for r in results {
        let (status, done) = r?;
        if status == 200 {
            served += 1;
            first = Some(first.map_or(done, |f| f.min(done)));
        }
        last = last.max(done);
    }
    let refreshes = stack.sim.refresh_count() - refreshes_before;
    let answers = stack.tap.refresh_answers();
    let answer = answers
        .get(answers_before)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no refresh answer went through the tap"))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Outcome {
        refreshes: refreshes as f64,
        served: served as f64,
        after_answer_ms: ms(last.saturating_duration_since(answer)),
        first_after_answer_ms: ms(first.unwrap_or(last).saturating_duration_since(answer)),
        total_ms: ms(last - start),
        refresh_ms: ms(answer.saturating_duration_since(start)),
    })
}

pub async fn run(stack: &Stack, table: &mut Table) -> anyhow::Result<()> {
    let o = stack.opts().clone();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(lk) = stack.latchkey(backend, table).await? else {
            continue;
        };
        let mut outcomes = Vec::new();
        for run in 0..o.runs {
            let r = storm(stack, &lk, o.storm_callers).await?;
            eprintln!(
                "  storm {}/{} on {}: {} refreshes, {} served, last served {:.1} ms after the refresh answer ({:.1} ms after the start)",
                run + 1, o.runs, backend.label(), r.refreshes, r.served, r.after_answer_ms, r.total_ms
            );
            outcomes.push(r);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let col = |f: fn(&Outcome) -> f64| outcomes.iter().map(f).collect::<Vec<_>>();
        let case = format!("{}, {} callers", backend.label(), o.storm_callers);
        table.push(
            Row::new(
                FIG,
                &case,
                "refreshes sent",
                Unit::Count,
                col(|r| r.refreshes),
            )
            .target(Target::Exactly(1.0)),
        );
        table.push(
            Row::new(FIG, &case, "callers served", Unit::Count, col(|r| r.served))
                .target(Target::Exactly(o.storm_callers as f64)),
        );
        table.push(
            Row::new(
                FIG,
                &case,
                "last served after refresh answer",
                Unit::Ms,
                col(|r| r.after_answer_ms),
            )
            .target(Target::Below(50.0)),
        );
        table.push(Row::new(
            FIG,
            &case,
            "first served after refresh answer",
            Unit::Ms,
            col(|r| r.first_after_answer_ms),
        ));
        table.push(
            Row::new(
                FIG,
                &case,
                "start to last served",
                Unit::Ms,
                col(|r| r.total_ms),
            )
            .reference("refresh answered", col(|r| r.refresh_ms)),
        );
    }
    Ok(())
}
