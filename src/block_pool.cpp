#include "nodelayd/block_pool.hpp"

#include <array>
#include <mutex>
#include <vector>

namespace nodelayd {
namespace {

constexpr std::size_t granule = 16;
constexpr std::size_t slab_size = std::size_t{64} * 1024;

struct free_block {
    free_block* next;
};

// Slabs belong to the process, not to a thread: a block freed on another thread (an
// operation destroyed with its io_context) joins that thread's free list, and its slab must
// outlive both. Freed at exit.
class slab_registry {
public:
    slab_registry() = default;
    slab_registry(const slab_registry&) = delete;
    slab_registry& operator=(const slab_registry&) = delete;
    ~slab_registry() {
        for (void* s : slabs_)
            ::operator delete(s);
    }
    std::byte* add() {
        auto* s = static_cast<std::byte*>(::operator new(slab_size));
        const std::lock_guard lock(mutex_);
        slabs_.push_back(s);
        return s;
    }

private:
    std::mutex mutex_;
    std::vector<void*> slabs_;
};

slab_registry& slabs() {
    static slab_registry registry;
    return registry;
}

class thread_pools {
public:
    void* allocate(std::size_t size) {
        const std::size_t c = (size + granule - 1) / granule;
        if (free_block* b = free_[c]) {
            free_[c] = b->next;
            return b;
        }
        const std::size_t bytes = c * granule;
        if (slab_left_ < bytes) {
            slab_next_ = slabs().add();
            slab_left_ = slab_size;
        }
        void* p = slab_next_;
        slab_next_ += bytes;
        slab_left_ -= bytes;
        return p;
    }

    void deallocate(void* p, std::size_t size) noexcept {
        const std::size_t c = (size + granule - 1) / granule;
        auto* b = static_cast<free_block*>(p);
        b->next = free_[c];
        free_[c] = b;
    }

private:
    std::array<free_block*, max_block / granule + 1> free_{};
    std::byte* slab_next_ = nullptr;
    std::size_t slab_left_ = 0;
};

thread_pools& local() {
    slabs(); // constructed first, so destroyed after every thread's pools
    thread_local thread_pools pools;
    return pools;
}

} // namespace

void* pool_allocate(std::size_t size) {
    if (size > max_block)
        return ::operator new(size);
    return local().allocate(size);
}

void pool_deallocate(void* p, std::size_t size) noexcept {
    if (size > max_block) {
        ::operator delete(p);
        return;
    }
    local().deallocate(p, size);
}

} // namespace nodelayd
