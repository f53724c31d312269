#pragma once
// The sessions one worker thread is running: shutdown ends them at its deadline, and one
// periodic sweep enforces their idle timeouts (cheaper than a timer per session, and an idle
// session then holds no timer at all). Confined to its worker's thread: no locking.

#include "nodelayd/relay.hpp"
#include "nodelayd/session.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>

namespace nodelayd {

/// How often the sweep runs for sessions whose shortest timeout is `timeout`: an eighth of it
/// (a timeout fires at most 12.5% late), between 5 ms and 1 s.
std::chrono::milliseconds sweep_period(std::chrono::milliseconds timeout);

/// Live sessions of one worker.
class session_registry {
public:
    /// Sweeps on `ctx`, the worker's context.
    explicit session_registry(boost::asio::io_context& ctx);
    session_registry(const session_registry&) = delete;
    session_registry& operator=(const session_registry&) = delete;

    /// Registers a new session and makes sure the sweep runs often enough for it.
    void add(session& s);
    /// Unregisters a closing session.
    void remove(session& s);
    /// Aborts every live session with `reason`.
    void abort_all(close_reason reason);
    /// Number of live sessions.
    [[nodiscard]] std::size_t size() const { return sessions_.size(); }

private:
    void arm(std::chrono::milliseconds period);
    void sweep();

    boost::intrusive::list<session> sessions_;
    boost::asio::steady_timer timer_;
    bool armed_ = false;
};

} // namespace nodelayd
