#include "nodelayd/log_sink.hpp"

#include <spdlog/logger.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

using namespace nodelayd;

namespace {

// A logger writing through a batching_sink into a pipe the test reads without blocking.
class log_sink_test : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(::pipe2(fds_, O_NONBLOCK | O_CLOEXEC), 0);
        ::fcntl(fds_[1], F_SETPIPE_SZ, 1 << 20); // room for the size-bound test
        sink_ = std::make_shared<batching_sink>(fds_[1]);
        logger_ = std::make_shared<spdlog::logger>("test", sink_);
        logger_->set_pattern("%l %v");
        logger_->set_level(spdlog::level::trace);
    }
    void TearDown() override {
        ::close(fds_[0]);
        ::close(fds_[1]);
    }
    // Everything written to the pipe so far.
    std::string written() {
        std::string out;
        char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fds_[0], buf, sizeof buf);
            if (n <= 0)
                return out;
            out.append(buf, static_cast<std::size_t>(n));
        }
    }

    int fds_[2] = {-1, -1};
    std::shared_ptr<batching_sink> sink_;
    std::shared_ptr<spdlog::logger> logger_;
};

} // namespace

TEST_F(log_sink_test, writes_each_line_at_once_outside_a_batched_scope) {
    logger_->info("one");
    EXPECT_EQ(written(), "info one\n");
    EXPECT_FALSE(sink_->holding());
}

TEST_F(log_sink_test, holds_a_batched_threads_lines_until_flush) {
    const batching_sink::batched_logging batched;
    logger_->info("one");
    logger_->debug("two");
    EXPECT_EQ(written(), "");
    EXPECT_TRUE(sink_->holding());
    logger_->flush();
    EXPECT_EQ(written(), "info one\ndebug two\n");
    EXPECT_FALSE(sink_->holding());
}

TEST_F(log_sink_test, a_warning_goes_out_at_once_after_what_was_held) {
    const batching_sink::batched_logging batched;
    logger_->info("first");
    logger_->warn("second");
    EXPECT_EQ(written(), "info first\nwarning second\n");
    logger_->error("third");
    EXPECT_EQ(written(), "error third\n");
}

TEST_F(log_sink_test, another_threads_line_takes_the_held_ones_along_in_order) {
    const batching_sink::batched_logging batched;
    logger_->info("held");
    std::thread([&] { logger_->info("from elsewhere"); }).join();
    EXPECT_EQ(written(), "info held\ninfo from elsewhere\n");
}

TEST_F(log_sink_test, held_lines_are_written_once_past_the_bound_without_flush) {
    const batching_sink::batched_logging batched;
    const std::string line(100, 'x');
    std::size_t logged = 0;
    while (logged < batching_sink::max_held) {
        logger_->info(line);
        logged += line.size() + 6; // "info " + '\n'
    }
    const auto out = written();
    EXPECT_GE(out.size(), batching_sink::max_held);
    EXPECT_FALSE(sink_->holding());
}

TEST_F(log_sink_test, the_scope_ends_with_its_thread_flag) {
    {
        const batching_sink::batched_logging batched;
        logger_->info("held");
        logger_->flush();
    }
    written();
    logger_->info("direct");
    EXPECT_EQ(written(), "info direct\n");
}
