#pragma once
// Bytes in flight for one direction: a FIFO of fixed-size chunks taken from a per-thread
// pool. An empty queue owns no memory, so an idle connection holds no buffer.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace nodelayd {

/// One pooled buffer; the header lives at the front of its own allocation.
struct chunk {
    /// Next chunk in a queue or in the pool's free list.
    chunk* next = nullptr;
    /// Offset of the first unsent byte.
    std::uint32_t begin = 0;
    /// Offset one past the last received byte.
    std::uint32_t end = 0;
    /// Kernel receive time (ns) of the oldest read in this chunk; 0 when unknown or empty.
    std::int64_t rx_ns = 0;

    /// Bytes before the payload (header, padded to keep the payload 32-byte aligned).
    static constexpr std::size_t header = 32;
    /// Total allocation per chunk, header included.
    static constexpr std::size_t allocation = std::size_t{16} * 1024;
    /// Payload bytes per chunk.
    static constexpr std::size_t capacity = allocation - header;

    /// Start of the payload.
    std::byte* data() { return reinterpret_cast<std::byte*>(this) + header; }
};
static_assert(sizeof(chunk) <= chunk::header);

/// Per-thread free list of chunks, bounded so a burst does not pin memory forever.
class chunk_pool {
public:
    /// The calling thread's pool.
    static chunk_pool& local();
    /// A chunk with begin == end == 0.
    chunk* acquire();
    /// Returns a chunk to the pool (or to the allocator when the pool is full).
    void release(chunk* c);
    /// Chunks currently cached.
    [[nodiscard]] std::size_t cached() const { return cached_; }
    ~chunk_pool();

private:
    chunk* free_ = nullptr;
    std::size_t cached_ = 0;
    static constexpr std::size_t max_cached_ = 1024;
};

/// FIFO of received-but-unsent bytes for one relay direction.
class chunk_queue {
public:
    chunk_queue() = default;
    chunk_queue(const chunk_queue&) = delete;
    chunk_queue& operator=(const chunk_queue&) = delete;
    ~chunk_queue();

    /// Space to read into: the tail of the last chunk, or a fresh chunk.
    std::span<std::byte> prepare();
    /// Marks `n` bytes of the last prepare() as received at `rx_ns` (kernel time, 0 if
    /// unknown); a chunk keeps the time of its oldest read.
    void commit(std::size_t n, std::int64_t rx_ns = 0);
    /// Fills `out` with the queued byte ranges, oldest first; returns how many were used.
    std::size_t gather(std::span<iovec> out) const;
    /// Drops `n` sent bytes from the front, returning emptied chunks to the pool; calls
    /// `sent(rx_ns)` for each chunk whose last byte was among them.
    template <typename OnChunkSent> void consume(std::size_t n, OnChunkSent&& sent);
    /// consume() without a callback.
    void consume(std::size_t n) {
        consume(n, [](std::int64_t) {});
    }
    /// Bytes queued.
    [[nodiscard]] std::size_t size() const { return bytes_; }
    /// True when nothing is queued (and no chunk is held).
    [[nodiscard]] bool empty() const { return bytes_ == 0; }
    /// Chunks held, for tests.
    [[nodiscard]] std::size_t chunks() const;

private:
    void release_all();
    chunk* head_ = nullptr;
    chunk* tail_ = nullptr;
    std::size_t bytes_ = 0;
};

template <typename OnChunkSent> void chunk_queue::consume(std::size_t n, OnChunkSent&& sent) {
    bytes_ -= n;
    auto& pool = chunk_pool::local();
    while (n > 0 && head_ != nullptr) { // n never exceeds what is queued
        const std::size_t avail = head_->end - head_->begin;
        if (n < avail) {
            head_->begin += static_cast<std::uint32_t>(n);
            return;
        }
        n -= avail;
        chunk* c = head_;
        head_ = c->next;
        if (head_ == nullptr)
            tail_ = nullptr;
        if (c->rx_ns != 0)
            sent(c->rx_ns); // its last byte left now; later reads go to a fresh chunk
        pool.release(c);
    }
    if (bytes_ == 0)
        release_all();
}

} // namespace nodelayd
