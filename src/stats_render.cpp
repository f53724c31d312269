#include "nodelayd/stats_render.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace nodelayd {
namespace {

// ---------------------------------------------------------------------------------------
// Shared helpers

constexpr std::array<direction, 2> directions{direction::client_to_upstream,
                                              direction::upstream_to_client};
constexpr std::array<side, 2> sides{side::client, side::upstream};

std::size_t idx(direction d) {
    return static_cast<std::size_t>(d);
}
std::size_t idx(side s) {
    return static_cast<std::size_t>(s);
}

/// Bucket `i` of a snapshot; a default (empty) snapshot reads as all zeros.
std::uint64_t bucket_at(const histogram_snapshot& h, std::size_t i) {
    return i < h.buckets.size() ? h.buckets[i] : 0;
}

/// Samples in the overflow bucket and anything past it.
std::uint64_t overflow_count(const histogram_snapshot& h) {
    std::uint64_t n = 0;
    for (std::size_t i = latency_bucket_bounds().size(); i < h.buckets.size(); ++i)
        n += h.buckets[i];
    return n;
}

/// Bound `i` in whole nanoseconds (every bound is an integral number of ns).
std::uint64_t bound_ns(std::size_t i) {
    return static_cast<std::uint64_t>(std::llround(latency_bucket_bounds()[i] * 1e9));
}

/// Copies `s`, replacing each invalid UTF-8 sequence with U+FFFD (route names come from a
/// configuration file; the exposition format, JSON and HTML all require valid UTF-8).
std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        std::uint32_t min = 0;
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            min = 0x10000;
        }
        bool ok = len != 0 && i + len <= s.size();
        std::uint32_t cp = ok ? (c & (0x7F >> len)) : 0;
        for (std::size_t k = 1; ok && k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            ok = (cc & 0xC0) == 0x80;
            cp = (cp << 6) | (cc & 0x3F);
        }
        ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (ok) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

/// Shortest round-trip text of `v`, spelled like Go's strconv.FormatFloat(v, 'g', -1, 64)
/// (what the Prometheus Go client prints for `le`): exponent form below 1e-4,
/// plain decimals in between, exponent form again from 1e6; "+Inf", "-Inf", "NaN".
std::string format_float(double v) {
    if (std::isnan(v))
        return "NaN";
    if (std::isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == 0)
        return "0";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string sci(buf, r.ptr);
    const int exp = std::stoi(sci.substr(sci.find('e') + 1));
    if (exp < -4 || exp >= 6)
        return sci; // e.g. "1e-06", "1.25e-06"
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
    return {buf, r.ptr};
}

/// Exact decimal seconds of a nanosecond count, e.g. 1500 -> "0.0000015".
std::string seconds_from_ns(std::uint64_t ns) {
    std::string out = std::to_string(ns / 1'000'000'000);
    std::uint64_t frac = ns % 1'000'000'000;
    if (frac == 0)
        return out;
    char digits[10];
    std::snprintf(digits, sizeof digits, "%09llu", static_cast<unsigned long long>(frac));
    std::string f(digits);
    while (!f.empty() && f.back() == '0')
        f.pop_back();
    return out + "." + f;
}

// ---------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4

/// Label values: backslash, double quote and line feed are escaped.
std::string escape_label_value(std::string_view v) {
    std::string out;
    for (const char c : valid_utf8(v)) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out += c;
        }
    }
    return out;
}

