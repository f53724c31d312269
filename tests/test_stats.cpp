#include "nodelayd/stats.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace nodelayd;

namespace {

constexpr std::size_t n_bounds = 71;
constexpr std::size_t inf_bucket = n_bounds;

std::uint64_t bound_ns(std::size_t i) {
    return static_cast<std::uint64_t>(std::llround(latency_bucket_bounds()[i] * 1e9));
}

/// Index of the only non-empty bucket of a histogram that saw one sample.
std::size_t bucket_of(std::uint64_t ns) {
    histogram h;
    h.record_ns(ns);
    const auto s = h.snapshot();
    std::size_t found = s.buckets.size();
    for (std::size_t i = 0; i < s.buckets.size(); ++i) {
        if (s.buckets[i] != 0) {
            EXPECT_EQ(found, s.buckets.size()) << "sample " << ns << " in two buckets";
            EXPECT_EQ(s.buckets[i], 1u);
            found = i;
        }
    }
    return found;
}

} // namespace

TEST(stats_bounds, seventy_one_r10_bounds_from_1us_to_10s) {
    const auto& b = latency_bucket_bounds();
    ASSERT_EQ(b.size(), n_bounds);
    EXPECT_EQ(b.front(), 1e-6);
    EXPECT_EQ(b.back(), 10.0);
    for (std::size_t i = 1; i < b.size(); ++i)
        EXPECT_LT(b[i - 1], b[i]) << i;
    // Each bound is exactly the double nearest its decimal R10 value.
    const char* mantissas[] = {"1", "1.25", "1.6", "2", "2.5", "3.15", "4", "5", "6.3", "8"};
    for (int decade = 0; decade < 7; ++decade)
        for (int k = 0; k < 10; ++k) {
            const std::string text = std::string(mantissas[k]) + "e" + std::to_string(decade - 6);
            EXPECT_EQ(b[static_cast<std::size_t>(decade * 10 + k)],
                      std::strtod(text.c_str(), nullptr))
                << text;
        }
    // The same vector every call.
    EXPECT_EQ(&latency_bucket_bounds(), &b);
}

TEST(stats_histogram, has_a_bucket_per_bound_plus_inf) {
    const histogram h;
    const auto s = h.snapshot();
    EXPECT_EQ(s.buckets.size(), n_bounds + 1);
    EXPECT_EQ(s.count, 0u);
    EXPECT_EQ(s.sum_ns, 0u);
    EXPECT_EQ(s.max_ns, 0u);
}

