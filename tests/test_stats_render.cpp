#include "nodelayd/stats_render.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace nodelayd;

namespace {

constexpr std::size_t n_bounds = 71;

std::size_t count_of(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1))
        ++n;
    return n;
}

/// Two routes recorded by two "threads", with non-empty histograms.
stats_snapshot sample_snapshot(const std::string& second_name = "a\"b\\c") {
    route_stats t1, t2;
    t1.connections_total.add(10);
    t2.connections_total.add(5);
    t1.refused_total.add(2);
    t2.upstream_connect_failures_total.add(1);
    t1.bytes_total[0].add(12'000);
    t2.bytes_total[0].add(345);
    t1.bytes_total[1].add(5'000'000);
    t1.writes_total[0].add(40);
    t1.chunks_total[0].add(100);
    t1.writes_total[1].add(50);
    t1.chunks_total[1].add(60);
    t1.peer_stalls_total[0].add(7);
    t2.peer_stalls_total[1].add(1);
    t1.tcp_segments_out_total[0].add(1000);
    t1.tcp_segments_out_total[1].add(900);
    t2.tcp_retransmits_total[1].add(4);
    t1.added_latency[0].record_ns(1'500);
    t1.added_latency[0].record_ns(2'500);
    t2.added_latency[0].record_ns(40'000);
    t2.added_latency[0].record_ns(300'000'000);
    t2.added_latency[0].record_ns(12'000'000'000); // > 10 s: +Inf bucket
    t1.added_latency[1].record_ns(8'000);
    t1.upstream_connect.record_ns(250'000);
    t1.tcp_rtt[0].record_ns(30'000);
    t2.tcp_rtt[1].record_ns(1'200'000);

    stats_snapshot s;
    s.version = "0.1.0";
    s.uptime_seconds = 3725.5;
    route_snapshot imap;
    imap.name = "imap";
    imap.connections_active = 3;
    imap.add(t1);
    imap.add(t2);
    s.routes.push_back(imap);
    route_snapshot other;
    other.name = second_name;
    other.connections_total = 1;
    s.routes.push_back(other);
    return s;
}

struct sample_line {
    std::string name, labels, value;
};

struct exposition {
    std::map<std::string, int> help, type;
    std::map<std::string, std::string> type_of;
    std::vector<sample_line> samples;
    std::vector<std::string> family_of_sample; // the family declared last before each sample
};

exposition parse(const std::string& text) {
    exposition e;
    std::istringstream in(text);
    std::string line, current;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0) {
            const auto name = line.substr(7, line.find(' ', 7) - 7);
            ++e.help[name];
            current = name;
        } else if (line.rfind("# TYPE ", 0) == 0) {
            const auto rest = line.substr(7);
            const auto name = rest.substr(0, rest.find(' '));
            ++e.type[name];
            e.type_of[name] = rest.substr(rest.find(' ') + 1);
            EXPECT_EQ(name, current) << "TYPE without its HELP just before";
        } else {
            EXPECT_FALSE(line.empty());
            sample_line s;
            const auto brace = line.find('{');
            const auto space = line.rfind(' ');
            if (brace != std::string::npos && brace < space) {
                s.name = line.substr(0, brace);
                s.labels = line.substr(brace + 1, line.rfind('}') - brace - 1);
            } else {
                s.name = line.substr(0, space);
            }
            s.value = line.substr(space + 1);
            e.samples.push_back(s);
            e.family_of_sample.push_back(current);
        }
    }
    return e;
}

std::string strip_suffix(const std::string& name, const std::string& type) {
    if (type != "histogram")
        return name;
    for (const std::string suffix : {"_bucket", "_sum", "_count"})
        if (name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
            return name.substr(0, name.size() - suffix.size());
    return name;
}

const sample_line* find_sample(const exposition& e, const std::string& name,
                               const std::string& labels) {
    for (const auto& s : e.samples)
        if (s.name == name && s.labels == labels)
            return &s;
    return nullptr;
}

} // namespace

TEST(stats_prometheus, every_family_once_with_help_and_type) {
    const auto e = parse(render_prometheus(sample_snapshot()));
    const std::map<std::string, std::string> expected{
        {"nodelayd_connections_total", "counter"},
        {"nodelayd_connections_active", "gauge"},
        {"nodelayd_connections_refused_total", "counter"},
        {"nodelayd_upstream_connect_failures_total", "counter"},
        {"nodelayd_bytes_total", "counter"},
        {"nodelayd_added_latency_seconds", "histogram"},
        {"nodelayd_upstream_connect_seconds", "histogram"},
        {"nodelayd_writes_total", "counter"},
        {"nodelayd_chunks_total", "counter"},
        {"nodelayd_peer_stalls_total", "counter"},
        {"nodelayd_tcp_rtt_seconds", "histogram"},
        {"nodelayd_tcp_segments_out_total", "counter"},
        {"nodelayd_tcp_retransmits_total", "counter"},
        {"nodelayd_uptime_seconds", "gauge"},
        {"nodelayd_build_info", "gauge"},
    };
    EXPECT_EQ(e.type_of, expected);
    for (const auto& [name, n] : e.help)
        EXPECT_EQ(n, 1) << name;
    for (const auto& [name, n] : e.type)
        EXPECT_EQ(n, 1) << name;
    for (const auto& [name, type] : e.type_of)
        if (type == "counter") {
            EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
        }

    // Each sample belongs to the family declared just before it (families are contiguous),
    // and no series appears twice.
    std::set<std::string> series;
    for (std::size_t i = 0; i < e.samples.size(); ++i) {
        const auto& s = e.samples[i];
        const auto& family = e.family_of_sample[i];
        EXPECT_EQ(strip_suffix(s.name, e.type_of.at(family)), family) << s.name;
        EXPECT_TRUE(series.insert(s.name + "{" + s.labels + "}").second)
            << "duplicate " << s.name << "{" << s.labels << "}";
        if (family != "nodelayd_uptime_seconds" && family != "nodelayd_build_info") {
            EXPECT_EQ(s.labels.rfind("route=\"", 0), 0u) << s.name;
        }
    }
}

TEST(stats_prometheus, values) {
    const auto e = parse(render_prometheus(sample_snapshot()));
    auto value = [&](const std::string& name, const std::string& labels) {
        const auto* s = find_sample(e, name, labels);
        return s ? s->value : std::string("<missing>");
    };
    EXPECT_EQ(value("nodelayd_connections_total", "route=\"imap\""), "15");
    EXPECT_EQ(value("nodelayd_connections_active", "route=\"imap\""), "3");
    EXPECT_EQ(value("nodelayd_connections_refused_total", "route=\"imap\""), "2");
    EXPECT_EQ(value("nodelayd_upstream_connect_failures_total", "route=\"imap\""), "1");
    EXPECT_EQ(value("nodelayd_bytes_total", "route=\"imap\",direction=\"client_to_upstream\""),
              "12345");
    EXPECT_EQ(value("nodelayd_bytes_total", "route=\"imap\",direction=\"upstream_to_client\""),
              "5000000");
    EXPECT_EQ(value("nodelayd_writes_total", "route=\"imap\",side=\"client\""), "40");
    EXPECT_EQ(value("nodelayd_chunks_total", "route=\"imap\",side=\"upstream\""), "60");
    EXPECT_EQ(value("nodelayd_peer_stalls_total", "route=\"imap\",side=\"client\""), "7");
    EXPECT_EQ(value("nodelayd_tcp_segments_out_total", "route=\"imap\",side=\"upstream\""), "900");
    EXPECT_EQ(value("nodelayd_tcp_retransmits_total", "route=\"imap\",side=\"upstream\""), "4");
    EXPECT_EQ(value("nodelayd_connections_total", "route=\"a\\\"b\\\\c\""), "1");
    EXPECT_EQ(value("nodelayd_uptime_seconds", ""), "3725.5");
    EXPECT_EQ(value("nodelayd_build_info", "version=\"0.1.0\""), "1");
    // _sum in exact decimal seconds: 1.5 µs + 2.5 µs + 40 µs + 0.3 s + 12 s.
    EXPECT_EQ(value("nodelayd_added_latency_seconds_sum",
                    "route=\"imap\",direction=\"client_to_upstream\""),
              "12.300044");
    EXPECT_EQ(value("nodelayd_added_latency_seconds_count",
                    "route=\"imap\",direction=\"client_to_upstream\""),
              "5");
    EXPECT_EQ(value("nodelayd_upstream_connect_seconds_sum", "route=\"imap\""), "0.00025");
}

TEST(stats_prometheus, histogram_buckets_are_cumulative_and_end_at_inf) {
    const auto text = render_prometheus(sample_snapshot());
    const auto e = parse(text);
    const auto& bounds = latency_bucket_bounds();
    // Group the _bucket lines by series (labels without le).
    std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> series;
    for (const auto& s : e.samples) {
        if (s.name.size() < 7 || s.name.substr(s.name.size() - 7) != "_bucket")
            continue;
        const auto le_at = s.labels.rfind(",le=\"");
        ASSERT_NE(le_at, std::string::npos) << s.labels;
        const auto le = s.labels.substr(le_at + 5, s.labels.size() - le_at - 6);
        series[s.name + "{" + s.labels.substr(0, le_at) + "}"].emplace_back(le,
                                                                            std::stoull(s.value));
    }
    // 2 routes × (2 directions + 1 connect + 2 sides).
    EXPECT_EQ(series.size(), 10u);
    for (const auto& [key, buckets] : series) {
        ASSERT_EQ(buckets.size(), n_bounds + 1) << key;
        for (std::size_t i = 0; i < n_bounds; ++i)
            EXPECT_EQ(std::strtod(buckets[i].first.c_str(), nullptr), bounds[i])
                << key << " le=" << buckets[i].first;
        EXPECT_EQ(buckets.back().first, "+Inf");
        for (std::size_t i = 1; i < buckets.size(); ++i)
            EXPECT_LE(buckets[i - 1].second, buckets[i].second) << key;
        const auto base = key.substr(0, key.find("_bucket{"));
        const auto labels = key.substr(key.find('{') + 1, key.size() - key.find('{') - 2);
        const auto* count = find_sample(e, base + "_count", labels);
        ASSERT_NE(count, nullptr) << key;
        EXPECT_EQ(std::to_string(buckets.back().second), count->value) << key;
        EXPECT_NE(find_sample(e, base + "_sum", labels), nullptr) << key;
    }
    // Compact, stable le spelling.
    EXPECT_NE(text.find("le=\"1e-06\""), std::string::npos);
    EXPECT_NE(text.find("le=\"1.25e-06\""), std::string::npos);
    EXPECT_NE(text.find("le=\"3.15e-05\""), std::string::npos);
    EXPECT_NE(text.find("le=\"0.0001\""), std::string::npos);
    EXPECT_NE(text.find("le=\"0.0063\""), std::string::npos);
    EXPECT_NE(text.find("le=\"10\""), std::string::npos);
    EXPECT_EQ(text.find("e-07"), std::string::npos);

    // Known placements: 1.5 µs in le=1.6e-06 (index 2), 2.5 µs on the bound le=2.5e-06.
    const auto& c2u = series["nodelayd_added_latency_seconds_bucket{route=\"imap\","
                             "direction=\"client_to_upstream\"}"];
    ASSERT_EQ(c2u.size(), n_bounds + 1);
    EXPECT_EQ(c2u[1].second, 0u);
    EXPECT_EQ(c2u[2].second, 1u);            // le=1.6e-06
    EXPECT_EQ(c2u[3].second, 1u);            // le=2e-06
    EXPECT_EQ(c2u[4].second, 2u);            // le=2.5e-06
    EXPECT_EQ(c2u[n_bounds - 1].second, 4u); // le=10
    EXPECT_EQ(c2u[n_bounds].second, 5u);     // +Inf
}

TEST(stats_prometheus, label_values_are_escaped) {
    const auto text = render_prometheus(sample_snapshot("a\"b\\c\nd"));
    EXPECT_NE(text.find("route=\"a\\\"b\\\\c\\nd\""), std::string::npos);
    EXPECT_EQ(text.find("c\nd"), std::string::npos);
    // Invalid UTF-8 becomes U+FFFD instead of producing an unparsable exposition.
    const auto bad = render_prometheus(sample_snapshot("x\xff"));
    EXPECT_NE(bad.find("route=\"x\xEF\xBF\xBD\""), std::string::npos);
}

TEST(stats_prometheus, no_routes_still_renders_uptime_and_build_info) {
    stats_snapshot s;
    s.version = "1.2.3";
    s.uptime_seconds = 0.25;
    const auto e = parse(render_prometheus(s));
    ASSERT_EQ(e.samples.size(), 2u);
    EXPECT_EQ(e.samples[0].name, "nodelayd_uptime_seconds");
    EXPECT_EQ(e.samples[0].value, "0.25");
    EXPECT_EQ(e.samples[1].labels, "version=\"1.2.3\"");
}

TEST(stats_json, parses_back_with_the_right_numbers) {
    const auto s = sample_snapshot();
    const auto j = nlohmann::json::parse(render_json(s));
    EXPECT_EQ(j.at("version"), "0.1.0");
    EXPECT_DOUBLE_EQ(j.at("uptime_seconds").get<double>(), 3725.5);
    ASSERT_EQ(j.at("routes").size(), 2u);
    const auto& r = j.at("routes").at(0);
    EXPECT_EQ(r.at("name"), "imap");
    EXPECT_EQ(j.at("routes").at(1).at("name"), "a\"b\\c");
    EXPECT_EQ(r.at("connections").at("active"), 3);
    EXPECT_EQ(r.at("connections").at("total"), 15);
    EXPECT_EQ(r.at("connections").at("refused"), 2);
    EXPECT_EQ(r.at("upstream_connect_failures"), 1);
    EXPECT_EQ(r.at("bytes").at("client_to_upstream"), 12345);
    EXPECT_EQ(r.at("bytes").at("upstream_to_client"), 5000000);
    EXPECT_EQ(r.at("writes").at("client"), 40);
    EXPECT_EQ(r.at("writes").at("upstream"), 50);
    EXPECT_EQ(r.at("chunks").at("client"), 100);
    EXPECT_EQ(r.at("chunks").at("upstream"), 60);
    EXPECT_EQ(r.at("peer_stalls").at("client"), 7);
    EXPECT_EQ(r.at("peer_stalls").at("upstream"), 1);
    EXPECT_EQ(r.at("tcp").at("client").at("segments_out"), 1000);
    EXPECT_EQ(r.at("tcp").at("upstream").at("segments_out"), 900);
    EXPECT_EQ(r.at("tcp").at("upstream").at("retransmits"), 4);
    EXPECT_EQ(r.at("tcp").at("upstream").at("rtt").at("count"), 1);
    EXPECT_DOUBLE_EQ(r.at("tcp").at("upstream").at("rtt").at("max_us").get<double>(), 1200);

    const auto& h = r.at("added_latency").at("client_to_upstream");
    const auto& src = s.routes[0].added_latency[0];
    EXPECT_EQ(h.at("count"), 5);
    EXPECT_DOUBLE_EQ(h.at("sum_us").get<double>(), 12'300'044);
    EXPECT_DOUBLE_EQ(h.at("max_us").get<double>(), 12'000'000);
    EXPECT_NEAR(h.at("p50_us").get<double>(), src.quantile(0.5) * 1e6, 0.0005);
    EXPECT_EQ(h.at("p50_us").get<double>(), 35.75); // halfway through (31.5 µs, 40 µs]
    EXPECT_NEAR(h.at("p90_us").get<double>(), src.quantile(0.9) * 1e6, 0.0005);
    EXPECT_NEAR(h.at("p99_us").get<double>(), src.quantile(0.99) * 1e6, 0.0005);
    EXPECT_NEAR(h.at("p999_us").get<double>(), src.quantile(0.999) * 1e6, 0.0005);
    // Only non-empty buckets; the overflow bucket's bound is null (+Inf).
    const auto& b = h.at("buckets");
    ASSERT_EQ(b.size(), 5u);
    EXPECT_EQ(b[0].at("le_us").get<double>(), 1.6);
    EXPECT_EQ(b[1].at("le_us").get<double>(), 2.5);
    EXPECT_EQ(b[2].at("le_us").get<double>(), 40);
    EXPECT_EQ(b[3].at("le_us").get<double>(), 315'000);
    EXPECT_TRUE(b[4].at("le_us").is_null());
    for (const auto& bucket : b)
        EXPECT_EQ(bucket.at("count"), 1);

    // An empty histogram: zeros and no buckets.
    const auto& empty = j.at("routes").at(1).at("upstream_connect");
    EXPECT_EQ(empty.at("count"), 0);
    EXPECT_EQ(empty.at("p99_us"), 0);
    EXPECT_TRUE(empty.at("buckets").empty());
    for (const char* key :
         {"count", "sum_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "buckets"})
        EXPECT_TRUE(empty.contains(key)) << key;
}

TEST(stats_json, invalid_utf8_in_a_name_does_not_throw) {
    std::string out;
    ASSERT_NO_THROW(out = render_json(sample_snapshot("x\xff")));
    EXPECT_EQ(nlohmann::json::parse(out).at("routes").at(1).at("name"), "x\xEF\xBF\xBD");
}

TEST(stats_html, self_contained_page_with_a_chart_per_route) {
    const auto html = render_html(sample_snapshot());
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_NE(html.find("<title>nodelayd</title>"), std::string::npos);
    EXPECT_NE(html.find("<meta http-equiv=\"refresh\" content=\"5\">"), std::string::npos);
    EXPECT_NE(html.find("<style>"), std::string::npos);
    EXPECT_EQ(count_of(html, "<svg"), 2u);
    EXPECT_EQ(count_of(html, "</svg>"), 2u);
    EXPECT_EQ(html.find("http://"), std::string::npos);
    EXPECT_EQ(html.find("https://"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("<link"), std::string::npos);
    EXPECT_EQ(html.find("url("), std::string::npos);
    for (const char* label :
         {">1µs<", ">10µs<", ">100µs<", ">1ms<", ">10ms<", ">100ms<", ">1s<", ">10s<"})
        EXPECT_NE(html.find(label), std::string::npos) << label;
    // Route 1 has samples in both directions, route 2 none.
    EXPECT_NE(html.find("<rect class=\"c2u\" x="), std::string::npos);
    EXPECT_NE(html.find("<rect class=\"u2c\" x="), std::string::npos);
    EXPECT_EQ(count_of(html, "no samples yet"), 1u);
    // Table contents.
    EXPECT_NE(html.find("12345"), std::string::npos);
    EXPECT_NE(html.find("2.50"), std::string::npos); // 100 chunks / 40 writes to the client
    EXPECT_NE(html.find("1.20"), std::string::npos); // 60 / 50 to the upstream
    EXPECT_NE(html.find("1h 2m 5s"), std::string::npos);
}

TEST(stats_html, escapes_route_names) {
    const auto html = render_html(sample_snapshot("<b>&\"x\""));
    EXPECT_NE(html.find("&lt;b&gt;&amp;&quot;x&quot;"), std::string::npos);
    EXPECT_EQ(html.find("<b>"), std::string::npos);
    EXPECT_EQ(html.find("<b>&\"x\""), std::string::npos);
}

TEST(stats_html, empty_daemon_renders) {
    stats_snapshot s;
    s.version = "0.1.0";
    const auto html = render_html(s);
    EXPECT_NE(html.find("<title>nodelayd</title>"), std::string::npos);
    EXPECT_NE(html.find("</html>"), std::string::npos);
}
