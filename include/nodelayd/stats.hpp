#pragma once
// Statistics recorded on the relay's hot path: per-thread, single-writer counters and
// histograms (relaxed atomics: a plain load and store, no lock, no contended RMW), merged
// into plain snapshots when scraped.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nodelayd {

/// Index for per-direction metrics.
enum class direction : std::uint8_t { client_to_upstream = 0, upstream_to_client = 1 };
/// Index for per-side metrics.
enum class side : std::uint8_t { client = 0, upstream = 1 };

/// A count written by one thread and read by any.
class counter {
public:
    /// Adds `n` (owner thread only).
    void add(std::uint64_t n = 1) {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    /// Current value (any thread).
    [[nodiscard]] std::uint64_t get() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// Upper bounds of the latency buckets in seconds: 1 µs to 10 s, ten per decade
/// (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 × 10^k), then +Inf.
const std::vector<double>& latency_bucket_bounds();

/// A merged, plain copy of a histogram.
struct histogram_snapshot {
    /// Per-bucket (non-cumulative) counts; one more than the bounds (the +Inf bucket).
    std::vector<std::uint64_t> buckets;
    /// Number of samples.
    std::uint64_t count = 0;
    /// Sum of all samples, in nanoseconds.
    std::uint64_t sum_ns = 0;
    /// Largest sample, in nanoseconds.
    std::uint64_t max_ns = 0;

    /// Adds another snapshot's samples.
    void merge(const histogram_snapshot& other);
    /// Estimated quantile (0..1) in seconds, interpolated within its bucket and never above
    /// the maximum; 0 without samples.
    [[nodiscard]] double quantile(double q) const;
};

/// Latency histogram with log-spaced buckets; single writer.
class histogram {
public:
    histogram();
    /// Records one sample (owner thread only).
    void record_ns(std::uint64_t ns);
    /// Copies the current state (any thread).
    [[nodiscard]] histogram_snapshot snapshot() const;

private:
    // The count is not stored: a snapshot sums the buckets it read, so it stays consistent
    // with them while the owner records.
    std::vector<std::atomic<std::uint64_t>> buckets_;
    std::atomic<std::uint64_t> sum_ns_{0};
    std::atomic<std::uint64_t> max_ns_{0};
};

/// What one worker thread recorded for one route.
struct route_stats {
    /// Connections accepted and relayed (refusals excluded).
    counter connections_total;
    /// Connections refused because max-connections was reached.
    counter refused_total;
    /// Failed connect attempts to upstream servers (each server tried counts once).
    counter upstream_connect_failures_total;
    /// Bytes relayed, by direction.
    std::array<counter, 2> bytes_total;
    /// Kernel receive timestamp of a chunk's bytes to the completion of the write that hands
    /// its last byte to the other socket, by direction.
    std::array<histogram, 2> added_latency;
    /// Time to connect to an upstream server (successful attempts).
    histogram upstream_connect;
    /// Gathered writes issued, by the side written to.
    std::array<counter, 2> writes_total;
    /// Chunks (reads) those writes carried, by the side written to.
    std::array<counter, 2> chunks_total;
    /// Suspected Nagle/delayed-ACK stalls of that side's peer.
    std::array<counter, 2> peer_stalls_total;
    /// Smoothed RTT from TCP_INFO at close, by side.
    std::array<histogram, 2> tcp_rtt;
    /// tcpi_segs_out at close, summed, by side.
    std::array<counter, 2> tcp_segments_out_total;
    /// tcpi_total_retrans at close, summed, by side.
    std::array<counter, 2> tcp_retransmits_total;
};

/// Plain merged values of one route, as rendered.
struct route_snapshot {
    /// Route name.
    std::string name;
    /// Sessions open now.
    std::uint64_t connections_active = 0;
    /// See route_stats.
    std::uint64_t connections_total = 0;
    /// See route_stats.
    std::uint64_t refused_total = 0;
    /// See route_stats.
    std::uint64_t upstream_connect_failures_total = 0;
    /// By direction.
    std::array<std::uint64_t, 2> bytes_total{};
    /// By direction.
    std::array<histogram_snapshot, 2> added_latency;
    /// Successful connect attempts.
    histogram_snapshot upstream_connect;
    /// By side.
    std::array<std::uint64_t, 2> writes_total{};
    /// By side.
    std::array<std::uint64_t, 2> chunks_total{};
    /// By side.
    std::array<std::uint64_t, 2> peer_stalls_total{};
    /// By side.
    std::array<histogram_snapshot, 2> tcp_rtt;
    /// By side.
    std::array<std::uint64_t, 2> tcp_segments_out_total{};
    /// By side.
    std::array<std::uint64_t, 2> tcp_retransmits_total{};

    /// Adds one thread's recording of the same route.
    void add(const route_stats& s);
};

/// Everything a scrape renders.
struct stats_snapshot {
    /// Routes in configuration order.
    std::vector<route_snapshot> routes;
    /// Seconds since the daemon started.
    double uptime_seconds = 0;
    /// nodelayd version.
    std::string version;
};

/// "client_to_upstream" / "upstream_to_client".
const char* to_label(direction d);
/// "client" / "upstream".
const char* to_label(side s);

} // namespace nodelayd
