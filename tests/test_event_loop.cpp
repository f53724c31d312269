#include "nodelayd/event_loop.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <ctime>
#include <thread>

using namespace nodelayd;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// CPU time the calling thread has used.
std::chrono::nanoseconds thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Runs the loop on a thread with work that ends when `stop_after` passes; returns the CPU
// time the loop thread used.
std::chrono::nanoseconds cpu_of_loop(std::chrono::microseconds busy_poll,
                                     std::chrono::milliseconds stop_after) {
    asio::io_context ctx(1);
    asio::steady_timer timer(ctx, stop_after);
    timer.async_wait([](const boost::system::error_code&) {});
    std::chrono::nanoseconds used{};
    std::thread t([&] {
        const auto before = thread_cpu();
        run_event_loop(ctx, busy_poll);
        used = thread_cpu() - before;
    });
    t.join();
    return used;
}

} // namespace

TEST(event_loop, runs_handlers_and_returns_when_out_of_work) {
    for (const auto poll : {0us, 50us}) {
        asio::io_context ctx(1);
        int ran = 0;
        asio::post(ctx, [&] {
            ++ran;
            asio::post(ctx, [&] { ++ran; });
        });
        run_event_loop(ctx, poll);
        EXPECT_EQ(ran, 2) << "busy-poll " << poll.count() << "us";
        EXPECT_TRUE(ctx.stopped());
    }
}

TEST(event_loop, stop_ends_it_while_work_remains) {
    for (const auto poll : {0us, 1000us}) {
        asio::io_context ctx(1);
        auto guard = asio::make_work_guard(ctx);
        std::thread t([&] { run_event_loop(ctx, poll); });
        std::this_thread::sleep_for(20ms);
        ctx.stop();
        t.join(); // a hang here is the failure (ctest's timeout)
        SUCCEED();
    }
}

TEST(event_loop, handlers_posted_from_another_thread_run_while_it_polls) {
    asio::io_context ctx(1);
    auto guard = asio::make_work_guard(ctx);
    std::atomic<int> ran{0};
    std::thread t([&] { run_event_loop(ctx, 10'000us); });
    for (int i = 0; i < 100; ++i)
        asio::post(ctx, [&] { ++ran; });
    asio::post(ctx, [&] { guard.reset(); });
    t.join();
    EXPECT_EQ(ran.load(), 100);
}

// Without busy-poll an idle loop sleeps; with it, the loop keeps polling after an event for
// the window and then sleeps too: idle costs nothing either way.
TEST(event_loop, busy_poll_spins_only_for_its_window) {
    const auto idle = cpu_of_loop(0us, 300ms);
    // The timer's expiry is the loop's only event: 10 ms of polling after it, at most.
    const auto polled = cpu_of_loop(10'000us, 300ms);
    EXPECT_LT(idle, 20ms);
    EXPECT_LT(polled, 40ms) << "it kept polling long after its window";

    // Events every 2 ms for 200 ms with a 10 ms window: the loop never sleeps between them,
    // where without busy-poll it sleeps before each. Counted as the thread's voluntary
    // context switches (a sched_yield is not one), not as CPU time: under load (ctest -j2
    // in CI) a polling thread's share of the CPU says little (31 ms of 200 seen).
    struct use {
        std::chrono::nanoseconds cpu{};
        long sleeps = 0;
    };
    auto busy = [](std::chrono::microseconds poll) {
        asio::io_context ctx(1);
        asio::steady_timer timer(ctx);
        int left = 100;
        std::function<void()> tick = [&] {
            if (--left == 0)
                return;
            timer.expires_after(2ms);
            timer.async_wait([&](const boost::system::error_code&) { tick(); });
        };
        tick();
        use used;
        std::thread t([&] {
            const auto before = thread_cpu();
            rusage r0{};
            ::getrusage(RUSAGE_THREAD, &r0);
            run_event_loop(ctx, poll);
            rusage r1{};
            ::getrusage(RUSAGE_THREAD, &r1);
            used = {thread_cpu() - before, r1.ru_nvcsw - r0.ru_nvcsw};
        });
        t.join();
        return used;
    };
    const use sleeping = busy(0us);
    EXPECT_LT(sleeping.cpu, 20ms);
    EXPECT_GT(sleeping.sleeps, 80) << "without busy-poll the loop sleeps before each event";
    EXPECT_LT(busy(10'000us).sleeps, 30) << "it slept between events 2 ms apart";
}

namespace {
int bursts = 0;
void count_burst() {
    ++bursts;
}
} // namespace

// The hook marks the end of each burst of ready handlers: once for handlers that were all
// ready together, again when later ones ran, and at least every 64 handlers.
TEST(event_loop, after_burst_runs_once_per_burst_of_ready_handlers) {
    for (const auto poll : {0us, 50us}) {
        asio::io_context ctx(1);
        bursts = 0;
        int ran = 0;
        for (int i = 0; i < 10; ++i)
            asio::post(ctx, [&] { ++ran; });
        run_event_loop(ctx, poll, count_burst);
        EXPECT_EQ(ran, 10);
        EXPECT_EQ(bursts, 1) << "busy-poll " << poll.count() << "us";

        asio::io_context ctx2(1);
        bursts = 0;
        asio::steady_timer timer(ctx2, 20ms);
        asio::post(ctx2, [] {});
        timer.async_wait([](const boost::system::error_code&) {});
        run_event_loop(ctx2, poll, count_burst);
        EXPECT_EQ(bursts, 2) << "a handler 20 ms later is a burst of its own";

        asio::io_context ctx3(1);
        bursts = 0;
        for (int i = 0; i < 200; ++i)
            asio::post(ctx3, [] {});
        run_event_loop(ctx3, poll, count_burst);
        EXPECT_EQ(bursts, 4) << "200 ready handlers: bursts of 64, 64, 64 and 8";
    }
}
