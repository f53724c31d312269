// Renders a realistic /metrics exposition and runs `promtool check metrics < file` on it
// (Debian package prometheus). Fails — does not skip — when promtool is missing.
//
// As a control it also feeds promtool a deliberately broken copy (a HELP line repeated) and
// requires that one to fail, so a promtool that accepts anything cannot pass this test.
//
//   promtool_check OUTDIR      writes OUTDIR/metrics.prom and OUTDIR/metrics-broken.prom
// The promtool used: $PROMTOOL, else the first `promtool` on $PATH, else /usr/bin/promtool.

#include "nodelayd/stats.hpp"
#include "nodelayd/stats_render.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

using namespace nodelayd;

namespace {

stats_snapshot realistic_snapshot() {
    // Two worker threads' recordings of two routes, one with a name needing escaping.
    stats_snapshot s;
    s.version = "0.1.0";
    s.uptime_seconds = 93.25;
    const char* names[] = {"imap", "a\"b\\c"};
    for (int r = 0; r < 2; ++r) {
        route_snapshot out;
        out.name = names[r];
        out.connections_active = 2 + r;
        for (int thread = 0; thread < 2; ++thread) {
            route_stats t;
            t.connections_total.add(40 + 3 * thread);
            t.refused_total.add(r);
            t.upstream_connect_failures_total.add(thread);
            for (std::uint64_t i = 0; i < 500; ++i) {
                const std::uint64_t v = 3'000 + (i * 104'729) % 2'000'000; // 3 µs .. 2 ms
                t.added_latency[0].record_ns(v);
                t.added_latency[1].record_ns(v / 2 + 800);
                t.bytes_total[0].add(100 + i);
                t.bytes_total[1].add(3 * i);
            }
            t.added_latency[0].record_ns(300'000'000);    // a stalled message
            t.added_latency[1].record_ns(11'000'000'000); // beyond 10 s: +Inf
            t.upstream_connect.record_ns(180'000 + 1'000 * static_cast<std::uint64_t>(thread));
            for (int sd = 0; sd < 2; ++sd) {
                t.writes_total[sd].add(300);
                t.chunks_total[sd].add(420);
                t.peer_stalls_total[sd].add(static_cast<std::uint64_t>(sd + thread));
                t.tcp_rtt[sd].record_ns(45'000 + 10'000 * static_cast<std::uint64_t>(sd));
                t.tcp_segments_out_total[sd].add(1'234);
                t.tcp_retransmits_total[sd].add(static_cast<std::uint64_t>(sd));
            }
            out.add(t);
        }
        s.routes.push_back(out);
    }
    return s;
}

std::string find_promtool() {
    if (const char* env = std::getenv("PROMTOOL"); env && *env)
        return ::access(env, X_OK) == 0 ? env : "";
    if (const char* path = std::getenv("PATH")) {
        std::istringstream dirs(path);
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            const std::string candidate = (dir.empty() ? "." : dir) + "/promtool";
            if (::access(candidate.c_str(), X_OK) == 0)
                return candidate;
        }
    }
    if (::access("/usr/bin/promtool", X_OK) == 0)
        return "/usr/bin/promtool";
    return {};
}

/// Runs `promtool check metrics` with `file` as stdin; its output goes to ours. Returns the
/// exit status, or -1 if it could not run.
int check_metrics(const std::string& promtool, const std::string& file) {
    std::cout << "$ " << promtool << " check metrics < " << file << std::endl;
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::cerr << "fork: " << std::strerror(errno) << "\n";
        return -1;
    }
    if (pid == 0) {
        const int fd = ::open(file.c_str(), O_RDONLY);
        if (fd < 0 || ::dup2(fd, 0) < 0)
            ::_exit(126);
        ::execl(promtool.c_str(), promtool.c_str(), "check", "metrics",
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::cout << "(exit status " << code << ")" << std::endl;
    return code;
}

bool write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
        std::cerr << "cannot write " << path << "\n";
        return false;
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: promtool_check OUTDIR\n";
        return 2;
    }
    const std::string dir = argv[1];
    struct stat st {};
    if (::mkdir(dir.c_str(), 0755) != 0 &&
        !(errno == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
        std::cerr << "FAIL: cannot create directory " << dir << "\n";
        return 1;
    }

    const std::string promtool = find_promtool();
    if (promtool.empty()) {
        std::cerr
            << "FAIL: promtool not found (tried $PROMTOOL, else $PATH and /usr/bin). It comes "
               "with the Debian package prometheus, which scripts/install-deps installs "
               "(apt-get install prometheus).\n";
        return 1;
    }

    const std::string text = render_prometheus(realistic_snapshot());
    const std::string good = dir + "/metrics.prom";
    if (!write_file(good, text))
        return 1;
    const int good_status = check_metrics(promtool, good);
    if (good_status != 0) {
        std::cerr << "FAIL: promtool rejected the exposition in " << good << "\n";
        return 1;
    }

    // Control: repeat the first HELP line; promtool must reject that.
    const auto end_of_first_line = text.find('\n');
    std::string broken = text.substr(0, end_of_first_line + 1) + text;
    const std::string bad = dir + "/metrics-broken.prom";
    if (!write_file(bad, broken))
        return 1;
    const int bad_status = check_metrics(promtool, bad);
    if (bad_status == 0 || bad_status < 0) {
        std::cerr << "FAIL: promtool "
                  << (bad_status == 0 ? "accepted a broken exposition (duplicate HELP)"
                                      : "could not be run on the control")
                  << ", so its verdict on the real one proves nothing\n";
        return 1;
    }
    std::cout << "PASS: promtool accepts " << good << " and rejects the broken control\n";
    return 0;
}
