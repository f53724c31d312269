#include "nodelayd/edge_wait.hpp"

#include "nodelayd/block_pool.hpp"

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <new>
#include <type_traits>

namespace nodelayd {

namespace asio = boost::asio;
namespace detail = boost::asio::detail;

#if !defined(BOOST_ASIO_HAS_EPOLL) || defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "edge waits need Asio's epoll reactor"
#endif
static_assert(std::is_same_v<detail::reactor, detail::epoll_reactor>);

namespace {

// Four members Asio keeps to itself, reached the one way C++ allows: access is not checked
// on the arguments of an explicit instantiation ([temp.explicit]), so instantiating
// private_member with a member pointer defines a friend that returns it. What for:
// the reactor's epoll descriptor (to add EPOLLRDHUP to a socket's registration), the events
// it registered (kept in step, or Asio's own later EPOLL_CTL_MOD would drop EPOLLRDHUP), the
// events epoll last reported for it (whether the peer's FIN has come), and its "may be ready
// though not reported" flags (false for a socket registered just now: see adopt_socket).
template <typename Tag, typename Tag::type Member> struct private_member {
    friend typename Tag::type member(Tag /*tag*/) { return Member; }
};
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wnon-template-friend"
#endif
struct reactor_epoll_fd {
    using type = int detail::epoll_reactor::*;
    friend type member(reactor_epoll_fd);
};
struct registered_events {
    using type = std::uint32_t detail::epoll_reactor::descriptor_state::*;
    friend type member(registered_events);
};
struct reported_events {
    using type = unsigned int detail::scheduler_operation::*;
    friend type member(reported_events);
};
struct unreported_readiness {
    using type = bool (detail::epoll_reactor::descriptor_state::*)[detail::epoll_reactor::max_ops];
    friend type member(unreported_readiness);
};
#pragma GCC diagnostic pop
template struct private_member<reactor_epoll_fd, &detail::epoll_reactor::epoll_fd_>;
template struct private_member<registered_events,
                               &detail::epoll_reactor::descriptor_state::registered_events_>;
template struct private_member<reported_events, &detail::scheduler_operation::task_result_>;
template struct private_member<unreported_readiness,
                               &detail::epoll_reactor::descriptor_state::try_speculative_>;

// The socket's implementation (descriptor, state bits, reactor registration) is a protected
// member of basic_socket; a derived class may name it.
struct socket_access : tcp_socket {
    static auto& implementation(tcp_socket& s) {
        return (s.*(&socket_access::impl_)).get_implementation();
    }
};

// The reactor of the socket's io_context. use_service() takes the service registry's lock
// and walks its list, so the answer is kept per thread (a worker thread runs one context);
// a service of our own forgets it when that context is destroyed, so that another context
// created at the same address is looked up afresh.
thread_local asio::execution_context* cached_context = nullptr;
thread_local detail::reactor* cached_reactor = nullptr;

class reactor_cache_guard : public asio::execution_context::service {
public:
    using key_type = reactor_cache_guard;
    static inline asio::execution_context::id id;
    explicit reactor_cache_guard(asio::execution_context& ctx) : service(ctx) {}
    reactor_cache_guard(const reactor_cache_guard&) = delete;
    reactor_cache_guard& operator=(const reactor_cache_guard&) = delete;
    ~reactor_cache_guard() override {
        if (cached_context == &context()) {
            cached_context = nullptr;
            cached_reactor = nullptr;
        }
    }

private:
    void shutdown() override {}
};

detail::reactor& reactor_of(tcp_socket& s) {
    auto& ctx = s.get_executor().context();
    if (cached_context != &ctx) {
        cached_reactor = &asio::use_service<detail::reactor>(ctx);
        asio::use_service<reactor_cache_guard>(ctx);
        cached_context = &ctx;
    }
    return *cached_reactor;
}

// A reactor operation whose "perform" reports ready and exhausted: run from an epoll event it
// completes the wait; run at once because the reactor saw an edge that no operation was
// waiting for (Asio's "speculative" attempt) it completes the wait too. "Exhausted" clears
// that flag, so the next wait waits for a new edge, without a syscall either way.
class edge_op : public detail::reactor_op {
public:
    edge_op(edge_callback done, void* target, std::uint8_t tag)
        : reactor_op(boost::system::error_code(), &edge_op::do_perform, &edge_op::do_complete),
          done_(done), target_(target), tag_(tag) {}

