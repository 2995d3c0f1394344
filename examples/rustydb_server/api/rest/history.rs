//! `GET /api/v1/memory/history` (the ring as columns) and
//! `GET /api/v1/memory/history/stream` (new samples as Server-Sent Events,
//! resumed after `Last-Event-ID`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::StatusCode;
use hyper::body::{Bytes, Frame};
use serde::Serialize;
use utoipa::ToSchema;

use crate::server::api::auth::Role;
use crate::server::api::http::{self, I64_MAX, Resp};
use crate::server::api::problem::Problem;
use crate::server::api::routes::Req;
use crate::server::observe::history::{self, Columns, RingMemory, Sample, Sampling};
use crate::server::state::App;

/// The pressure thresholds, percent of the budget.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThresholdPercents {
    /// Warning.
    pub warning: f64,
    /// Critical.
    pub critical: f64,
    /// Emergency.
    pub emergency: f64,
}

/// `GET /api/v1/memory/history`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryResponse {
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// Samples the ring keeps (`--history-seconds`).
    pub capacity: u64,
    /// Samples returned.
    pub count: u64,
    /// The newest sequence number (0 before the first sample).
    pub last_seq: u64,
    /// The memory budget the pressure percentages are of.
    pub budget_bytes: u64,
    /// Pressure thresholds.
    pub thresholds: ThresholdPercents,
    /// The ring's own memory.
    pub memory: RingMemory,
    /// What sampling costs.
    pub sampling: Sampling,
    /// The caller's role: the page lists the debugger's sites (admin only)
    /// for an admin and says so to the others.
    pub role: Role,
    /// The samples, oldest first, one array per field.
    pub columns: Columns,
}

/// The history ring: one sample a second (memory, pressure and reclaimers,
/// caches, buffer pools, load), oldest first, as columns.
#[utoipa::path(get, path = "/api/v1/memory/history", tag = "memory", security(("bearer" = [])),
    params(("after" = Option<u64>, Query, minimum = 0, maximum = 9_223_372_036_854_775_807_i64, description = "Only samples with a larger `seq`"),
           ("limit" = Option<u64>, Query, minimum = 1, maximum = 1_000_000, description = "At most this many, the newest (default: all)")),
    responses((status = 200, body = HistoryResponse), (status = 400, description = "A parameter out of its range")))]
pub async fn history(req: Req) -> Result<Resp, Problem> {
    let after = req.query.int("after", 0, 0..=I64_MAX)?;
    let limit = req.query.int("limit", 1_000_000, 1..=1_000_000)? as usize;
    let a = &req.app;
    let h = &a.history;
    let pm = a.mm.pressure();
    let t = pm.thresholds();
    let columns = h.columns(after, limit);
    Ok(http::ok(&HistoryResponse {
        interval_ms: history::INTERVAL.as_millis() as u64,
        capacity: h.capacity as u64,
        count: columns.len() as u64,
        last_seq: h.last_seq(),
        budget_bytes: pm.budget(),
        thresholds: ThresholdPercents {
            warning: t.warning * 100.0,
            critical: t.critical * 100.0,
            emergency: t.emergency * 100.0,
        },
        memory: h.memory(),
        sampling: h.sampling(),
        role: req.who()?.role,
        columns,
    }))
}

/// The `Last-Event-ID` pattern: a sequence number.
pub const EVENT_ID_PATTERN: &str = "^(0|[1-9][0-9]{0,17})$";

fn event_id(req: &Req) -> Result<Option<u64>, Problem> {
    let Some(v) = req.headers.get("last-event-id") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    let ok = s == "0" || (!s.is_empty() && s.len() <= 18 && !s.starts_with('0'));
    match s.parse::<u64>() {
        Ok(n) if ok && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(Problem::bad_request(format!(
            "Last-Event-ID must be a sequence number (pattern {EVENT_ID_PATTERN})"
        ))
        .with("parameter", "Last-Event-ID")),
    }
}

/// Samples as SSE events (`id`, `event: sample`, `data`), after a `reset`
/// event when the stream starts over.
fn encode(samples: &[Sample], reset: bool, first: bool) -> Bytes {
    let mut out = Vec::with_capacity(samples.len() * 900 + 64);
    if first {
        out.extend_from_slice(b"retry: 1000\n\n");
    }
    if reset {
        out.extend_from_slice(b"event: reset\ndata: {}\n\n");
    }
    for s in samples {
        out.extend_from_slice(format!("id: {}\nevent: sample\ndata: ", s.seq).as_bytes());
        if serde_json::to_writer(&mut out, s).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    }
    Bytes::from(out)
}

