// Unit tests of the stats endpoint's HTTP exchange: bytes in, responses and close decisions out,
// no sockets. The server's own behaviour over real sockets is in test_stats_server.cpp.

#include "nodelayd/stats_http.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using nodelayd::stats_http_exchange;
using nodelayd::stats_http_step;
using nodelayd::stats_snapshot;
using nodelayd::stats_sources;
using action = stats_http_step::action;

constexpr std::size_t header_limit = std::size_t{8} * 1024;

/// A stats_sources counting snapshots, with a health flag the test sets.
struct fake_sources {
    int snapshots = 0;
    bool healthy = true;
    stats_sources sources{[this] {
                              ++snapshots;
                              stats_snapshot s;
                              s.version = "test";
                              return s;
                          },
                          [this] { return healthy; }};
};

/// What one connection got: every reply and how it ended.
struct transcript {
    std::vector<stats_http_step> replies;
    /// Whether the exchange ended with a silent close (rather than a reply closing it, or
    /// waiting for more input).
    bool closed_silently = false;
    /// Whether the exchange still waits for the client.
    bool waiting = false;
};

/// Feeds `input` in reads of at most `pieces[i]` bytes (the last size repeats); `eof` then
/// ends the input.
transcript run(fake_sources& f, std::string_view input, std::vector<std::size_t> pieces,
               bool eof = true, bool closing = false) {
    stats_http_exchange exchange(f.sources, header_limit);
    transcript t;
    std::size_t delivered = 0;
    std::size_t reads = 0;
    bool ended = false;
    for (int guard = 0; guard < 100'000; ++guard) {
        auto step = exchange.next(closing);
        switch (step.what) {
        case action::read: {
            if (delivered == input.size()) {
                if (!eof || ended) {
                    t.waiting = true;
                    return t;
                }
                exchange.end_of_input();
                ended = true;
                break;
            }
            const auto space = exchange.prepare();
            const std::size_t piece = pieces[std::min(reads++, pieces.size() - 1)];
            const std::size_t n = std::min({space.size(), input.size() - delivered, piece});
            std::memcpy(space.data(), input.data() + delivered, n);
            exchange.commit(n);
            delivered += n;
            break;
        }
        case action::close:
            t.closed_silently = true;
            return t;
        case action::reply:
            t.replies.push_back(step);
            if (step.close_after)
                return t;
            break;
        }
    }
    ADD_FAILURE() << "the exchange never ended";
    return t;
}

/// Feeds `input` in reads of at most `piece` bytes.
transcript run(fake_sources& f, std::string_view input, std::size_t piece = SIZE_MAX,
               bool eof = true, bool closing = false) {
    return run(f, input, std::vector<std::size_t>{piece}, eof, closing);
}

std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: stats\r\n" + extra + "\r\n";
}

bool has(const stats_http_step& s, std::string_view text) {
    return s.bytes.find(text) != std::string::npos;
}

TEST(stats_http, answers_each_path) {
    fake_sources f;
    const auto t =
        run(f, get("/healthz") + get("/metrics") + get("/stats") + get("/") + get("/nope"));
    ASSERT_EQ(t.replies.size(), 5U);
    for (std::size_t i = 0; i < 4; ++i)
        EXPECT_EQ(t.replies[i].status, 200U) << i;
    EXPECT_EQ(t.replies[4].status, 404U);
    EXPECT_TRUE(has(t.replies[0], "\r\n\r\nok\n"));
    EXPECT_TRUE(has(t.replies[1], "nodelayd_uptime_seconds"));
    EXPECT_TRUE(has(t.replies[2], "application/json"));
    EXPECT_TRUE(has(t.replies[3], "Content-Security-Policy: default-src 'none'"));
    EXPECT_EQ(f.snapshots, 3) << "/healthz and 404 take no snapshot";
    EXPECT_TRUE(t.closed_silently) << "EOF after the last request closes";
    for (const auto& r : t.replies)
        EXPECT_FALSE(r.close_after);
}

TEST(stats_http, health_follows_the_source) {
    fake_sources f;
    f.healthy = false;
    const auto t = run(f, get("/healthz"));
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_EQ(t.replies[0].status, 503U);
    EXPECT_TRUE(has(t.replies[0], "unavailable\n"));
}

TEST(stats_http, head_has_the_length_but_no_body) {
    fake_sources f;
    const auto t = run(f, "HEAD /healthz HTTP/1.1\r\n\r\n");
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_TRUE(has(t.replies[0], "Content-Length: 3\r\n"));
    EXPECT_EQ(t.replies[0].bytes.substr(t.replies[0].bytes.size() - 4), "\r\n\r\n");
}

TEST(stats_http, other_methods_are_405_with_allow) {
    fake_sources f;
    const auto t = run(f, "DELETE /stats HTTP/1.1\r\n\r\n" + get("/healthz"));
    ASSERT_EQ(t.replies.size(), 2U);
    EXPECT_EQ(t.replies[0].status, 405U);
    EXPECT_TRUE(has(t.replies[0], "Allow: GET, HEAD\r\n"));
    EXPECT_EQ(f.snapshots, 0);
}

TEST(stats_http, a_request_body_is_never_read) {
    fake_sources f;
    const auto t = run(f, "POST /stats HTTP/1.1\r\nContent-Length: 16\r\n\r\n" + get("/healthz"));
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_EQ(t.replies[0].status, 405U);
    EXPECT_TRUE(t.replies[0].close_after);
    EXPECT_TRUE(has(t.replies[0], "Connection: close\r\n"));
}

