//! `GET /metrics`: the engine's counters and the fan-out latency in Prometheus' text format.

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse, web};
use mirror_model::SKIP_CATEGORIES;

use super::State;
use super::limits::Route;
use super::problem::Problem;

pub(super) async fn metrics(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Metrics)?;
    let stats = state.engine.stats();
    let mut out = String::with_capacity(2048);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    };
    counter("mirror_signals_total", "Signals fanned out.", stats.signals);
    counter("mirror_signals_refused_total", "Signals refused by the engine.", stats.signals_refused);
    counter("mirror_copies_total", "Copy orders sent to followers.", stats.copies);
    counter("mirror_closes_total", "Closing orders sent.", stats.closes);
    counter("mirror_modifies_total", "Stop loss / take profit changes sent.", stats.modifies);
    counter("mirror_fills_total", "Executions reported by brokers.", stats.fills);
    counter("mirror_rejects_total", "Orders refused by brokers.", stats.rejects);
    counter("mirror_breaches_total", "Risk guards tripped.", stats.breaches);
    let _ =
        writeln!(out, "# HELP mirror_skipped_total Copies skipped, by reason.\n# TYPE mirror_skipped_total counter");
    for category in SKIP_CATEGORIES {
        let _ = writeln!(out, "mirror_skipped_total{{reason=\"{}\"}} {}", category.name(), stats.skipped(category));
    }
    let latency = state.engine.audit_feed().map(|feed| feed.fanout_latency()).unwrap_or_default();
    let _ = writeln!(
        out,
        "# HELP mirror_fanout_latency_seconds Signal accepted to every follower order handed to its connector, last \
         minute.\n# TYPE mirror_fanout_latency_seconds gauge"
    );
    for (quantile, ns) in [("0.5", latency.p50_ns), ("0.99", latency.p99_ns)] {
        let _ = writeln!(out, "mirror_fanout_latency_seconds{{quantile=\"{quantile}\"}} {:.9}", ns as f64 / 1e9);
    }
    let _ = writeln!(
        out,
        "# HELP mirror_fanout_latency_samples Fan-outs measured in the last minute.\n# TYPE \
         mirror_fanout_latency_samples gauge\nmirror_fanout_latency_samples {}",
        latency.samples
    );
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out))
}
