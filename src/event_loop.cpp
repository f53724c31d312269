#include "nodelayd/event_loop.hpp"

#include <sched.h>

namespace nodelayd {

void run_event_loop(boost::asio::io_context& ctx, std::chrono::microseconds busy_poll) {
    if (busy_poll.count() <= 0) {
        ctx.run();
        return;
    }
    using clock = std::chrono::steady_clock;
    auto last_work = clock::now();
    while (!ctx.stopped()) {
        // poll() runs what is ready, including an epoll_wait with a zero timeout.
        if (ctx.poll() > 0) {
            last_work = clock::now();
            continue;
        }
        if (ctx.stopped())
            break;
        if (clock::now() - last_work < busy_poll) {
            // Another runnable thread on this CPU (the backend, the client) gets it now;
            // without one, this returns at once and the poll goes on.
            sched_yield();
            continue;
        }
        if (ctx.run_one() == 0)
            break;
        last_work = clock::now();
    }
}

} // namespace nodelayd
