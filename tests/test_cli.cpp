// Integration tests of the command line and config file: runs the real binary to completion.

#include "nodelayd/version.hpp"
#include "relay_kit.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace {

namespace t = nodelayd::testing;
using namespace std::chrono_literals;

using t::address;
using temp_config = t::temp_file;

/// A port nothing listens on right now (bound by the kernel, then released).
std::uint16_t free_port(bool v6 = false) {
    t::listener l(v6);
    return l.port();
}

/// Whether a fresh socket (no SO_REUSEADDR/SO_REUSEPORT) can bind and listen on the port.
bool port_is_bindable(std::uint16_t port, bool v6 = false) {
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    const socklen_t len = t::loopback_address(v6, port, ss);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 && ::listen(fd, 1) == 0;
    ::close(fd);
    return ok;
}

/// The process exited by itself with a failure status (not 0, not killed, not timed out).
::testing::AssertionResult failed_cleanly(const t::run_result& r) {
    if (r.status > 0 && r.status < 128)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "expected a non-zero exit status, got " << r.status
           << (r.status < 0 ? " (still running after 10 s, killed)" : "") << "; output:\n"
           << r.output;
}

const std::string full_config = R"(# every key, globally and per route
threads = 1
log-level = warn
stats = 127.0.0.1:0
shutdown-timeout = 2s
idle-timeout = 1m
connect-timeout = 2s
client-quickack = on

[route.plain]
listen = 127.0.0.1:0
upstream = 127.0.0.1:8080, [::1]:8081
client-nodelay = on
client-quickack = off
client-cork = auto
upstream-nodelay = off
upstream-quickack = on
upstream-cork = off
connect-timeout = 250ms
idle-timeout = 30s
max-connections = 100
buffer-size = 128k

[route.v6]
listen = [::1]:0
upstream = localhost:8082
)";

// ---------------------------------------------------------------------------------------------

// A sanitizer report in the daemon's output fails the test that ran it: faked here with markers
// the daemon prints itself, in a config path (the error names it) and a route name (logged).
TEST(cli, a_sanitizer_report_in_the_output_fails_the_test) {
    EXPECT_NONFATAL_FAILURE(t::run_nodelayd({"--check", "--config", "/nonexistent/runtime error:"}),
                            "holds a sanitizer report");
    const std::string path =
        ::testing::TempDir() + "nodelayd_test_cli_marker_" + std::to_string(::getpid()) + ".conf";
    std::ofstream(path) << "[route.WARNING: ThreadSanitizer]\nlisten = 127.0.0.1:0\n"
                           "upstream = 127.0.0.1:9\n";
    const auto start_and_stop = [&path] { t::proxy_process p({"--config", path}); };
    EXPECT_NONFATAL_FAILURE(start_and_stop(), "holds a sanitizer report");
    ::unlink(path.c_str());
    EXPECT_FALSE(t::has_sanitizer_report("info route=imap listening on 127.0.0.1:1143"));
    EXPECT_TRUE(t::has_sanitizer_report("==1==ERROR: LeakSanitizer: detected memory leaks"));
}

TEST(cli, version_prints_name_and_version) {
    for (const char* flag : {"--version", "-V"}) {
        const auto r = t::run_nodelayd({flag});
        EXPECT_EQ(r.status, 0) << flag;
        EXPECT_EQ(r.output, std::string("nodelayd ") + nodelayd::version + "\n") << flag;
    }
}

TEST(cli, help_describes_the_options) {
    for (const char* flag : {"--help", "-h"}) {
        const auto r = t::run_nodelayd({flag});
        EXPECT_EQ(r.status, 0) << flag;
        EXPECT_NE(r.output.find("Usage:"), std::string::npos) << r.output;
        for (const char* option : {"--listen", "--upstream", "--config", "--check",
                                   "--idle-timeout", "--client-quickack", "--upstream-cork"})
            EXPECT_NE(r.output.find(option), std::string::npos) << option << " in\n" << r.output;
    }
}