TEST(stats_histogram, bucketing_edges) {
    EXPECT_EQ(bucket_of(0), 0u);
    EXPECT_EQ(bucket_of(1), 0u);
    EXPECT_EQ(bucket_of(1'000), 0u); // exactly 1 µs: le="1e-06"
    EXPECT_EQ(bucket_of(1'001), 1u); // just above
    EXPECT_EQ(bucket_of(1'250), 1u);
    EXPECT_EQ(bucket_of(1'251), 2u);
    EXPECT_EQ(bucket_of(3'150), 5u);
    EXPECT_EQ(bucket_of(10'000), 10u);
    EXPECT_EQ(bucket_of(10'000'000'000), 70u); // exactly 10 s
    EXPECT_EQ(bucket_of(10'000'000'001), inf_bucket);
    EXPECT_EQ(bucket_of(3'600'000'000'000), inf_bucket);
    EXPECT_EQ(bucket_of(UINT64_MAX), inf_bucket);
}

TEST(stats_histogram, every_bound_is_inclusive) {
    for (std::size_t i = 0; i < n_bounds; ++i) {
        EXPECT_EQ(bucket_of(bound_ns(i)), i) << "on bound " << i;
        EXPECT_EQ(bucket_of(bound_ns(i) + 1), i + 1) << "above bound " << i;
        EXPECT_EQ(bucket_of(bound_ns(i) - 1), i) << "below bound " << i;
    }
}

TEST(stats_histogram, count_sum_max) {
    histogram h;
    h.record_ns(500);
    h.record_ns(2'000'000);
    h.record_ns(7);
    const auto s = h.snapshot();
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(s.sum_ns, 2'000'507u);
    EXPECT_EQ(s.max_ns, 2'000'000u);
}

TEST(stats_quantile, zero_without_samples) {
    EXPECT_EQ(histogram_snapshot{}.quantile(0.5), 0.0);
    EXPECT_EQ(histogram{}.snapshot().quantile(0.99), 0.0);
}

TEST(stats_quantile, uniform_within_one_bucket_interpolates_linearly) {
    // 1000 samples spread evenly over (100 µs, 125 µs].
    histogram h;
    for (std::uint64_t i = 1; i <= 1000; ++i)
        h.record_ns(100'000 + 25 * i);
    const auto s = h.snapshot();
    EXPECT_EQ(s.max_ns, 125'000u);
    EXPECT_NEAR(s.quantile(0.5), 112.5e-6, 1e-12);
    EXPECT_NEAR(s.quantile(0.9), 122.5e-6, 1e-12);
    EXPECT_NEAR(s.quantile(0.99), 124.75e-6, 1e-12);
    EXPECT_NEAR(s.quantile(1.0), 125e-6, 1e-12);
    EXPECT_NEAR(s.quantile(0.0), 100e-6, 1e-12); // lower edge of the first non-empty bucket
}

TEST(stats_quantile, never_above_the_maximum) {
    histogram h;
    for (int i = 0; i < 10; ++i)
        h.record_ns(101'000); // bucket (100 µs, 125 µs]
    const auto s = h.snapshot();
    EXPECT_DOUBLE_EQ(s.quantile(0.5), 101e-6);
    EXPECT_DOUBLE_EQ(s.quantile(0.99), 101e-6);
}

TEST(stats_quantile, zero_samples_give_zero) {
    histogram h;
    for (int i = 0; i < 5; ++i)
        h.record_ns(0);
    EXPECT_EQ(h.snapshot().quantile(0.5), 0.0);
    EXPECT_EQ(h.snapshot().quantile(1.0), 0.0);
}

TEST(stats_quantile, mixture_of_two_modes) {
    histogram h;
    for (int i = 0; i < 900; ++i)
        h.record_ns(9'000); // (8 µs, 10 µs]
    for (int i = 0; i < 100; ++i)
        h.record_ns(5'000'000); // (4 ms, 5 ms]
    const auto s = h.snapshot();
    EXPECT_NEAR(s.quantile(0.5), 8e-6 + 2e-6 * 500.0 / 900.0, 1e-12);
    EXPECT_NEAR(s.quantile(0.9), 10e-6, 1e-12);
    EXPECT_NEAR(s.quantile(0.99), 4.9e-3, 1e-12);
    EXPECT_NEAR(s.quantile(0.999), 4.99e-3, 1e-12);
    EXPECT_NEAR(s.quantile(1.0), 5e-3, 1e-12);
}

TEST(stats_quantile, inf_bucket_interpolates_up_to_the_maximum) {
    histogram h;
    h.record_ns(20'000'000'000); // 20 s
    const auto s = h.snapshot();
    EXPECT_NEAR(s.quantile(0.5), 15.0, 1e-9);
    EXPECT_NEAR(s.quantile(1.0), 20.0, 1e-9);
}

TEST(stats_quantile, out_of_range_q_is_clamped) {
    histogram h;
    h.record_ns(2'000);
    h.record_ns(3'000);
    const auto s = h.snapshot();
    EXPECT_EQ(s.quantile(-1), s.quantile(0));
    EXPECT_EQ(s.quantile(7), s.quantile(1));
    EXPECT_EQ(s.quantile(std::nan("")), s.quantile(0));
    EXPECT_DOUBLE_EQ(s.quantile(1), 3e-6);
}

TEST(stats_merge, equals_recording_everything_in_one_histogram) {
    histogram a, b, all;
    for (std::uint64_t i = 0; i < 5'000; ++i) {
        const std::uint64_t v = (i * 7919) % 50'000'000;
        (i % 3 == 0 ? a : b).record_ns(v);
        all.record_ns(v);
    }
    b.record_ns(12'000'000'000);
    all.record_ns(12'000'000'000);

    histogram_snapshot merged; // default: no buckets yet
    merged.merge(a.snapshot());
    merged.merge(b.snapshot());
    const auto expect = all.snapshot();
    EXPECT_EQ(merged.buckets, expect.buckets);
    EXPECT_EQ(merged.count, expect.count);
    EXPECT_EQ(merged.sum_ns, expect.sum_ns);
    EXPECT_EQ(merged.max_ns, expect.max_ns);
    EXPECT_EQ(merged.quantile(0.9), expect.quantile(0.9));

    // Merging an empty snapshot changes nothing.
    merged.merge(histogram_snapshot{});
    EXPECT_EQ(merged.buckets, expect.buckets);
    EXPECT_EQ(merged.count, expect.count);
}

TEST(stats_route, add_sums_threads) {
    route_stats t1, t2;
    t1.connections_total.add(3);
    t2.connections_total.add(4);
    t1.refused_total.add();
    t2.upstream_connect_failures_total.add(2);
    t1.bytes_total[0].add(100);
    t2.bytes_total[0].add(23);
    t2.bytes_total[1].add(9);
    t1.writes_total[1].add(5);
    t2.chunks_total[1].add(11);
    t1.peer_stalls_total[0].add(2);
    t2.peer_stalls_total[1].add(1);
    t1.tcp_segments_out_total[0].add(40);
    t2.tcp_retransmits_total[1].add(3);
    t1.added_latency[0].record_ns(1'500);
    t2.added_latency[0].record_ns(2'500);
    t2.added_latency[1].record_ns(70'000);
    t1.upstream_connect.record_ns(300'000);
    t2.tcp_rtt[1].record_ns(50'000);

    route_snapshot r;
    r.name = "imap";
    r.connections_active = 2;
    r.add(t1);
    r.add(t2);
    EXPECT_EQ(r.name, "imap");
    EXPECT_EQ(r.connections_active, 2u); // not from route_stats
    EXPECT_EQ(r.connections_total, 7u);
    EXPECT_EQ(r.refused_total, 1u);
    EXPECT_EQ(r.upstream_connect_failures_total, 2u);
    EXPECT_EQ(r.bytes_total[0], 123u);
    EXPECT_EQ(r.bytes_total[1], 9u);
    EXPECT_EQ(r.writes_total[1], 5u);
    EXPECT_EQ(r.chunks_total[1], 11u);
    EXPECT_EQ(r.peer_stalls_total[0], 2u);
    EXPECT_EQ(r.peer_stalls_total[1], 1u);
    EXPECT_EQ(r.tcp_segments_out_total[0], 40u);
    EXPECT_EQ(r.tcp_retransmits_total[1], 3u);
    EXPECT_EQ(r.added_latency[0].count, 2u);
    EXPECT_EQ(r.added_latency[0].sum_ns, 4'000u);
    EXPECT_EQ(r.added_latency[0].max_ns, 2'500u);
    EXPECT_EQ(r.added_latency[1].count, 1u);
    EXPECT_EQ(r.upstream_connect.count, 1u);
    EXPECT_EQ(r.tcp_rtt[0].count, 0u);
    EXPECT_EQ(r.tcp_rtt[1].count, 1u);
    EXPECT_EQ(r.tcp_rtt[1].buckets.size(), n_bounds + 1);
}

TEST(stats_labels, names) {
    EXPECT_STREQ(to_label(direction::client_to_upstream), "client_to_upstream");
    EXPECT_STREQ(to_label(direction::upstream_to_client), "upstream_to_client");
    EXPECT_STREQ(to_label(side::client), "client");
    EXPECT_STREQ(to_label(side::upstream), "upstream");
}

TEST(stats_counter, adds) {
    counter c;
    c.add();
    c.add(41);
    EXPECT_EQ(c.get(), 42u);
}

// One thread records (the owner), another scrapes: every snapshot is self-consistent and
// never goes backwards, and the final one is exact.
TEST(stats_concurrency, writer_and_reader) {
    constexpr std::uint64_t samples = 300'000;
    auto value = [](std::uint64_t i) { return (i * 2654435761u) % 20'000'000'000; };

    histogram h;
    counter c;
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (std::uint64_t i = 0; i < samples; ++i) {
            h.record_ns(value(i));
            c.add();
        }
        done.store(true, std::memory_order_release);
    });

    histogram_snapshot prev = h.snapshot();
    std::uint64_t prev_counter = 0, scrapes = 0;
    bool ok = true;
    while (ok) {
        const bool finished = done.load(std::memory_order_acquire);
        const auto s = h.snapshot();
        const auto n = c.get();
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < s.buckets.size(); ++i) {
            total += s.buckets[i];
            if (s.buckets[i] < prev.buckets[i])
                ok = false;
        }
        if (total != s.count || s.count < prev.count || s.sum_ns < prev.sum_ns ||
            s.max_ns < prev.max_ns || n < prev_counter || s.count > samples)
            ok = false;
        prev = s;
        prev_counter = n;
        ++scrapes;
        if (finished)
            break;
    }
    writer.join();
    EXPECT_TRUE(ok) << "a snapshot went backwards or was inconsistent";
    EXPECT_GT(scrapes, 0u);

    histogram reference;
    std::uint64_t sum = 0, max = 0;
    for (std::uint64_t i = 0; i < samples; ++i) {
        reference.record_ns(value(i));
        sum += value(i);
        max = std::max(max, value(i));
    }
    const auto s = h.snapshot();
    EXPECT_EQ(s.count, samples);
    EXPECT_EQ(s.sum_ns, sum);
    EXPECT_EQ(s.max_ns, max);
    EXPECT_EQ(s.buckets, reference.snapshot().buckets);
    EXPECT_EQ(c.get(), samples);
}