/// HELP text: backslash and line feed are escaped.
std::string escape_help(std::string_view v) {
    std::string out;
    for (const char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

class prometheus_writer {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += escape_help(help);
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    void sample(std::string_view name, std::string_view labels, std::string_view value) {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }

    void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
        sample(name, labels, std::to_string(value));
    }

    /// _bucket (cumulative, ending with le="+Inf"), _sum in seconds and _count. The count is
    /// the sum of the buckets, so +Inf and _count always agree.
    void histogram(std::string_view name, const std::string& labels, const histogram_snapshot& h) {
        static const std::vector<std::string> le = [] {
            std::vector<std::string> v;
            for (const double b : latency_bucket_bounds())
                v.push_back(format_float(b));
            return v;
        }();
        const std::string bucket = std::string(name) + "_bucket";
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < le.size(); ++i) {
            cumulative += bucket_at(h, i);
            sample(bucket, labels + ",le=\"" + le[i] + "\"", cumulative);
        }
        cumulative += overflow_count(h);
        sample(bucket, labels + ",le=\"+Inf\"", cumulative);
        sample(std::string(name) + "_sum", labels, seconds_from_ns(h.sum_ns));
        sample(std::string(name) + "_count", labels, cumulative);
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string route_label(const route_snapshot& r) {
    return "route=\"" + escape_label_value(r.name) + "\"";
}

// ---------------------------------------------------------------------------------------
// JSON

using json = nlohmann::ordered_json;

/// A quantile in microseconds, rounded to whole nanoseconds (finer is noise).
double quantile_us(const histogram_snapshot& h, double q) {
    return std::round(h.quantile(q) * 1e9) / 1e3;
}

json histogram_json(const histogram_snapshot& h) {
    json buckets = json::array();
    const auto& bounds = latency_bucket_bounds();
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (const auto n = bucket_at(h, i); n != 0)
            buckets.push_back({{"le_us", static_cast<double>(bound_ns(i)) / 1e3}, {"count", n}});
    }
    // The overflow bucket has no finite bound: its le_us is null (+Inf).
    if (const auto n = overflow_count(h); n != 0)
        buckets.push_back({{"le_us", nullptr}, {"count", n}});
    return {{"count", h.count},
            {"sum_us", static_cast<double>(h.sum_ns) / 1e3},
            {"p50_us", quantile_us(h, 0.5)},
            {"p90_us", quantile_us(h, 0.9)},
            {"p99_us", quantile_us(h, 0.99)},
            {"p999_us", quantile_us(h, 0.999)},
            {"max_us", static_cast<double>(h.max_ns) / 1e3},
            {"buckets", std::move(buckets)}};
}

template <class T> json per_direction(const std::array<T, 2>& v) {
    json j = json::object();
    for (const auto d : directions)
        j[to_label(d)] = v[idx(d)];
    return j;
}

template <class T> json per_side(const std::array<T, 2>& v) {
    json j = json::object();
    for (const auto s : sides)
        j[to_label(s)] = v[idx(s)];
    return j;
}

json route_json(const route_snapshot& r) {
    json added = json::object();
    for (const auto d : directions)
        added[to_label(d)] = histogram_json(r.added_latency[idx(d)]);
    json tcp = json::object();
    for (const auto s : sides)
        tcp[to_label(s)] = {{"rtt", histogram_json(r.tcp_rtt[idx(s)])},
                            {"segments_out", r.tcp_segments_out_total[idx(s)]},
                            {"retransmits", r.tcp_retransmits_total[idx(s)]}};
    return {{"name", valid_utf8(r.name)},
            {"connections",
             {{"active", r.connections_active},
              {"total", r.connections_total},
              {"refused", r.refused_total}}},
            {"upstream_connect_failures", r.upstream_connect_failures_total},
            {"bytes", per_direction(r.bytes_total)},
            {"writes", per_side(r.writes_total)},
            {"chunks", per_side(r.chunks_total)},
            {"peer_stalls", per_side(r.peer_stalls_total)},
            {"added_latency", std::move(added)},
            {"upstream_connect", histogram_json(r.upstream_connect)},
            {"tcp", std::move(tcp)}};
}

// ---------------------------------------------------------------------------------------
// HTML

std::string escape_html(std::string_view v) {
    std::string out;
    for (const char c : valid_utf8(v)) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

/// "%.3g" without exponent notation (values here stay below 1000 in their unit).
std::string three_digits(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    if (std::string_view(buf).find('e') != std::string_view::npos)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
}

/// A duration for people: "0", "850ns", "112µs", "1.25ms", "2.5s".
std::string human_seconds(double s) {
    if (!(s > 0))
        return "0";
    if (s < 999.5e-9)
        return three_digits(s * 1e9) + "ns";
    if (s < 999.5e-6)
        return three_digits(s * 1e6) + "µs";
    if (s < 999.5e-3)
        return three_digits(s * 1e3) + "ms";
    return three_digits(s) + "s";
}

/// A latency quantile, or an en dash without samples.
std::string quantile_cell(const histogram_snapshot& h, double q) {
    return h.count == 0 ? "–" : human_seconds(h.quantile(q));
}

/// A bucket bound as an axis or tooltip label: 1000 -> "1µs", 3150000 -> "3.15ms".
std::string bound_label(std::uint64_t ns) {
    if (ns < 1'000'000)
        return format_float(static_cast<double>(ns) / 1e3) + "µs";
    if (ns < 1'000'000'000)
        return format_float(static_cast<double>(ns) / 1e6) + "ms";
    return format_float(static_cast<double>(ns) / 1e9) + "s";
}

std::string human_bytes(std::uint64_t n) {
    static constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    std::string exact = std::to_string(n);
    if (n < 1024)
        return exact;
    double v = static_cast<double>(n);
    std::size_t u = 0;
    v /= 1024;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return exact + " <small>(" + buf + " " + units[u] + ")</small>";
}

std::string human_uptime(double seconds) {
    if (!(seconds > 0))
        return "0s";
    auto s = static_cast<std::uint64_t>(seconds);
    const std::uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60;
    s %= 60;
    std::string out;
    if (d)
        out += std::to_string(d) + "d ";
    if (d || h)
        out += std::to_string(h) + "h ";
    if (d || h || m)
        out += std::to_string(m) + "m ";
    return out + std::to_string(s) + "s";
}

std::string ratio_cell(std::uint64_t chunks, std::uint64_t writes) {
    if (writes == 0)
        return "–";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f",
                  static_cast<double>(chunks) / static_cast<double>(writes));
    return buf;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

/// Bar chart of both directions' added latency: one slot per bucket (the R10 buckets are
/// evenly log-spaced, so equal slots make a log axis), the +Inf bucket last.
std::string latency_svg(const route_snapshot& r) {
    const std::size_t bounds = latency_bucket_bounds().size();
    const std::size_t slots = bounds + 1;
    constexpr double slot_w = 10, bar_w = 4.5, left = 56, right = 16, top = 30, plot_h = 150,
                     bottom = 36;
    const double plot_w = slot_w * static_cast<double>(slots);
    const double width = left + plot_w + right, height = top + plot_h + bottom;
    const double base = top + plot_h;

    std::array<std::vector<std::uint64_t>, 2> counts;
    std::uint64_t peak = 0, total = 0;
    for (const auto d : directions) {
        auto& c = counts[idx(d)];
        for (std::size_t i = 0; i < bounds; ++i)
            c.push_back(bucket_at(r.added_latency[idx(d)], i));
        c.push_back(overflow_count(r.added_latency[idx(d)]));
        for (const auto n : c) {
            peak = std::max(peak, n);
            total += n;
        }
    }

    std::string o;
    o += "<svg class=\"chart\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" width=\"" +
         num(width) + "\" height=\"" + num(height) +
         "\" role=\"img\" aria-label=\"Added latency distribution of route " + escape_html(r.name) +
         "\">\n";
    // Legend.
    o += "<rect class=\"c2u\" x=\"" + num(left) + "\" y=\"8\" width=\"10\" height=\"10\"/>";
    o += "<text x=\"" + num(left + 14) + "\" y=\"17\">client → upstream</text>";
    o += "<rect class=\"u2c\" x=\"" + num(left + 150) + "\" y=\"8\" width=\"10\" height=\"10\"/>";
    o += "<text x=\"" + num(left + 164) + "\" y=\"17\">upstream → client</text>\n";
    // Axes and the top gridline with the peak count.
    o += "<line class=\"axis\" x1=\"" + num(left) + "\" y1=\"" + num(base) + "\" x2=\"" +
         num(left + plot_w) + "\" y2=\"" + num(base) + "\"/>";
    o += "<line class=\"axis\" x1=\"" + num(left) + "\" y1=\"" + num(top) + "\" x2=\"" + num(left) +
         "\" y2=\"" + num(base) + "\"/>";
    o += "<text class=\"y\" x=\"" + num(left - 6) + "\" y=\"" + num(base + 4) + "\">0</text>";
    if (peak > 0) {
        o += "<line class=\"grid\" x1=\"" + num(left) + "\" y1=\"" + num(top) + "\" x2=\"" +
             num(left + plot_w) + "\" y2=\"" + num(top) + "\"/>";
        o += "<text class=\"y\" x=\"" + num(left - 6) + "\" y=\"" + num(top + 4) + "\">" +
             std::to_string(peak) + "</text>";
    }
    o += '\n';
    // Decade ticks at the upper edge of buckets 0, 10, ..., 70: 1µs ... 10s.
    for (std::size_t i = 0; i < bounds; i += 10) {
        const double x = left + slot_w * static_cast<double>(i + 1);
        o += "<line class=\"tick\" x1=\"" + num(x) + "\" y1=\"" + num(base) + "\" x2=\"" + num(x) +
             "\" y2=\"" + num(base + 5) + "\"/>";
        o += "<text class=\"x\" x=\"" + num(x) + "\" y=\"" + num(base + 18) + "\">" +
             bound_label(bound_ns(i)) + "</text>";
    }
    o += "<text class=\"x\" x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(base + 33) +
         "\">added latency (bucket upper bound, log scale)</text>\n";

    if (total == 0) {
        o += "<text class=\"empty\" x=\"" + num(left + plot_w / 2) + "\" y=\"" +
             num(top + plot_h / 2) + "\">no samples yet</text>\n";
    } else {
        for (const auto d : directions) {
            const auto& c = counts[idx(d)];
            const char* cls = d == direction::client_to_upstream ? "c2u" : "u2c";
            const char* what =
                d == direction::client_to_upstream ? "client → upstream" : "upstream → client";
            const double offset = d == direction::client_to_upstream ? 0.5 : 0.5 + bar_w;
            for (std::size_t i = 0; i < slots; ++i) {
                if (c[i] == 0)
                    continue;
                // Proportional heights; a non-empty bucket stays visible (at least 1 unit).
                const double h =
                    std::max(1.0, plot_h * static_cast<double>(c[i]) / static_cast<double>(peak));
                const double x = left + slot_w * static_cast<double>(i) + offset;
                const std::string range = i < bounds ? "≤ " + bound_label(bound_ns(i))
                                                     : "> " + bound_label(bound_ns(bounds - 1));
                o += "<rect class=\"" + std::string(cls) + "\" x=\"" + num(x) + "\" y=\"" +
                     num(base - h) + "\" width=\"" + num(bar_w) + "\" height=\"" + num(h) +
                     "\"><title>" + what + ", " + range + ": " + std::to_string(c[i]) +
                     "</title></rect>";
            }
            o += '\n';
        }
    }
    o += "</svg>\n";
    return o;
}

constexpr std::string_view html_style = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#f6f7f9}
h1{font-size:1.5em;margin:0}
.meta{color:#666;margin:.2em 0 1.5em}
section{background:#fff;border:1px solid #dcdfe4;border-radius:6px;padding:1em 1.25em;margin:0 0 1.5em}
h2{font-size:1.2em;margin:0 0 .7em}
.tables{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
table{border-collapse:collapse}
caption{text-align:left;font-weight:600;padding-bottom:.3em}
th,td{padding:.25em .75em;border-bottom:1px solid #eceef1;text-align:right;white-space:nowrap}
th[scope=row]{text-align:left;font-weight:normal;color:#444}
thead th{background:#f1f3f5;font-weight:600}
small{color:#777}
.chart{display:block;max-width:100%;height:auto;margin-top:1em}
.chart text{font-size:11px;fill:#333}
.chart text.x{text-anchor:middle}
.chart text.y{text-anchor:end}
.chart text.empty{text-anchor:middle;font-size:15px;fill:#888}
.chart .axis{stroke:#555;stroke-width:1}
.chart .tick{stroke:#555}
.chart .grid{stroke:#ccc;stroke-dasharray:3 3}
.c2u{fill:#2f6fb3}
.u2c{fill:#e0892b}
.none{color:#777}
)";

std::string row(std::string_view head, const std::string& a, const std::string& b) {
    return "<tr><th scope=\"row\">" + std::string(head) + "</th><td>" + a + "</td><td>" + b +
           "</td></tr>\n";
}

std::string route_html(const route_snapshot& r) {
    const auto c2u = idx(direction::client_to_upstream), u2c = idx(direction::upstream_to_client);
    const auto cli = idx(side::client), up = idx(side::upstream);
    std::string o;
    o += "<section>\n<h2>route " + escape_html(r.name) + "</h2>\n<div class=\"tables\">\n";

    o += "<table>\n<caption>Connections</caption>\n";
    o += "<tr><th scope=\"row\">active</th><td>" + std::to_string(r.connections_active) +
         "</td></tr>\n";
    o += "<tr><th scope=\"row\">total</th><td>" + std::to_string(r.connections_total) +
         "</td></tr>\n";
    o +=
        "<tr><th scope=\"row\">refused</th><td>" + std::to_string(r.refused_total) + "</td></tr>\n";
    o += "<tr><th scope=\"row\">upstream connect failures</th><td>" +
         std::to_string(r.upstream_connect_failures_total) + "</td></tr>\n";
    o += "<tr><th scope=\"row\">upstream connect p50</th><td>" +
         quantile_cell(r.upstream_connect, 0.5) + "</td></tr>\n";
    o += "</table>\n";

    // Direction client -> upstream writes to the upstream side, and vice versa.
    o += "<table>\n<caption>Traffic</caption>\n<thead><tr><th></th><th>client → "
         "upstream</th><th>upstream → client</th></tr></thead>\n";
    o += row("bytes", human_bytes(r.bytes_total[c2u]), human_bytes(r.bytes_total[u2c]));
    o += row("writes", std::to_string(r.writes_total[up]), std::to_string(r.writes_total[cli]));
    o += row("chunks", std::to_string(r.chunks_total[up]), std::to_string(r.chunks_total[cli]));
    o += row("chunks per write (coalescing)", ratio_cell(r.chunks_total[up], r.writes_total[up]),
             ratio_cell(r.chunks_total[cli], r.writes_total[cli]));
    o += row("added latency p50", quantile_cell(r.added_latency[c2u], 0.5),
             quantile_cell(r.added_latency[u2c], 0.5));
    o += row("added latency p99", quantile_cell(r.added_latency[c2u], 0.99),
             quantile_cell(r.added_latency[u2c], 0.99));
    o += row("added latency max",
             r.added_latency[c2u].count
                 ? human_seconds(static_cast<double>(r.added_latency[c2u].max_ns) / 1e9)
                 : "–",
             r.added_latency[u2c].count
                 ? human_seconds(static_cast<double>(r.added_latency[u2c].max_ns) / 1e9)
                 : "–");
    o += "</table>\n";

    o += "<table>\n<caption>Peers</caption>\n<thead><tr><th></th><th>client</th><th>upstream</"
         "th></tr></thead>\n";
    o += row("peer stalls (Nagle / delayed ACK)", std::to_string(r.peer_stalls_total[cli]),
             std::to_string(r.peer_stalls_total[up]));
    o += row("TCP RTT p50", quantile_cell(r.tcp_rtt[cli], 0.5), quantile_cell(r.tcp_rtt[up], 0.5));
    o += row("TCP segments out", std::to_string(r.tcp_segments_out_total[cli]),
             std::to_string(r.tcp_segments_out_total[up]));
    o += row("TCP retransmits", std::to_string(r.tcp_retransmits_total[cli]),
             std::to_string(r.tcp_retransmits_total[up]));
    o += "</table>\n</div>\n";

    o += latency_svg(r);
    o += "</section>\n";
    return o;
}

} // namespace

std::string render_prometheus(const stats_snapshot& s) {
    prometheus_writer w;
    std::vector<std::string> route_labels;
    for (const auto& r : s.routes)
        route_labels.push_back(route_label(r));

    auto per_route = [&](std::string_view name, std::string_view type, std::string_view help,
                         auto value) {
        w.family(name, type, help);
        for (std::size_t i = 0; i < s.routes.size(); ++i)
            w.sample(name, route_labels[i], value(s.routes[i]));
    };
    auto direction_counter = [&](std::string_view name, std::string_view help, const auto& member) {
        w.family(name, "counter", help);
        for (std::size_t i = 0; i < s.routes.size(); ++i)
            for (const auto d : directions)
                w.sample(name, route_labels[i] + ",direction=\"" + to_label(d) + "\"",
                         (s.routes[i].*member)[idx(d)]);
    };
    auto side_counter = [&](std::string_view name, std::string_view help, const auto& member) {
        w.family(name, "counter", help);
        for (std::size_t i = 0; i < s.routes.size(); ++i)
            for (const auto sd : sides)
                w.sample(name, route_labels[i] + ",side=\"" + to_label(sd) + "\"",
                         (s.routes[i].*member)[idx(sd)]);
    };

    per_route("nodelayd_connections_total", "counter",
              "Connections accepted and relayed (refused ones excluded).",
              [](const route_snapshot& r) { return r.connections_total; });
    per_route("nodelayd_connections_active", "gauge", "Sessions open now.",
              [](const route_snapshot& r) { return r.connections_active; });
    per_route("nodelayd_connections_refused_total", "counter",
              "Connections refused because max-connections was reached.",
              [](const route_snapshot& r) { return r.refused_total; });
    per_route("nodelayd_upstream_connect_failures_total", "counter",
              "Failed connect attempts to upstream servers (each server tried counts once).",
              [](const route_snapshot& r) { return r.upstream_connect_failures_total; });
    direction_counter("nodelayd_bytes_total", "Bytes relayed, by direction.",
                      &route_snapshot::bytes_total);

    w.family("nodelayd_added_latency_seconds", "histogram",
             "Time nodelayd held forwarded bytes: from the kernel receive timestamp of a "
             "chunk to the completion of the write handing its last byte to the other socket.");
    for (std::size_t i = 0; i < s.routes.size(); ++i)
        for (const auto d : directions)
            w.histogram("nodelayd_added_latency_seconds",
                        route_labels[i] + ",direction=\"" + to_label(d) + "\"",
                        s.routes[i].added_latency[idx(d)]);

    w.family("nodelayd_upstream_connect_seconds", "histogram",
             "Time to connect to an upstream server (successful attempts).");
    for (std::size_t i = 0; i < s.routes.size(); ++i)
        w.histogram("nodelayd_upstream_connect_seconds", route_labels[i],
                    s.routes[i].upstream_connect);

    side_counter("nodelayd_writes_total", "Gathered writes issued, by the side written to.",
                 &route_snapshot::writes_total);
    side_counter("nodelayd_chunks_total",
                 "Chunks (reads) carried by those writes, by the side written to.",
                 &route_snapshot::chunks_total);
    side_counter("nodelayd_peer_stalls_total",
                 "Suspected Nagle/delayed-ACK stalls of that side's peer.",
                 &route_snapshot::peer_stalls_total);

    w.family("nodelayd_tcp_rtt_seconds", "histogram",
             "Smoothed RTT from TCP_INFO when a connection closes, by side.");
    for (std::size_t i = 0; i < s.routes.size(); ++i)
        for (const auto sd : sides)
            w.histogram("nodelayd_tcp_rtt_seconds",
                        route_labels[i] + ",side=\"" + to_label(sd) + "\"",
                        s.routes[i].tcp_rtt[idx(sd)]);

    side_counter("nodelayd_tcp_segments_out_total",
                 "TCP segments sent (tcpi_segs_out at close, summed), by side.",
                 &route_snapshot::tcp_segments_out_total);
    side_counter("nodelayd_tcp_retransmits_total",
                 "TCP retransmissions (tcpi_total_retrans at close, summed), by side.",
                 &route_snapshot::tcp_retransmits_total);

    w.family("nodelayd_uptime_seconds", "gauge", "Seconds since nodelayd started.");
    w.sample("nodelayd_uptime_seconds", "", format_float(s.uptime_seconds));
    w.family("nodelayd_build_info", "gauge", "nodelayd build information; always 1.");
    w.sample("nodelayd_build_info", "version=\"" + escape_label_value(s.version) + "\"", "1");
    return w.take();
}

std::string render_json(const stats_snapshot& s) {
    json routes = json::array();
    for (const auto& r : s.routes)
        routes.push_back(route_json(r));
    const json doc = {{"version", valid_utf8(s.version)},
                      {"uptime_seconds", std::isfinite(s.uptime_seconds) ? s.uptime_seconds : 0.0},
                      {"routes", std::move(routes)}};
    return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string render_html(const stats_snapshot& s) {
    std::string o;
    o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"refresh\" content=\"5\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>nodelayd</title>\n<style>";
    o += html_style;
    o += "</style>\n</head>\n<body>\n<h1>nodelayd</h1>\n<p class=\"meta\">version " +
         escape_html(s.version) + " · up " + human_uptime(s.uptime_seconds) +
         " · refreshes every 5 s · machine-readable: <code>/metrics</code>, "
         "<code>/stats</code></p>\n";
    if (s.routes.empty())
        o += "<p class=\"none\">No routes configured.</p>\n";
    for (const auto& r : s.routes)
        o += route_html(r);
    o += "</body>\n</html>\n";
    return o;
}

} // namespace nodelayd
