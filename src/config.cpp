#include "nodelayd/config.hpp"

#include "nodelayd/values.hpp"

#include <boost/program_options/errors.hpp>
#include <boost/program_options/parsers.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <set>

namespace nodelayd {
namespace {

namespace po = boost::program_options;

using route_setter = std::function<void(route_config&, const std::string&)>;

// Policy keys exist once per side; one table builds both sides' setters.
void add_side_keys(std::map<std::string, route_setter>& table, const std::string& prefix,
                   side_policy route_config::*side) {
    table[prefix + "-nodelay"] = [side](route_config& r, const std::string& v) {
        (r.*side).nodelay = parse_switch(v);
    };
    table[prefix + "-quickack"] = [side](route_config& r, const std::string& v) {
        (r.*side).quickack = parse_quickack_mode(v);
    };
    table[prefix + "-cork"] = [side](route_config& r, const std::string& v) {
        (r.*side).cork = parse_cork_mode(v);
    };
}

void add_upstreams(route_config& r, const std::string& value) {
    std::size_t start = 0;
    while (start <= value.size()) {
        auto comma = value.find(',', start);
        if (comma == std::string::npos)
            comma = value.size();
        auto item = value.substr(start, comma - start);
        item.erase(0, item.find_first_not_of(" \t"));
        item.erase(item.find_last_not_of(" \t") + 1);
        auto hp = parse_host_port(item);
        if (hp.port == 0)
            throw std::invalid_argument("'" + item + "': upstream port must not be 0");
        r.upstreams.push_back(std::move(hp));
        start = comma + 1;
    }
}

// A per-direction buffer or pipe: 4k..256m.
std::size_t parse_buffer_size(const std::string& v) {
    const std::size_t size = parse_size(v);
    if (size < 4096 || size > (256u << 20))
        throw std::invalid_argument("'" + v + "' is out of range 4k..256m");
    return size;
}

const std::map<std::string, route_setter>& route_setters() {
    static const auto table = [] {
        std::map<std::string, route_setter> t;
        t["listen"] = [](route_config& r, const std::string& v) { r.listen = parse_host_port(v); };
        t["upstream"] = add_upstreams;
        add_side_keys(t, "client", &route_config::client);
        add_side_keys(t, "upstream", &route_config::upstream);
        t["connect-timeout"] = [](route_config& r, const std::string& v) {
            r.connect_timeout = parse_duration(v);
        };
        t["idle-timeout"] = [](route_config& r, const std::string& v) {
            r.idle_timeout = parse_duration(v);
        };
        t["half-closed-timeout"] = [](route_config& r, const std::string& v) {
            r.half_closed_timeout = parse_duration(v);
        };
        t["max-connections"] = [](route_config& r, const std::string& v) {
            r.max_connections = parse_count(v, 1, 10'000'000);
        };
        t["splice"] = [](route_config& r, const std::string& v) { r.splice = parse_switch(v); };
        t["pipe-size"] = [](route_config& r, const std::string& v) {
            r.pipe_size = parse_buffer_size(v);
        };
        t["buffer-size"] = [](route_config& r, const std::string& v) {
            r.buffer_size = parse_buffer_size(v);
        };
        t["send-proxy"] = [](route_config& r, const std::string& v) {
            r.send_proxy = parse_proxy_version(v);
        };
        t["accept-proxy"] = [](route_config& r, const std::string& v) {
            r.accept_proxy = parse_switch(v);
        };
        t["log-sessions"] = [](route_config& r, const std::string& v) {
            r.log_sessions = parse_session_log(v);
        };
        return t;
    }();
    return table;
}

bool is_route_only(const std::string& key) {
    return key == "listen" || key == "upstream";
}

// Applies one layer of settings to a route; `where` prefixes error messages.
void apply_route_settings(route_config& route, const settings& layer, const std::string& where,
                          bool allow_route_only) {
    const auto& table = route_setters();
    std::set<std::string> seen;
    bool upstream_reset = false;
    for (const auto& [key, value] : layer) {
        const auto it = table.find(key);
        if (it == table.end())
            continue; // global keys; unknown keys were rejected earlier
        if (is_route_only(key) && !allow_route_only)
            continue;
        if (key != "upstream" && !seen.insert(key).second)
            throw config_error(where + "key '" + key + "' is given more than once");
        if (key == "upstream" && !upstream_reset) {
            // A layer's upstream list replaces, never extends, the one below it.
            route.upstreams.clear();
            upstream_reset = true;
        }
        try {
            it->second(route, value);
        } catch (const std::invalid_argument& e) {
            throw config_error(where + "key '" + key + "': " + e.what());
        }
    }
}

void check_keys(const settings& layer, const std::string& where, bool in_route) {
    const auto& rk = route_keys();
    const auto& gk = global_keys();
    for (const auto& [key, value] : layer) {
        const bool is_route_key = std::find(rk.begin(), rk.end(), key) != rk.end();
        const bool is_global_key = std::find(gk.begin(), gk.end(), key) != gk.end();
        if (in_route && is_global_key)
            throw config_error(where + "key '" + key +
                               "' is global: set it outside [route.NAME] sections");
        if (!is_route_key && !is_global_key)
            throw config_error(where + "unknown key '" + key + "'");
    }
}

std::optional<std::string> last_value(const settings& layer, const std::string& key) {
    std::optional<std::string> out;
    for (const auto& [k, v] : layer)
        if (k == key)
            out = v;
    return out;
}

void apply_globals(daemon_config& cfg, const settings& layer, const std::string& where) {
    auto wrap = [&](const std::string& key, const std::function<void(const std::string&)>& f) {
        if (const auto v = last_value(layer, key)) {
            try {
                f(*v);
            } catch (const std::invalid_argument& e) {
                throw config_error(where + "key '" + key + "': " + e.what());
            }
        }
    };
    wrap("threads", [&](const std::string& v) { cfg.threads = parse_count(v, 1, 256); });
    wrap("log-level", [&](const std::string& v) {
        static const std::set<std::string> levels{"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};
        if (!levels.contains(v))
            throw std::invalid_argument(
                "'" + v + "' is not one of trace, debug, info, warn, error, critical, off");
        cfg.log_level = v;
    });
    wrap("stats", [&](const std::string& v) {
        cfg.stats.reset();
        cfg.stats_path.clear();
        if (v == "off")
            return;
        if (v.starts_with("/"))
            cfg.stats_path = v;
        else
            cfg.stats = parse_host_port(v);
    });
    wrap("shutdown-timeout",
         [&](const std::string& v) { cfg.shutdown_timeout = parse_duration(v); });
    wrap("busy-poll", [&](const std::string& v) { cfg.busy_poll = parse_busy_poll(v); });
}

void validate_route(const route_config& r, const std::string& where) {
    if (r.listen.host.empty())
        throw config_error(where + "key 'listen' is missing");
    if (r.upstreams.empty())
        throw config_error(where + "key 'upstream' is missing");
}

} // namespace

const std::vector<std::string>& route_keys() {
    static const auto keys = [] {
        std::vector<std::string> k;
        for (const auto& [key, setter] : route_setters())
            k.push_back(key);
        return k;
    }();
    return keys;
}

const std::vector<std::string>& global_keys() {
    static const std::vector<std::string> keys{"threads", "log-level", "stats", "shutdown-timeout",
                                               "busy-poll"};
    return keys;
}

config_file read_config_file(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw config_error(path + ": cannot open config file");
    return parse_config(in, path);
}

config_file parse_config(std::istream& in, const std::string& path) {
    config_file out;
    out.path = path;
    po::parsed_options parsed(nullptr);
    try {
        po::options_description none;
        parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    } catch (const po::invalid_config_file_syntax& e) {
        // Not e.what(): it substitutes the line into its template until no placeholder is
        // left, and a line holding "%invalid_line%" makes that loop grow forever.
        throw config_error(path + ": invalid line '" + e.tokens() + "'");
    } catch (const po::error& e) {
        throw config_error(path + ": " + e.what());
    }
    for (const auto& opt : parsed.options) {
        const std::string& key = opt.string_key;
        const std::string value = opt.value.empty() ? std::string() : opt.value.front();
        const auto dot = key.rfind('.');
        if (dot == std::string::npos) {
            out.globals.emplace_back(key, value);
            continue;
        }
        const std::string section = key.substr(0, dot);
        if (section.rfind("route.", 0) != 0 || section.size() == 6)
            throw config_error(path + ": unknown section [" + section +
                               "]: sections are [route.NAME]");
        const std::string name = section.substr(6);
        auto it = std::find_if(out.routes.begin(), out.routes.end(),
                               [&](const auto& r) { return r.first == name; });
        if (it == out.routes.end()) {
            out.routes.emplace_back(name, settings{});
            it = std::prev(out.routes.end());
        }
        it->second.emplace_back(key.substr(dot + 1), value);
    }
    return out;
}

daemon_config build_config(const std::optional<config_file>& file, const settings& command_line,
                           std::size_t default_threads) {
    daemon_config cfg;
    cfg.threads = std::clamp<std::size_t>(default_threads, 1, 256);
    const std::string file_where = file ? file->path + ": " : std::string();
    check_keys(command_line, "command line: ", false);
    if (file) {
        check_keys(file->globals, file_where, false);
        for (const auto& [name, layer] : file->routes)
            check_keys(layer, file_where + "route '" + name + "': ", true);
        for (const auto& key : {"listen", "upstream"})
            if (last_value(file->globals, key))
                throw config_error(file_where + "key '" + std::string(key) +
                                   "' belongs in a [route.NAME] section");
        apply_globals(cfg, file->globals, file_where);
    }
    apply_globals(cfg, command_line, "command line: ");

    // Route defaults: built-in, then file globals; every route starts from them.
    route_config defaults;
    if (file)
        apply_route_settings(defaults, file->globals, file_where, false);

    auto finish = [&](route_config& r, const std::string& where) {
        apply_route_settings(r, command_line, "command line: ", false);
        validate_route(r, where);
        cfg.routes.push_back(std::move(r));
    };
    if (file) {
        for (const auto& [name, layer] : file->routes) {
            const std::string where = file_where + "route '" + name + "': ";
            route_config r = defaults;
            r.name = name;
            apply_route_settings(r, layer, where, true);
            finish(r, where);
        }
    }
    const bool cli_listen = last_value(command_line, "listen").has_value();
    const bool cli_upstream = last_value(command_line, "upstream").has_value();
    if (cli_listen || cli_upstream) {
        if (!cli_listen)
            throw config_error("command line: --upstream needs --listen");
        if (!cli_upstream)
            throw config_error("command line: --listen needs --upstream");
        route_config r = defaults;
        r.name = "default";
        if (std::any_of(cfg.routes.begin(), cfg.routes.end(),
                        [](const auto& x) { return x.name == "default"; }))
            throw config_error("command line: --listen defines route 'default', which the "
                               "config file defines too");
        apply_route_settings(r, command_line, "command line: ", true);
        finish(r, "command line: ");
    }
    if (cfg.routes.empty())
        throw config_error("no routes: give --listen and --upstream, or --config FILE with "
                           "[route.NAME] sections");

    for (std::size_t i = 0; i < cfg.routes.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (cfg.routes[i].listen == cfg.routes[j].listen && cfg.routes[i].listen.port != 0)
                throw config_error("route '" + cfg.routes[i].name +
                                   "': key 'listen': " + cfg.routes[i].listen.str() +
                                   " is already used by route '" + cfg.routes[j].name + "'");
    return cfg;
}

} // namespace nodelayd
