#pragma once
// A worker thread's event loop, with an optional busy-poll window. A thread that sleeps in
// epoll_wait as soon as it runs out of events pays a wake-up (scheduler, IPI, the CPU's way
// out of idle) on the next packet: on this kind of machine tens of microseconds per hop,
// more than the relay's own work. Polling for a short while after the last event keeps the
// thread awake through the gap between a request and its answer, then sleeps as usual, so
// an idle daemon costs nothing. HAProxy's `busy-polling` is the same idea, always on.

#include <boost/asio/io_context.hpp>

#include <chrono>

namespace nodelayd {

/// Runs `ctx` on the calling thread until it runs out of work or is stopped, like
/// io_context::run(). With `busy_poll` > 0, after each handler it keeps polling (non-blocking,
/// yielding the CPU to other runnable threads between polls) until `busy_poll` has passed
/// without any handler to run, and only then blocks for the next one. `after_burst`, when
/// given, runs whenever the loop finds no handler ready after running some (and after 64 in
/// a row): the end of a burst, where work held back for it (log lines) is handed on.
void run_event_loop(boost::asio::io_context& ctx, std::chrono::microseconds busy_poll,
                    void (*after_burst)() = nullptr);

} // namespace nodelayd