/// Where a stream starts: after `last` (the client's `Last-Event-ID`), or
/// with the newest sample. An id beyond the newest comes from another run of
/// the server: the stream says `reset` and starts with the newest sample.
fn start(h: &history::History, last: Option<u64>) -> (u64, bool) {
    let newest = h.last_seq();
    match last {
        Some(n) if n <= newest => (n, false),
        Some(_) => (newest.saturating_sub(1), true),
        None => (newest.saturating_sub(1), false),
    }
}

struct Stream {
    app: Arc<App>,
    rx: tokio::sync::watch::Receiver<u64>,
    after: u64,
    reset: bool,
    first: bool,
}

async fn next(mut s: Stream) -> Option<(Result<Frame<Bytes>, Infallible>, Stream)> {
    loop {
        if s.app.shutting_down.load(Ordering::Relaxed) {
            return None;
        }
        let batch = s.app.history.after(s.after, s.app.history.capacity);
        if !batch.is_empty() || s.reset {
            let bytes = encode(&batch, s.reset, s.first);
            if let Some(last) = batch.last() {
                s.after = last.seq;
            }
            s.reset = false;
            s.first = false;
            return Some((Ok(Frame::data(bytes)), s));
        }
        // A new sample wakes the stream; the timer lets it see a shutdown.
        tokio::select! {
            r = s.rx.changed() => if r.is_err() { return None },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// New samples as Server-Sent Events (`text/event-stream`): each event's id
/// is the sample's `seq`, so a client that reconnects with `Last-Event-ID`
/// gets exactly the samples it missed (those the ring still holds). Without
/// `Last-Event-ID` the stream starts with the newest sample. Without a
/// socket (fuzzing) it answers what it has and ends.
#[utoipa::path(get, path = "/api/v1/memory/history/stream", tag = "memory", security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, pattern = "^(0|[1-9][0-9]{0,17})$",
            description = "The last `seq` the client has: the stream resumes after it")),
    responses((status = 200, description = "`event: sample` per sample (`id` = `seq`, `data` = a Sample as JSON); `event: reset` when the id came from another run of the server",
               content_type = "text/event-stream", body = String),
              (status = 400, description = "`Last-Event-ID` is not a sequence number")))]
pub async fn stream(req: Req) -> Result<Resp, Problem> {
    let last = event_id(&req)?;
    let h = &req.app.history;
    let (after, reset) = start(h, last);
    let mut r = if req.conn.is_none() {
        let batch = h.after(after, h.capacity);
        http::bytes_response(
            StatusCode::OK,
            "text/event-stream",
            encode(&batch, reset, true).to_vec(),
        )
    } else {
        let s = Stream {
            app: req.app.clone(),
            rx: h.subscribe(),
            after,
            reset,
            first: true,
        };
        let body = StreamBody::new(futures_util::stream::unfold(s, next)).boxed_unsync();
        http::stream_response(StatusCode::OK, "text/event-stream", body)
    };
    r.headers_mut().insert(
        "x-accel-buffering",
        hyper::header::HeaderValue::from_static("no"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_sequence_number() {
        let s = [
            Sample {
                seq: 7,
                ..Sample::default()
            },
            Sample {
                seq: 8,
                ..Sample::default()
            },
        ];
        let t = String::from_utf8(encode(&s, true, true).to_vec()).unwrap();
        assert!(
            t.starts_with("retry: 1000\n\nevent: reset\ndata: {}\n\n"),
            "{t}"
        );
        assert!(t.contains("id: 7\nevent: sample\ndata: {\"seq\":7,"), "{t}");
        assert!(t.ends_with("}\n\n"));
        assert_eq!(t.matches("event: sample").count(), 2);
    }

    #[test]
    fn a_stream_starts_after_the_last_event_or_with_the_newest() {
        let h = history::History::new(10).unwrap();
        assert_eq!(start(&h, None), (0, false));
        for _ in 0..5 {
            h.push(Sample::default());
        }
        assert_eq!(start(&h, None), (4, false), "the newest sample first");
        assert_eq!(start(&h, Some(2)), (2, false), "resume after 2");
        assert_eq!(start(&h, Some(5)), (5, false), "up to date: wait");
        assert_eq!(start(&h, Some(900)), (4, true), "another run: reset");
    }
}
