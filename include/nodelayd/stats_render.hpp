#pragma once
// Pure renderers of a stats snapshot: Prometheus text exposition, JSON, and an HTML page.

#include "nodelayd/stats.hpp"

#include <string>

namespace nodelayd {

/// Prometheus text exposition format 0.0.4 (passes `promtool check metrics`).
std::string render_prometheus(const stats_snapshot& s);

/// The same data as JSON; every histogram as {count, sum_us, p50_us, p90_us, p99_us,
/// p999_us, max_us, buckets:[{le_us, count}]}.
std::string render_json(const stats_snapshot& s);

/// A self-contained HTML page (no external assets): per-route traffic and the added-latency
/// distribution as inline SVG.
std::string render_html(const stats_snapshot& s);

} // namespace nodelayd
