#include "nodelayd/session_registry.hpp"

#include <algorithm>

namespace nodelayd {
namespace {

constexpr std::chrono::milliseconds drain_period(10);

} // namespace

std::chrono::milliseconds sweep_period(std::chrono::milliseconds timeout) {
    return std::clamp(timeout / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
}

session_registry::session_registry(boost::asio::io_context& ctx) : timer_(ctx) {}

void session_registry::add(session& s) {
    sessions_.push_back(s);
    arm(sweep_period(s.shortest_timeout()));
}

void session_registry::abort_all(close_reason reason) {
    for (auto& s : sessions_)
        s.abort(reason);
}

void session_registry::drain() {
    draining_ = true;
    if (sessions_.empty()) {
        timer_.cancel();
        armed_ = false;
    } else {
        arm(drain_period);
    }
}

void session_registry::arm(std::chrono::milliseconds period) {
    if (draining_)
        period = std::min(period, drain_period);
    const auto at = std::chrono::steady_clock::now() + period;
    if (armed_ && timer_.expiry() <= at)
        return;
    armed_ = true;
    // Moving the expiry cancels a later wait; its handler sees operation_aborted and leaves
    // the sweep to this one.
    timer_.expires_at(at);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        armed_ = false;
        sweep();
    });
}

void session_registry::sweep() {
    if (sessions_.empty())
        return;
    const auto now = std::chrono::steady_clock::now();
    auto shortest = std::chrono::milliseconds::max();
    // expire_if_idle() only aborts: sessions close from completion handlers, never during
    // this loop.
    for (auto& s : sessions_) {
        s.expire_if_idle(now);
        shortest = std::min(shortest, s.shortest_timeout());
    }
    arm(sweep_period(shortest));
}

} // namespace nodelayd