TEST(stats_http, malformed_is_400_and_closes) {
    fake_sources f;
    for (const auto& bad : {std::string("\x16\x03\x01 hello\r\n\r\n"),
                            std::string("GET / HTTP/1.1\r\nno colon\r\n\r\n"),
                            std::string("GET / HTTP/2.0\r\n\r\n")}) {
        const auto t = run(f, bad + get("/healthz"));
        ASSERT_EQ(t.replies.size(), 1U) << bad;
        EXPECT_EQ(t.replies[0].status, 400U) << bad;
        EXPECT_TRUE(t.replies[0].close_after) << bad;
    }
}

TEST(stats_http, oversized_header_is_431_and_closes) {
    fake_sources f;
    const auto t =
        run(f, get("/healthz", "X-Big: " + std::string(std::size_t{64} * 1024, 'a') + "\r\n"));
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_EQ(t.replies[0].status, 431U);
    EXPECT_TRUE(t.replies[0].close_after);
    EXPECT_EQ(f.snapshots, 0);
}

TEST(stats_http, header_at_the_limit_is_served) {
    fake_sources f;
    const std::string head = get("/healthz", "X-Pad: ");
    const std::string at_limit =
        get("/healthz", "X-Pad: " + std::string(header_limit - head.size() - 2, 'p') + "\r\n");
    ASSERT_EQ(at_limit.size(), header_limit);
    const auto t = run(f, at_limit);
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_EQ(t.replies[0].status, 200U);
}

// Found by fuzz_stats_http: a header of 8.4 KiB was served when its first fields came in an
// earlier read than the rest (Beast limits only what one parse has not consumed yet).
TEST(stats_http, header_limit_counts_the_whole_header_however_it_arrives) {
    fake_sources f;
    const auto padded = [](std::size_t size) {
        const std::string head = get("/healthz", "X-Small: " + std::string(400, 's') + "\r\n");
        const std::string big = "X-Big: ";
        return get("/healthz", "X-Small: " + std::string(400, 's') + "\r\n" + big +
                                   std::string(size - head.size() - big.size() - 2, 'b') + "\r\n");
    };
    for (const std::size_t first : {std::size_t{1}, std::size_t{100}, std::size_t{512},
                                    std::size_t{4096}, header_limit - 1, header_limit}) {
        const std::string at_limit = padded(header_limit);
        ASSERT_EQ(at_limit.size(), header_limit);
        auto t = run(f, at_limit, {first, SIZE_MAX});
        ASSERT_EQ(t.replies.size(), 1U) << first;
        EXPECT_EQ(t.replies[0].status, 200U) << "first read " << first;

        t = run(f, padded(header_limit + 1), {first, SIZE_MAX});
        ASSERT_EQ(t.replies.size(), 1U) << first;
        EXPECT_EQ(t.replies[0].status, 431U) << "first read " << first;
        EXPECT_TRUE(t.replies[0].close_after);
    }
    // In reads of 100 bytes, every field is consumed before the next arrives.
    const auto t = run(f, padded(header_limit + 1), 100);
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_EQ(t.replies[0].status, 431U);
}

TEST(stats_http, connection_close_and_http10_close_after_the_reply) {
    fake_sources f;
    auto t = run(f, get("/healthz", "Connection: close\r\n") + get("/healthz"));
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_TRUE(t.replies[0].close_after);
    t = run(f, "GET /healthz HTTP/1.0\r\n\r\n");
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_TRUE(t.replies[0].close_after);
    EXPECT_EQ(t.replies[0].bytes.rfind("HTTP/1.0 200 ", 0), 0U);
    t = run(f, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_FALSE(t.replies[0].close_after);
}

TEST(stats_http, closing_server_answers_and_closes) {
    fake_sources f;
    const auto t = run(f, get("/healthz") + get("/healthz"), SIZE_MAX, true, /*closing=*/true);
    ASSERT_EQ(t.replies.size(), 1U);
    EXPECT_TRUE(t.replies[0].close_after);
}

TEST(stats_http, incomplete_request_waits_then_eof_closes_silently) {
    fake_sources f;
    auto t = run(f, "GET /metrics HTTP/1.1\r\nHo", SIZE_MAX, /*eof=*/false);
    EXPECT_TRUE(t.waiting);
    EXPECT_TRUE(t.replies.empty());
    t = run(f, "GET /metrics HTTP/1.1\r\nHo");
    EXPECT_TRUE(t.closed_silently);
    EXPECT_TRUE(t.replies.empty());
    t = run(f, "");
    EXPECT_TRUE(t.closed_silently);
}

TEST(stats_http, byte_by_byte_gets_the_same_answers) {
    fake_sources f;
    const std::string input = get("/healthz") + "HEAD /metrics HTTP/1.1\r\n\r\n" + get("/nope") +
                              "POST / HTTP/1.1\r\n\r\n";
    const auto whole = run(f, input);
    const auto bytes = run(f, input, 1);
    ASSERT_EQ(whole.replies.size(), 4U);
    ASSERT_EQ(bytes.replies.size(), whole.replies.size());
    for (std::size_t i = 0; i < whole.replies.size(); ++i)
        EXPECT_EQ(bytes.replies[i].bytes, whole.replies[i].bytes) << i;
}

TEST(stats_http, over_once_closed) {
    fake_sources f;
    stats_http_exchange exchange(f.sources, header_limit);
    const std::string request = get("/healthz", "Connection: close\r\n") + get("/healthz");
    const auto space = exchange.prepare();
    ASSERT_GE(space.size(), request.size());
    std::memcpy(space.data(), request.data(), request.size());
    exchange.commit(request.size());
    EXPECT_EQ(exchange.next().what, action::reply);
    EXPECT_EQ(exchange.next().what, action::close) << "a request after Connection: close";
}

} // namespace
