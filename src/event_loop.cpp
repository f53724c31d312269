#include "nodelayd/event_loop.hpp"

#include <sched.h>

namespace nodelayd {

void run_event_loop(boost::asio::io_context& ctx, std::chrono::microseconds busy_poll,
                    void (*after_burst)()) {
    using clock = std::chrono::steady_clock;
    // A burst this long ends anyway: a bulk flow that keeps its handlers ready must not hold
    // the log lines of everyone else.
    constexpr std::size_t max_burst = 64;
    std::size_t burst = 0;
    auto end_burst = [&] {
        if (burst > 0 && after_burst != nullptr)
            after_burst();
        burst = 0;
    };
    bool worked = false; // a handler ran since the loop last found nothing ready
    auto last_work = clock::now();
    while (!ctx.stopped()) {
        // poll_one() runs a ready handler, or an epoll_wait with a zero timeout when none is.
        if (ctx.poll_one() > 0) {
            worked = true;
            if (++burst == max_burst)
                end_burst();
            continue;
        }
        end_burst();
        if (ctx.stopped())
            break;
        if (busy_poll.count() > 0) {
            const auto now = clock::now();
            if (worked)
                last_work = now;
            worked = false;
            if (now - last_work < busy_poll) {
                // Another runnable thread on this CPU (the backend, the client) gets it now;
                // without one, this returns at once and the poll goes on.
                sched_yield();
                continue;
            }
        }
        if (ctx.run_one() == 0)
            break;
        worked = true;
        burst = 1;
    }
    end_burst();
}

} // namespace nodelayd
