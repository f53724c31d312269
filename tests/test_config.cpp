#include "nodelayd/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace nodelayd;
using namespace std::chrono_literals;

namespace {

// Expects build_config to throw a config_error whose message contains every fragment.
void expect_error(const std::optional<config_file>& file, const settings& cli,
                  std::initializer_list<const char*> fragments) {
    try {
        build_config(file, cli, 2);
        FAIL() << "no error";
    } catch (const config_error& e) {
        for (const char* f : fragments)
            EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
                << "message '" << e.what() << "' lacks '" << f << "'";
    }
}

void expect_file_error(const config_file& file, std::initializer_list<const char*> fragments) {
    expect_error(file, {}, fragments);
}

config_file file_with(settings globals, std::vector<std::pair<std::string, settings>> routes) {
    return config_file{"test.conf", std::move(globals), std::move(routes)};
}

// A temporary file removed at scope exit.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string& text) {
        char name[] = "/tmp/nodelayd-test-XXXXXX";
        const int fd = ::mkstemp(name);
        ::close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~temp_file() { std::remove(path.c_str()); }
};

} // namespace

TEST(config, command_line_route_with_defaults) {
    const auto cfg = build_config(std::nullopt,
                                  {{"listen", "127.0.0.1:1143"}, {"upstream", "127.0.0.1:143"}}, 4);
    ASSERT_EQ(cfg.routes.size(), 1u);
    const auto& r = cfg.routes[0];
    EXPECT_EQ(r.name, "default");
    EXPECT_EQ(r.listen, (host_port{"127.0.0.1", 1143}));
    ASSERT_EQ(r.upstreams.size(), 1u);
    EXPECT_EQ(r.client, side_policy{});
    EXPECT_EQ(r.upstream, side_policy{});
    EXPECT_EQ(r.connect_timeout, 5s);
    EXPECT_EQ(cfg.threads, 4u);
    EXPECT_EQ(cfg.log_level, "info");
}

TEST(config, upstream_lists_by_comma_and_repetition) {
    const auto cfg =
        build_config(std::nullopt,
                     {{"listen", "[::1]:1"}, {"upstream", "a:1, b:2"}, {"upstream", "[::1]:3"}}, 1);
    const auto& u = cfg.routes[0].upstreams;
    ASSERT_EQ(u.size(), 3u);
    EXPECT_EQ(u[0], (host_port{"a", 1}));
    EXPECT_EQ(u[1], (host_port{"b", 2}));
    EXPECT_EQ(u[2], (host_port{"::1", 3}));
}

TEST(config, policy_flags_per_side) {
    const auto cfg = build_config(std::nullopt,
                                  {{"listen", ":1"},
                                   {"upstream", "h:2"},
                                   {"client-quickack", "off"},
                                   {"upstream-nodelay", "off"},
                                   {"upstream-cork", "off"},
                                   {"buffer-size", "128k"},
                                   {"pipe-size", "256k"},
                                   {"idle-timeout", "30s"},
                                   {"max-connections", "7"},
                                   {"threads", "3"}},
                                  1);
    const auto& r = cfg.routes[0];
    EXPECT_EQ(r.client.quickack, quickack_mode::off);
    EXPECT_EQ(r.upstream.quickack, quickack_mode::automatic);
    EXPECT_TRUE(r.client.nodelay);
    EXPECT_FALSE(r.upstream.nodelay);
    EXPECT_EQ(r.upstream.cork, cork_mode::off);
    EXPECT_EQ(r.client.cork, cork_mode::automatic);
    EXPECT_EQ(r.buffer_size, 128u * 1024);
    EXPECT_EQ(r.pipe_size, 256u * 1024);
    EXPECT_EQ(r.idle_timeout, 30s);
    EXPECT_EQ(r.max_connections, 7u);
    EXPECT_EQ(cfg.threads, 3u);
}

TEST(config, layers_defaults_then_file_globals_then_route_then_command_line) {
    const auto file = file_with(
        {{"client-quickack", "off"}, {"idle-timeout", "1m"}, {"threads", "2"}},
        {{"imap",
          {{"listen", "127.0.0.1:1143"}, {"upstream", "127.0.0.1:143"}, {"idle-timeout", "2m"}}},
         {"web",
          {{"listen", "127.0.0.1:8080"},
           {"upstream", "127.0.0.1:80,127.0.0.1:81"},
           {"client-quickack", "on"}}}});
    const auto cfg = build_config(file, {{"connect-timeout", "1s"}}, 8);
    ASSERT_EQ(cfg.routes.size(), 2u);
    EXPECT_EQ(cfg.threads, 2u);
    EXPECT_EQ(cfg.routes[0].name, "imap");
    EXPECT_EQ(cfg.routes[0].client.quickack, quickack_mode::off); // file global
    EXPECT_EQ(cfg.routes[0].idle_timeout, 2min);                  // route beats global
    EXPECT_EQ(cfg.routes[1].client.quickack, quickack_mode::on);  // route beats global
    EXPECT_EQ(cfg.routes[1].idle_timeout, 1min);
    EXPECT_EQ(cfg.routes[1].upstreams.size(), 2u);
    for (const auto& r : cfg.routes)
        EXPECT_EQ(r.connect_timeout, 1s); // command line beats everything
}

