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
    /// Aborts every live session with `reason`.
    void abort_all(close_reason reason);
    /// For shutdown: the sweep's timer must not keep the worker's loop running once the last
    /// session is gone, so it stops now when there is none, else it runs every 10 ms (and
    /// finds the registry empty at most 10 ms after the last session ended).
    void drain();

private:
    void arm(std::chrono::milliseconds period);
    void sweep();

    // Sessions unlink themselves when destroyed (auto_unlink hooks), which rules out a
    // constant-time size.
    boost::intrusive::list<session, boost::intrusive::constant_time_size<false>> sessions_;
    boost::asio::steady_timer timer_;
    bool armed_ = false;
    bool draining_ = false;
};

} // namespace nodelayd
