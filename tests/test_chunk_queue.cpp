#include "nodelayd/chunk_queue.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>

using namespace nodelayd;

namespace {

void push(chunk_queue& q, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        auto space = q.prepare();
        const std::size_t n = std::min(space.size(), s.size() - off);
        std::memcpy(space.data(), s.data() + off, n);
        q.commit(n);
        off += n;
    }
}

std::string contents(const chunk_queue& q) {
    std::array<iovec, 64> iov{};
    const std::size_t n = q.gather(iov);
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
        out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    return out;
}

} // namespace

TEST(chunk_queue, empty_queue_holds_no_chunk) {
    chunk_queue q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.chunks(), 0u);
    q.prepare();
    q.commit(0); // a read that returned nothing
    EXPECT_EQ(q.chunks(), 0u);
}

TEST(chunk_queue, fifo_across_chunks) {
    chunk_queue q;
    std::string data;
    for (int i = 0; i < 50000; ++i)
        data.push_back(static_cast<char>('a' + i % 26));
    push(q, data);
    EXPECT_EQ(q.size(), data.size());
    EXPECT_EQ(q.chunks(), (data.size() + chunk::capacity - 1) / chunk::capacity);
    EXPECT_EQ(contents(q), data);
    q.consume(100);
    EXPECT_EQ(contents(q), data.substr(100));
    q.consume(chunk::capacity); // crosses a chunk boundary
    EXPECT_EQ(contents(q), data.substr(100 + chunk::capacity));
    q.consume(q.size());
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.chunks(), 0u);
}

TEST(chunk_queue, consume_exactly_one_chunk_keeps_the_rest) {
    chunk_queue q;
    const std::string a(chunk::capacity, 'x');
    push(q, a + "tail");
    q.consume(chunk::capacity);
    EXPECT_EQ(contents(q), "tail");
    EXPECT_EQ(q.chunks(), 1u);
}

TEST(chunk_queue, appends_into_partial_tail) {
    chunk_queue q;
    push(q, "abc");
    push(q, "def");
    EXPECT_EQ(q.chunks(), 1u);
    EXPECT_EQ(contents(q), "abcdef");
}

TEST(chunk_queue, released_chunks_are_reused_from_the_pool) {
    auto& pool = chunk_pool::local();
    {
        chunk_queue q;
        push(q, std::string(3 * chunk::capacity, 'z'));
    }
    const std::size_t cached = pool.cached();
    EXPECT_GE(cached, 3u);
    {
        chunk_queue q;
        push(q, "x");
        EXPECT_EQ(pool.cached(), cached - 1);
    }
    EXPECT_EQ(pool.cached(), cached);
}
