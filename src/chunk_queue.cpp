#include "nodelayd/chunk_queue.hpp"

#include <new>

namespace nodelayd {

chunk_pool& chunk_pool::local() {
    thread_local chunk_pool pool;
    return pool;
}

chunk* chunk_pool::acquire() {
    if (free_ != nullptr) {
        chunk* c = free_;
        free_ = c->next;
        --cached_;
        *c = chunk{};
        return c;
    }
    return new (::operator new(chunk::allocation)) chunk{};
}

void chunk_pool::release(chunk* c) {
    if (cached_ >= max_cached_) {
        c->~chunk();
        ::operator delete(c);
        return;
    }
    c->next = free_;
    free_ = c;
    ++cached_;
}

chunk_pool::~chunk_pool() {
    while (free_ != nullptr) {
        chunk* c = free_;
        free_ = c->next;
        c->~chunk();
        ::operator delete(c);
    }
}

chunk_queue::~chunk_queue() {
    release_all();
}

void chunk_queue::release_all() {
    auto& pool = chunk_pool::local();
    while (head_ != nullptr) {
        chunk* c = head_;
        head_ = c->next;
        pool.release(c);
    }
    tail_ = nullptr;
    bytes_ = 0;
}

std::span<std::byte> chunk_queue::prepare() {
    if (tail_ == nullptr || tail_->end == chunk::capacity) {
        chunk* c = chunk_pool::local().acquire();
        if (tail_ == nullptr)
            head_ = c;
        else
            tail_->next = c;
        tail_ = c;
    }
    return {tail_->data() + tail_->end, chunk::capacity - tail_->end};
}

void chunk_queue::commit(std::size_t n, std::int64_t rx_ns) {
    if (n > 0 && tail_->rx_ns == 0)
        tail_->rx_ns = rx_ns;
    tail_->end += static_cast<std::uint32_t>(n);
    bytes_ += n;
    if (bytes_ == 0)
        release_all(); // a read that returned nothing must not leave an idle chunk behind
}

std::size_t chunk_queue::gather(std::span<iovec> out) const {
    std::size_t used = 0;
    for (chunk* c = head_; c != nullptr && used < out.size(); c = c->next) {
        if (c->end == c->begin)
            continue;
        out[used++] = iovec{c->data() + c->begin, static_cast<std::size_t>(c->end - c->begin)};
    }
    return used;
}

std::size_t chunk_queue::chunks() const {
    std::size_t n = 0;
    for (chunk* c = head_; c != nullptr; c = c->next)
        ++n;
    return n;
}

} // namespace nodelayd
