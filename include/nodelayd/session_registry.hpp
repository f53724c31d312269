#pragma once
// The sessions one worker thread is running, so shutdown can end them at its deadline.
// Confined to its worker's thread: no locking.

#include "nodelayd/relay.hpp"

#include <list>

namespace nodelayd {

/// Live sessions of one worker.
class session_registry {
public:
    /// Keeps a session registered for its lifetime.
    class entry {
    public:
        entry(session_registry& registry, relay_control& control);
        entry(const entry&) = delete;
        entry& operator=(const entry&) = delete;
        ~entry();

    private:
        session_registry& registry_;
        std::list<relay_control*>::iterator it_;
    };

    /// Aborts every live session with `reason`.
    void abort_all(close_reason reason);
    /// Number of live sessions.
    [[nodiscard]] std::size_t size() const { return sessions_.size(); }

private:
    std::list<relay_control*> sessions_;
};

} // namespace nodelayd