TEST(config, log_sessions_key) {
    const auto file =
        file_with({{"log-sessions", "errors"}},
                  {{"imap", {{"listen", ":1"}, {"upstream", "h:2"}}},
                   {"web", {{"listen", ":3"}, {"upstream", "h:4"}, {"log-sessions", "off"}}}});
    const auto cfg = build_config(file, {}, 1);
    EXPECT_EQ(cfg.routes[0].log_sessions, session_log::errors); // file global
    EXPECT_EQ(cfg.routes[1].log_sessions, session_log::off);    // route beats global
    for (const auto& r : build_config(file, {{"log-sessions", "yes"}}, 1).routes)
        EXPECT_EQ(r.log_sessions, session_log::on); // command line beats everything
    const auto defaults = build_config(std::nullopt, {{"listen", ":1"}, {"upstream", "h:2"}}, 1);
    EXPECT_EQ(defaults.routes[0].log_sessions, session_log::on);
    expect_error(std::nullopt, {{"listen", ":1"}, {"upstream", "h:2"}, {"log-sessions", "some"}},
                 {"command line", "log-sessions", "'some' is not on, errors or off"});
}

TEST(config, proxy_protocol_keys) {
    const auto file = file_with(
        {{"send-proxy", "v1"}},
        {{"imap", {{"listen", ":1"}, {"upstream", "h:2"}}},
         {"web",
          {{"listen", ":3"}, {"upstream", "h:4"}, {"send-proxy", "v2"}, {"accept-proxy", "on"}}}});
    const auto cfg = build_config(file, {}, 1);
    EXPECT_EQ(cfg.routes[0].send_proxy, proxy_version::v1); // file global
    EXPECT_FALSE(cfg.routes[0].accept_proxy);               // built-in default
    EXPECT_EQ(cfg.routes[1].send_proxy, proxy_version::v2); // route beats global
    EXPECT_TRUE(cfg.routes[1].accept_proxy);

    const auto cli = build_config(file, {{"send-proxy", "off"}, {"accept-proxy", "yes"}}, 1);
    for (const auto& r : cli.routes) {
        EXPECT_EQ(r.send_proxy, proxy_version::off); // command line beats everything
        EXPECT_TRUE(r.accept_proxy);
    }
    const auto defaults = build_config(std::nullopt, {{"listen", ":1"}, {"upstream", "h:2"}}, 1);
    EXPECT_EQ(defaults.routes[0].send_proxy, proxy_version::off);
    EXPECT_FALSE(defaults.routes[0].accept_proxy);

    expect_error(std::nullopt, {{"listen", ":1"}, {"upstream", "h:2"}, {"send-proxy", "v3"}},
                 {"command line", "send-proxy", "'v3' is not off, v1 or v2"});
    expect_file_error(
        file_with({}, {{"web", {{"listen", ":1"}, {"upstream", "h:2"}, {"accept-proxy", "v2"}}}}),
        {"route 'web'", "accept-proxy", "not on or off"});
}

TEST(config, command_line_route_beside_file_routes) {
    const auto file = file_with({}, {{"imap", {{"listen", ":1"}, {"upstream", "h:2"}}}});
    const auto cfg = build_config(file, {{"listen", ":3"}, {"upstream", "h:4"}}, 1);
    ASSERT_EQ(cfg.routes.size(), 2u);
    EXPECT_EQ(cfg.routes[1].name, "default");
}

TEST(config, errors_name_the_key_and_problem) {
    const settings base{{"listen", ":1"}, {"upstream", "h:2"}};
    auto with = [&](std::pair<std::string, std::string> kv) {
        auto s = base;
        s.push_back(std::move(kv));
        return s;
    };
    expect_error(std::nullopt, with({"client-quickack", "maybe"}),
                 {"client-quickack", "not on, auto or off"});
    expect_error(std::nullopt, with({"busy-poll", "1s"}), {"busy-poll", "off or a duration"});
    expect_error(std::nullopt, with({"busy-poll", "20ms"}), {"busy-poll", "longer than 10ms"});
    expect_error(std::nullopt, with({"client-cork", "on"}), {"client-cork", "auto or off"});
    expect_error(std::nullopt, with({"idle-timeout", "soon"}), {"idle-timeout", "duration"});
    expect_error(std::nullopt, with({"buffer-size", "1k"}), {"buffer-size", "out of range"});
    expect_error(std::nullopt, with({"pipe-size", "512m"}), {"pipe-size", "out of range"});
    expect_error(std::nullopt, with({"threads", "0"}), {"threads", "out of range"});
    expect_error(std::nullopt, with({"log-level", "loud"}), {"log-level", "loud"});
    expect_error(std::nullopt, {{"listen", "nohost"}, {"upstream", "h:2"}},
                 {"listen", "HOST:PORT"});
    expect_error(std::nullopt, {{"listen", ":1"}, {"upstream", "h:0"}}, {"upstream", "0"});
    expect_error(std::nullopt, {{"listen", ":1"}}, {"--listen needs --upstream"});
    expect_error(std::nullopt, {{"upstream", "h:1"}}, {"--upstream needs --listen"});
    expect_error(std::nullopt, {}, {"no routes"});
}

