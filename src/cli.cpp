#include "nodelayd/cli.hpp"

#include <boost/program_options.hpp>

#include <sstream>

namespace nodelayd {

namespace po = boost::program_options;

cli_request parse_command_line(int argc, const char* const* argv) {
    po::options_description general("General");
    general.add_options()("help,h", "print this help and exit")(
        "version,V", "print the version and exit")("config,c",
                                                   po::value<std::string>()->value_name("FILE"),
                                                   "read routes and settings from FILE")(
        "check", "validate the configuration (and resolve its hosts), then exit")(
        "threads", po::value<std::string>()->value_name("N"),
        "worker threads (default: number of CPUs)")(
        "log-level", po::value<std::string>()->value_name("LEVEL"),
        "trace, debug, info (default), warn, error, critical, off")(
        "stats", po::value<std::string>()->value_name("HOST:PORT|PATH|off"),
        "stats endpoint: TCP address, Unix socket path, or off (default 127.0.0.1:9900)")(
        "shutdown-timeout", po::value<std::string>()->value_name("DURATION"),
        "on SIGTERM, time open sessions get to finish (default 30s)")(
        "busy-poll", po::value<std::string>()->value_name("off|DURATION"),
        "keep polling this long after the last event before sleeping: no wake-up latency "
        "between a request and its answer (default 50us)");

    po::options_description route("Single route (a route named 'default')");
    route.add_options()("listen,l", po::value<std::string>()->value_name("HOST:PORT"),
                        "address to accept clients on ([::1]:PORT for IPv6, *:PORT for all)")(
        "upstream,u", po::value<std::vector<std::string>>()->value_name("HOST:PORT[,...]"),
        "upstream servers, round-robin with failover");

    po::options_description policy("Per-route settings (override the config file everywhere)");
    for (const char* side : {"client", "upstream"}) {
        const std::string s(side);
        policy.add_options()((s + "-nodelay").c_str(),
                             po::value<std::string>()->value_name("on|off"),
                             ("TCP_NODELAY on the " + s + " side (default on)").c_str())(
            (s + "-quickack").c_str(), po::value<std::string>()->value_name("on|auto|off"),
            ("re-arm TCP_QUICKACK before reads on the " + s +
             " side: on = after every write to it, auto = until its peer proves it sends "
             "one segment per turn (default auto)")
                .c_str())((s + "-cork").c_str(), po::value<std::string>()->value_name("auto|off"),
                          ("MSG_MORE while the " +
                           std::string(s == "client" ? "upstream" : "client") +
                           " keeps sending full reads, flush when it pauses (default auto)")
                              .c_str());
    }
    policy.add_options()("connect-timeout", po::value<std::string>()->value_name("DURATION"),
                         "per upstream connect attempt (default 5s)")(
        "idle-timeout", po::value<std::string>()->value_name("DURATION"),
        "close sessions with no traffic for this long (default 10m)")(
        "half-closed-timeout", po::value<std::string>()->value_name("DURATION"),
        "close sessions with one direction closed and no traffic for this long (default 1m)")(
        "max-connections", po::value<std::string>()->value_name("N"),
        "open sessions per route (default 10000)")(
        "splice", po::value<std::string>()->value_name("on|off"),
        "move bulk flows with splice(2), without copying them through user space (default on)")(
        "pipe-size", po::value<std::string>()->value_name("SIZE"),
        "kernel pipe per spliced direction: the bytes one splice(2) moves (default 1m)")(
        "buffer-size", po::value<std::string>()->value_name("SIZE"),
        "bytes buffered per direction before reading pauses (default 64k)")(
        "send-proxy", po::value<std::string>()->value_name("off|v1|v2"),
        "send a PROXY protocol header with the client's address to the upstream (default off)")(
        "accept-proxy", po::value<std::string>()->value_name("on|off"),
        "clients must start with a PROXY protocol header, whose address then counts as the "
        "client's (default off)")(
        "log-sessions", po::value<std::string>()->value_name("on|errors|off"),
        "a log line per closed session: every one, only those that did not end normally, or "
        "none (default on)");

    po::options_description all;
    all.add(general).add(route).add(policy);

    cli_request req;
    std::ostringstream usage;
    usage << "Usage: nodelayd --listen HOST:PORT --upstream HOST:PORT[,HOST:PORT...] [options]\n"
             "       nodelayd --config FILE [--check]\n"
          << all;
    req.usage = usage.str();

    po::parsed_options parsed(nullptr);
    try {
        parsed = po::command_line_parser(argc, argv).options(all).run();
        po::variables_map vm;
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw config_error(std::string("command line: ") + e.what());
    }
    for (const auto& opt : parsed.options) {
        const std::string& key = opt.string_key;
        if (opt.position_key >= 0 || key.empty())
            throw config_error(
                "command line: unexpected argument '" +
                (opt.original_tokens.empty() ? std::string() : opt.original_tokens.front()) +
                "' (options start with --)");
        if (key == "help")
            req.help = true;
        else if (key == "version")
            req.version = true;
        else if (key == "check")
            req.check = true;
        else if (key == "config")
            req.config_path = opt.value.front();
        else
            for (const auto& v : opt.value)
                req.values.emplace_back(key, v);
    }
    return req;
}

} // namespace nodelayd