TEST(cli, check_accepts_a_full_config_file) {
    temp_config cfg(full_config);
    const auto r = t::run_nodelayd({"--config", cfg.path(), "--check"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("configuration OK: 2 route(s)"), std::string::npos) << r.output;
}

TEST(cli, check_accepts_a_command_line_route_with_every_option) {
    const auto r = t::run_nodelayd({"--listen",
                                    "127.0.0.1:0",
                                    "--upstream",
                                    "127.0.0.1:8080,[::1]:8081",
                                    "--threads",
                                    "2",
                                    "--log-level",
                                    "debug",
                                    "--shutdown-timeout",
                                    "1500ms",
                                    "--client-nodelay",
                                    "off",
                                    "--client-quickack",
                                    "yes",
                                    "--client-cork",
                                    "off",
                                    "--upstream-nodelay",
                                    "true",
                                    "--upstream-quickack",
                                    "0",
                                    "--upstream-cork",
                                    "auto",
                                    "--connect-timeout",
                                    "1s",
                                    "--idle-timeout",
                                    "2m",
                                    "--max-connections",
                                    "5",
                                    "--buffer-size",
                                    "1m",
                                    "--check"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("configuration OK: 1 route(s)"), std::string::npos) << r.output;
}

TEST(cli, check_does_not_bind_anything) {
    // --check on a port another socket holds still succeeds: it opens no listener.
    t::listener holder;
    temp_config cfg("[route.a]\nlisten = " + address(false, holder.port()) +
                    "\nupstream = 127.0.0.1:8080\n");
    const auto r = t::run_nodelayd({"--config", cfg.path(), "--check"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
    EXPECT_EQ(t::listening_sockets(holder.port()), 1);
}

// ---------------------------------------------------------------------------------------------
// Configuration errors: each exits non-zero with a message naming the key and the problem.

struct error_case {
    std::string name;
    /// Config file contents; empty means no --config.
    std::string config;
    std::vector<std::string> args;
    /// Substrings the output must contain; "%CONFIG%" stands for the config file's path.
    std::vector<std::string> expect;
};

void PrintTo(const error_case& c, std::ostream* os) {
    *os << c.name;
}

const std::string route_a = "[route.a]\nlisten = 127.0.0.1:0\nupstream = 127.0.0.1:8080\n";
const std::vector<std::string> cli_route{"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:8080"};

std::vector<std::string> with_cli_route(std::vector<std::string> more) {
    std::vector<std::string> args = cli_route;
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

const std::vector<error_case> error_cases = {
    {"unknown_key_in_route",
     route_a + "bogus-key = 1\n",
     {},
     {"%CONFIG%", "route 'a'", "unknown key 'bogus-key'"}},
    {"unknown_global_key",
     "bogus-global = 1\n" + route_a,
     {},
     {"%CONFIG%", "unknown key 'bogus-global'"}},
    {"global_key_in_route",
     route_a + "threads = 2\n",
     {},
     {"route 'a'", "key 'threads'", "global"}},
    {"route_key_outside_section",
     "listen = 127.0.0.1:0\n" + route_a,
     {},
     {"key 'listen'", "[route.NAME]"}},
    {"unknown_section", route_a + "[other]\nx = 1\n", {}, {"%CONFIG%", "[other]"}},
    {"duplicate_key_in_route",
     route_a + "idle-timeout = 1s\nidle-timeout = 2s\n",
     {},
     {"route 'a'", "key 'idle-timeout'", "more than once"}},
    {"bad_switch_in_file",
     route_a + "client-quickack = sometimes\n",
     {},
     {"route 'a'", "key 'client-quickack'", "'sometimes' is not on, auto or off"}},
    {"bad_switch_on_command_line",
     "",
     with_cli_route({"--upstream-nodelay", "maybe"}),
     {"command line", "key 'upstream-nodelay'", "'maybe' is not on or off"}},
    {"bad_cork_mode",
     "",
     with_cli_route({"--client-cork", "on"}),
     {"key 'client-cork'", "'on' is not auto or off"}},
    {"bad_duration_in_file",
     route_a + "connect-timeout = 3 seconds\n",
     {},
     {"route 'a'", "key 'connect-timeout'", "'3 seconds' is not a duration"}},
    {"bad_duration_on_command_line",
     "",
     with_cli_route({"--idle-timeout", "5parsecs"}),
     {"command line", "key 'idle-timeout'", "'5parsecs' is not a duration"}},
    {"zero_duration",
     "",
     with_cli_route({"--shutdown-timeout", "0s"}),
     {"key 'shutdown-timeout'", "greater than zero"}},
    {"negative_duration",
     "",
     with_cli_route({"--connect-timeout", "-1s"}),
     {"key 'connect-timeout'", "'-1s' is not a duration"}},
    {"buffer_size_out_of_range",
     "",
     with_cli_route({"--buffer-size", "1k"}),
     {"key 'buffer-size'", "out of range"}},
    {"threads_out_of_range",
     "",
     with_cli_route({"--threads", "0"}),
     {"key 'threads'", "out of range"}},
    {"max_connections_not_a_number",
     "",
     with_cli_route({"--max-connections", "many"}),
     {"key 'max-connections'", "'many' is not a whole number"}},
    {"unknown_log_level",
     "",
     with_cli_route({"--log-level", "loud"}),
     {"key 'log-level'", "'loud'"}},
    {"missing_upstream_in_file",
     "[route.a]\nlisten = 127.0.0.1:0\n",
     {},
     {"route 'a'", "key 'upstream' is missing"}},
    {"missing_upstream_on_command_line",
     "",
     {"--listen", "127.0.0.1:0"},
     {"--listen needs --upstream"}},
    {"missing_listen_on_command_line",
     "",
     {"--upstream", "127.0.0.1:8080"},
     {"--upstream needs --listen"}},
    {"no_routes_at_all", "", {"--threads", "1"}, {"no routes"}},
    {"listen_without_port",
     "[route.a]\nlisten = 127.0.0.1\nupstream = 127.0.0.1:8080\n",
     {},
     {"route 'a'", "key 'listen'", "'127.0.0.1': expected HOST:PORT"}},
    {"port_out_of_range",
     "",
     {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:70000"},
     {"key 'upstream'", "port must be a number from 0 to 65535"}},
    {"ipv6_without_brackets",
     "",
     {"--listen", "::1:80", "--upstream", "127.0.0.1:8080"},
     {"key 'listen'", "brackets"}},
    {"upstream_port_zero",
     "",
     {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:0"},
     {"key 'upstream'", "must not be 0"}},
    {"empty_upstream_in_list",
     "",
     {"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:8080,"},
     {"key 'upstream'", "empty address"}},
    {"unknown_command_line_option",
     "",
     with_cli_route({"--bogus-option", "1"}),
     {"unrecogni", "--bogus-option"}},
    {"stray_command_line_argument", "", with_cli_route({"stray-argument"}), {"stray-argument"}},
    {"option_given_twice",
     "",
     with_cli_route({"--idle-timeout", "1s", "--idle-timeout", "2s"}),
     {"idle-timeout", "more than once"}},
    {"unresolvable_upstream",
     "",
     {"--listen", "127.0.0.1:0", "--upstream", "no-such-host.invalid:80"},
     {"key 'upstream'", "cannot resolve 'no-such-host.invalid'"}},
    {"unresolvable_listen",
     "",
     {"--listen", "no-such-host.invalid:0", "--upstream", "127.0.0.1:80"},
     {"key 'listen'", "cannot resolve 'no-such-host.invalid'"}},
    {"unresolvable_upstream_in_file",
     route_a + "[route.b]\nlisten = 127.0.0.1:0\nupstream = "
               "127.0.0.1:80,no-such-host.invalid:80\n",
     {},
     {"route 'b'", "key 'upstream'", "no-such-host.invalid"}},
    {"two_routes_same_listen",
     "[route.a]\nlisten = 127.0.0.1:5555\nupstream = 127.0.0.1:8080\n"
     "[route.b]\nlisten = 127.0.0.1:5555\nupstream = 127.0.0.1:8081\n",
     {},
     {"route 'b'", "key 'listen'", "127.0.0.1:5555", "already used by route 'a'"}},
    {"command_line_route_on_a_file_route_listen",
     "[route.a]\nlisten = 127.0.0.1:5555\nupstream = 127.0.0.1:8080\n",
     {"--listen", "127.0.0.1:5555", "--upstream", "127.0.0.1:8081"},
     {"key 'listen'", "already used by route 'a'"}},
    // 127.1 is 127.0.0.1 written differently: both routes would listen on one socket address.
    {"two_routes_same_resolved_listen",
     "[route.a]\nlisten = 127.0.0.1:5555\nupstream = 127.0.0.1:8080\n"
     "[route.b]\nlisten = 127.1:5555\nupstream = 127.0.0.1:8081\n",
     {},
     {"route 'b'", "key 'listen'", "already used by route 'a'"}},
    {"missing_config_file",
     "",
     {"--config", "/nonexistent/nodelayd.ini"},
     {"/nonexistent/nodelayd.ini", "cannot open"}},
};

class cli_error : public ::testing::TestWithParam<error_case> {};

INSTANTIATE_TEST_SUITE_P(config, cli_error, ::testing::ValuesIn(error_cases),
                         [](const ::testing::TestParamInfo<error_case>& info) {
                             return info.param.name;
                         });

TEST_P(cli_error, exits_nonzero_naming_key_and_problem) {
    const auto& c = GetParam();
    std::unique_ptr<temp_config> cfg;
    std::vector<std::string> args;
    if (!c.config.empty()) {
        cfg = std::make_unique<temp_config>(c.config);
        args = {"--config", cfg->path()};
    }
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.emplace_back("--check");
    const auto r = t::run_nodelayd(args);
    EXPECT_TRUE(failed_cleanly(r));
    EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
    for (auto want : c.expect) {
        if (want == "%CONFIG%" && cfg)
            want = cfg->path();
        EXPECT_NE(r.output.find(want), std::string::npos) << "missing '" << want << "' in:\n"
                                                          << r.output;
    }
}

// ---------------------------------------------------------------------------------------------
// Startup failures leave nothing behind.

class cli_bind : public ::testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(loopback, cli_bind, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                             return info.param ? "IPv6" : "IPv4";
                         });

TEST_P(cli_bind, port_in_use_fails_with_bind_error) {
    const bool v6 = GetParam();
    t::listener holder(v6); // no SO_REUSEPORT
    const std::string where = address(v6, holder.port());
    const auto r = t::run_nodelayd(
        {"--listen", where, "--upstream", address(v6, free_port(v6)), "--threads", "2"});
    EXPECT_TRUE(failed_cleanly(r));
    EXPECT_NE(r.output.find("bind"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(where), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;

    // The test listener is still the only one on that port, and it gets the connections.
    EXPECT_EQ(t::listening_sockets(holder.port(), v6), 1);
    const int c = t::connect_to(holder.port(), v6);
    ASSERT_GE(c, 0);
    const int a = holder.accept(2s);
    EXPECT_GE(a, 0) << "a connection to the port did not reach the test listener";
    if (a >= 0)
        ::close(a);
    ::close(c);
}

TEST(cli, bad_value_never_binds_the_listen_port) {
    const std::uint16_t port = free_port();
    const auto r = t::run_nodelayd({"--listen", address(false, port), "--upstream",
                                    "127.0.0.1:8080", "--idle-timeout", "soon"});
    EXPECT_TRUE(failed_cleanly(r));
    EXPECT_NE(r.output.find("key 'idle-timeout'"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
    EXPECT_TRUE(port_is_bindable(port)) << "port " << port << " is taken";
}

TEST(cli, bad_second_route_never_binds_the_first) {
    // Validation and name resolution of every route happen before any listener opens.
    for (const std::string bad : {"max-connections = lots\n", "upstream-cork = maybe\n"}) {
        const std::uint16_t port = free_port();
        temp_config cfg("[route.first]\nlisten = " + address(false, port) +
                        "\nupstream = 127.0.0.1:8080\n[route.second]\nlisten = 127.0.0.1:0\n"
                        "upstream = 127.0.0.1:8081\n" +
                        bad);
        const auto r = t::run_nodelayd({"--config", cfg.path()});
        EXPECT_TRUE(failed_cleanly(r)) << bad;
        EXPECT_NE(r.output.find("route 'second'"), std::string::npos) << r.output;
        EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
        EXPECT_TRUE(port_is_bindable(port)) << "port " << port << " is taken";
    }
    const std::uint16_t port = free_port();
    temp_config cfg("[route.first]\nlisten = " + address(false, port) +
                    "\nupstream = 127.0.0.1:8080\n[route.second]\nlisten = 127.0.0.1:0\n"
                    "upstream = no-such-host.invalid:80\n");
    const auto r = t::run_nodelayd({"--config", cfg.path()});
    EXPECT_TRUE(failed_cleanly(r));
    EXPECT_NE(r.output.find("no-such-host.invalid"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
    EXPECT_TRUE(port_is_bindable(port)) << "port " << port << " is taken";
}

// ---------------------------------------------------------------------------------------------
// The same kinds of error at a real start (no --check): a clear message, a non-zero exit, and
// no socket left bound: the route's fixed port and the stats port are free again afterwards.
// Seen failing with a daemon patched to carry on serving the routes that did bind.

struct startup_error_case {
    std::string name;
    /// Config file for (listen address, held address): empty for none.
    std::function<std::string(const std::string&, const std::string&)> config;
    /// Extra arguments for (listen address, held address).
    std::function<std::vector<std::string>(const std::string&, const std::string&)> args;
    /// Substrings the output must contain; "%HELD%" stands for the held address.
    std::vector<std::string> expect;
};

void PrintTo(const startup_error_case& c, std::ostream* os) {
    *os << c.name;
}

const std::vector<startup_error_case> startup_error_cases = {
    {"unknown_key",
     [](const std::string& listen, const std::string&) {
         return "[route.a]\nlisten = " + listen + "\nupstream = 127.0.0.1:8080\nbogus-key = 1\n";
     },
     nullptr,
     {"route 'a'", "unknown key 'bogus-key'"}},
    {"bad_address",
     nullptr,
     [](const std::string& listen, const std::string&) {
         return std::vector<std::string>{"--listen", listen, "--upstream", "127.0.0.1"};
     },
     {"key 'upstream'", "expected HOST:PORT"}},
    {"unresolvable_host",
     nullptr,
     [](const std::string& listen, const std::string&) {
         return std::vector<std::string>{"--listen", listen, "--upstream",
                                         "no-such-host.invalid:80"};
     },
     {"key 'upstream'", "cannot resolve 'no-such-host.invalid'"}},
    // Route a binds before route b finds its port taken: a's socket must not survive.
    {"second_route_port_in_use",
     [](const std::string& listen, const std::string& held) {
         return "[route.a]\nlisten = " + listen +
                "\nupstream = 127.0.0.1:8080\n[route.b]\nlisten = " + held +
                "\nupstream = 127.0.0.1:8081\n";
     },
     nullptr,
     {"route 'b'", "bind %HELD%", "Address already in use"}},
    {"stats_port_in_use",
     nullptr,
     [](const std::string& listen, const std::string& held) {
         return std::vector<std::string>{"--listen",       listen,    "--upstream",
                                         "127.0.0.1:8080", "--stats", held};
     },
     {"stats: bind %HELD%", "Address already in use"}},
};

class cli_startup_error : public ::testing::TestWithParam<startup_error_case> {};

INSTANTIATE_TEST_SUITE_P(config, cli_startup_error, ::testing::ValuesIn(startup_error_cases),
                         [](const ::testing::TestParamInfo<startup_error_case>& info) {
                             return info.param.name;
                         });

TEST_P(cli_startup_error, exits_nonzero_and_leaves_no_socket_bound) {
    const auto& c = GetParam();
    for (const bool v6 : {false, true}) {
        SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
        // The stats endpoint stays on IPv4 loopback; its held port too, when that is the case.
        const bool stats_case = c.name == "stats_port_in_use";
        t::listener holder(v6 && !stats_case);
        const std::string held = address(v6 && !stats_case, holder.port());
        const std::uint16_t listen_port = free_port(v6);
        const std::uint16_t stats = free_port();
        const std::string listen = address(v6, listen_port);
        std::unique_ptr<temp_config> cfg;
        std::vector<std::string> args;
        if (c.config) {
            cfg = std::make_unique<temp_config>(c.config(listen, held));
            args = {"--config", cfg->path()};
        }
        if (c.args) {
            const auto more = c.args(listen, held);
            args.insert(args.end(), more.begin(), more.end());
        }
        if (!stats_case)
            args.insert(args.end(), {"--stats", address(false, stats)});
        const auto r = t::run_nodelayd(args);
        EXPECT_TRUE(failed_cleanly(r));
        // Configuration errors say "error:"; a failed bind is logged at level critical.
        EXPECT_TRUE(r.output.find("error") != std::string::npos ||
                    r.output.find(" critical ") != std::string::npos)
            << r.output;
        for (auto want : c.expect) {
            if (const auto at = want.find("%HELD%"); at != std::string::npos)
                want.replace(at, 6, held);
            EXPECT_NE(r.output.find(want), std::string::npos) << "missing '" << want << "' in:\n"
                                                              << r.output;
        }
        EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
        EXPECT_TRUE(port_is_bindable(listen_port, v6)) << listen << " is still bound";
        EXPECT_TRUE(port_is_bindable(stats)) << "the stats port " << stats << " is still bound";
        EXPECT_EQ(t::listening_sockets(holder.port(), v6 && !stats_case), 1)
            << "something else listens on the held port";
    }
}

} // namespace