TEST(config, file_errors_name_file_route_and_key) {
    expect_file_error(file_with({{"bogus", "1"}}, {}), {"test.conf", "unknown key 'bogus'"});
    expect_file_error(
        file_with({}, {{"imap", {{"listen", ":1"}, {"upstream", "h:1"}, {"tpyo", "x"}}}}),
        {"test.conf", "route 'imap'", "unknown key 'tpyo'"});
    expect_file_error(
        file_with({}, {{"imap", {{"listen", ":1"}, {"upstream", "h:1"}, {"threads", "2"}}}}),
        {"route 'imap'", "'threads' is global"});
    expect_file_error(file_with({{"listen", ":1"}}, {}), {"'listen' belongs in a [route.NAME]"});
    expect_file_error(file_with({}, {{"imap", {{"upstream", "h:1"}}}}),
                      {"route 'imap'", "'listen' is missing"});
    expect_file_error(file_with({}, {{"imap", {{"listen", ":1"}}}}),
                      {"route 'imap'", "'upstream' is missing"});
    expect_file_error(
        file_with({}, {{"imap", {{"listen", ":1"}, {"listen", ":2"}, {"upstream", "h:1"}}}}),
        {"'listen' is given more than once"});
    expect_file_error(file_with({}, {{"a", {{"listen", "127.0.0.1:5"}, {"upstream", "h:1"}}},
                                     {"b", {{"listen", "127.0.0.1:5"}, {"upstream", "h:1"}}}}),
                      {"route 'b'", "already used by route 'a'"});
    expect_error(file_with({}, {{"default", {{"listen", ":1"}, {"upstream", "h:1"}}}}),
                 {{"listen", ":2"}, {"upstream", "h:1"}}, {"route 'default'"});
}

TEST(config, reads_ini_files) {
    temp_file f("# comment\nthreads = 2\nclient-quickack = off\n\n[route.imap]\n"
                "listen = 127.0.0.1:1143\nupstream = 127.0.0.1:143\nupstream = 127.0.0.1:144\n");
    const auto file = read_config_file(f.path);
    EXPECT_EQ(file.globals.size(), 2u);
    ASSERT_EQ(file.routes.size(), 1u);
    EXPECT_EQ(file.routes[0].first, "imap");
    const auto cfg = build_config(file, {}, 1);
    EXPECT_EQ(cfg.routes[0].upstreams.size(), 2u);
    EXPECT_EQ(cfg.routes[0].client.quickack, quickack_mode::off);
}

TEST(config, file_syntax_errors) {
    temp_file bad_line("[route.x]\nthis line has no equals sign\n");
    EXPECT_THROW(read_config_file(bad_line.path), config_error);
    temp_file bad_section("[server.x]\nlisten = :1\n");
    try {
        read_config_file(bad_section.path);
        FAIL();
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find("unknown section [server.x]"), std::string::npos);
    }
    EXPECT_THROW(read_config_file("/nonexistent/nodelayd.conf"), config_error);
}

// Found by fuzz_config: a bad line holding a placeholder of Boost's message template made the
// message grow forever (a hang, then out of memory) at startup, --check and reload.
TEST(config, a_bad_line_is_named_whatever_it_holds) {
    for (const char* raw :
         {"[route.x %invalid_line%", "listen %canonical_option% %option%", "no equals sign"}) {
        const std::string line = raw;
        std::istringstream text("threads = 2\n" + line + "\n");
        try {
            parse_config(text, "t.conf");
            FAIL() << "accepted '" << line << "'";
        } catch (const config_error& e) {
            EXPECT_EQ(std::string(e.what()), "t.conf: invalid line '" + line + "'");
        }
    }
}

TEST(config, parses_text_as_read_config_file_does) {
    std::istringstream text("threads = 2\n[route.imap]\nlisten = 127.0.0.1:1143\n"
                            "upstream = 127.0.0.1:143\n");
    const auto file = parse_config(text, "inline.conf");
    EXPECT_EQ(file.path, "inline.conf");
    ASSERT_EQ(file.routes.size(), 1U);
    EXPECT_EQ(file.routes[0].first, "imap");
    EXPECT_EQ(build_config(file, {}, 1).threads, 2U);
    std::istringstream bad("[server.x]\nlisten = :1\n");
    try {
        parse_config(bad, "inline.conf");
        FAIL() << "no error";
    } catch (const config_error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("inline.conf: unknown section [server.x]", 0), 0U)
            << e.what();
    }
}