    static void* operator new(std::size_t size) { return pool_allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pool_deallocate(p, size); }

private:
    static status do_perform(reactor_op* /*op*/) { return done_and_exhausted; }

    // `owner` is null when the io_context is destroyed with the wait pending: free only.
    static void do_complete(void* owner, detail::operation* base,
                            const boost::system::error_code& /*result*/, std::size_t /*bytes*/) {
        auto* op = static_cast<edge_op*>(base);
        const edge_callback done = op->done_;
        void* target = op->target_;
        const std::uint8_t tag = op->tag_;
        const bool aborted = static_cast<bool>(op->ec_);
        delete op; // before the callback, which may start the next wait
        if (owner != nullptr)
            done(target, tag, aborted);
    }

    edge_callback done_;
    void* target_;
    std::uint8_t tag_;
};

} // namespace

void async_edge_wait(tcp_socket& socket, tcp_socket::wait_type what, edge_callback done,
                     void* target, std::uint8_t tag) {
    auto& impl = socket_access::implementation(socket);
    const int op_type =
        what == tcp_socket::wait_write ? detail::reactor::write_op : detail::reactor::read_op;
    // Allowed to complete at once (speculatively) only when the reactor saw an edge since
    // the last wait; otherwise queued without an epoll_ctl (unless the socket was registered
    // by plain assign and waits to write for the first time: Asio then adds EPOLLOUT).
    reactor_of(socket).start_op(op_type, impl.socket_, impl.reactor_data_,
                                new edge_op(done, target, tag), false, true);
}

void adopt_socket(tcp_socket& socket, const boost::asio::ip::tcp& protocol, int fd, bool connecting,
                  boost::system::error_code& ec) {
    socket.assign(protocol, fd, ec);
    if (ec) {
        ::close(fd);
        return;
    }
    auto& impl = socket_access::implementation(socket);
    impl.state_ |= detail::socket_ops::internal_non_blocking;
    impl.state_ &= static_cast<detail::socket_ops::state_type>(~detail::socket_ops::possible_dup);
    // Asio starts a registered socket as "may be ready" for everything, so that its first
    // wait of each kind would end at once, only to find nothing to read (for the upstream,
    // always: it has not been asked anything yet). Registering makes epoll report whatever is
    // ready already (ep_insert, ep_modify poll the socket), so the first wait can wait too.
    for (bool& unreported : impl.reactor_data_->*member(unreported_readiness{}))
        unreported = false;
    // EPOLLOUT as well, as HAProxy registers its sockets: the registration then never needs
    // changing again (Asio would add EPOLLOUT with a MOD the first time a socket waits to
    // write). Registered events raise no extra epoll events: a wake-up for incoming data
    // reports the socket's writability with it, and ACKs wake only a socket that was full.
    auto& events = impl.reactor_data_->*member(registered_events{});
    events |= EPOLLRDHUP | EPOLLOUT;
    if (connecting)
        return; // the connect's write wait re-registers the socket with these events
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = impl.reactor_data_;
    if (::epoll_ctl(reactor_of(socket).*member(reactor_epoll_fd{}), EPOLL_CTL_MOD, fd, &ev) != 0) {
        ec.assign(errno, boost::system::system_category());
        boost::system::error_code ignored;
        socket.close(ignored);
    }
}

bool peer_may_have_closed(tcp_socket& socket) {
    auto* state = socket_access::implementation(socket).reactor_data_;
    if (state == nullptr)
        return true;
    // descriptor_state is a scheduler_operation (a private base, which a C-style cast may
    // name): the operation that carries a descriptor's epoll events to its queued waits.
    // NOLINTNEXTLINE(google-readability-casting)
    const auto* reported = (const detail::scheduler_operation*)state;
    return (reported->*member(reported_events{}) & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
}

} // namespace nodelayd
