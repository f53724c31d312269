#pragma once
// Per-thread pools of small fixed-size blocks for what every live session holds: its pending
// waits. Asio's default recycling allocator hands a new operation any cached block that is
// big enough, so an idle session's 96-byte wait could pin a 240-byte block left over from its
// connect; these pools keep one exact size class per request size and no malloc header.
// Blocks are carved from 64 KiB slabs that are never returned to the system: the pools
// stay at their high-water mark, like the chunk pool.

#include <cstddef>
#include <new>

namespace nodelayd {

/// A block of `size` bytes (at most max_block) from the calling thread's pool.
void* pool_allocate(std::size_t size);
/// Returns a block of `size` bytes to the calling thread's pool.
void pool_deallocate(void* p, std::size_t size) noexcept;
/// Largest size served from the pools; larger requests go to operator new.
inline constexpr std::size_t max_block = 512;

/// An allocator over the thread's block pools (an Asio handler's associated allocator).
template <typename T> struct pool_allocator {
    /// Allocated type.
    using value_type = T;
    pool_allocator() noexcept = default;
    /// Rebinding copy.
    template <typename U>
    pool_allocator(const pool_allocator<U>& /*other*/) noexcept {
    } // NOLINT(google-explicit-constructor)
    /// `n` objects' worth of storage.
    T* allocate(std::size_t n) { return static_cast<T*>(pool_allocate(n * sizeof(T))); }
    /// Returns storage from allocate().
    void deallocate(T* p, std::size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }
    /// All pool allocators are interchangeable.
    template <typename U> bool operator==(const pool_allocator<U>& /*other*/) const noexcept {
        return true;
    }
};

} // namespace nodelayd
