// Issue: the runtime under faults. The io_uring backend and the sockets: closing a socket
// with operations in flight, a submission ring that is full, kernels without multishot
// poll, cancel by fd or an operation corio needs, a cancelled operation that meets
// EAGAIN, and the blocking mode of native_handle(). Faults the kernel here would not make
// are played through the backend's test hooks; each test checks the same behaviour on
// epoll, where it applies, or at least that the loop works there.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>  // NOLINT(modernize-deprecated-headers): clock_gettime is POSIX
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <corio/corio.hpp>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

/// How a bounded piece of work ended.
struct ending {
    bool ok = false;
    bool cancelled = false;
    bool timed_out = false;
    std::size_t count = 0;  // what a transfer returned
    std::error_code code;
    std::string what;
};

/// An operation ended by its socket's close: promptly, EBADF, "<op>: the socket was closed".
void check_closed(const ending& e, const char* op) {
    CHECK_FALSE(e.timed_out);
    CHECK(e.code == std::errc::bad_file_descriptor);
    CHECK_THAT(e.what, Catch::Contains(std::string(op) + ": the socket was closed"));
}

/// Awaits aw, but for at most `limit` (a hang becomes timed_out), and says how it ended.
template <class Awaitable>
task<ending> bounded(Awaitable aw, std::chrono::milliseconds limit = 3s) {
    ending e;
    try {
        auto waiting = wait_for(std::move(aw), limit);  // named: no temporary inside co_await (g++ 12)
        using result = detail::await_result_t<decltype(waiting)>;
        if constexpr (std::is_arithmetic_v<result>) {
            e.count = static_cast<std::size_t>(co_await waiting);
        } else if constexpr (std::is_void_v<result>) {
            co_await waiting;
        } else {
            (void)co_await waiting;
        }
        e.ok = true;
    } catch (const timeout_error&) {
        e.timed_out = true;
    } catch (const cancelled_error&) {
        e.cancelled = true;
    } catch (const std::system_error& x) {
        e.code = x.code();
        e.what = x.what();
    }
    co_return e;
}

loop_options on_this_backend(unsigned queue_depth = 256) {
    loop_options o;
    o.backend = expected_backend();
    o.queue_depth = queue_depth;
    return o;
}

bool is_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    REQUIRE(flags >= 0);
    return (flags & O_NONBLOCK) != 0;
}

/// What a third-party library does to a descriptor it is given.
void make_nonblocking_behind_corio(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    REQUIRE(flags >= 0);
    REQUIRE(::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0);
}

double thread_cpu_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct env_override {
    std::string name;
    std::optional<std::string> old;
    env_override(const char* n, const char* value) : name(n) {
        if (const char* v = std::getenv(n)) old = v;
        ::setenv(n, value, 1);
    }
    env_override(const env_override&) = delete;
    env_override& operator=(const env_override&) = delete;
    ~env_override() {
        if (old)
            ::setenv(name.c_str(), old->c_str(), 1);
        else
            ::unsetenv(name.c_str());
    }
};

/// Waits (a bounded number of loop turns) until the backend holds at least n operations.
task<bool> until_in_flight(std::size_t n) {
    auto& loop = event_loop::current();
    for (int i = 0; i < 2000 && loop.io().in_flight() < n; ++i) co_await sleep(1ms);
    co_return loop.io().in_flight() >= n;
}

/// A wake from another thread while the loop is idle arrives (within 5 s).
task<bool> remote_wake_arrives(int value) {
    promise<int> p;
    future<int> f = p.get_future();
    std::thread t([&p, value] {
        std::this_thread::sleep_for(2ms);
        p.set_value(value);
    });
    ending e = co_await bounded(f, 5s);
    t.join();
    co_return e.ok&& e.count == static_cast<std::size_t>(value);
}

#if CORIO_HAS_IO_URING
struct uring_hooks_reset {
    uring_hooks_reset() = default;
    uring_hooks_reset(const uring_hooks_reset&) = delete;
    uring_hooks_reset& operator=(const uring_hooks_reset&) = delete;
    ~uring_hooks_reset() {
        detail::uring_probe_fault = nullptr;
        detail::uring_request_fault = nullptr;
        detail::uring_sqe_fault = nullptr;
        detail::uring_nowait_fault = nullptr;
    }
};

// Plays a kernel that answers EAGAIN for a non-blocking descriptor instead of waiting for
// readiness itself (this one waits): the backend's readiness-then-retry path runs.
bool nowait_if_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// The SQE hook refuses in stretches: 16 requests served, 16 refused, and so on. A refusal
// that outlasts the backend's one attempt to make room is what a ring the kernel has not
// emptied looks like.
unsigned sqe_requests = 0;
bool refuse_sqe_in_stretches() { return (sqe_requests++ / 16) % 2 == 1; }

unsigned oneshot_arms = 0;
#endif

// ---- the workload of the ring-size tests ----

task<std::size_t> count_cancelled(std::vector<future<void>>& fs) {
    std::size_t n = 0;
    for (auto& f : fs) {
        const bool c = co_await ends_cancelled(f);
        n += c ? 1 : 0;
    }
    co_return n;
}

task<std::size_t> count_done(std::vector<future<void>>& fs) {
    std::size_t n = 0;
    for (auto& f : fs) {
        co_await f;
        ++n;
    }
    co_return n;
}

task<> stream_round_trip(net::tcp_stream a, net::tcp_stream b, std::size_t size) {
    const std::string out(size, 'q');
    std::string in(size, '\0');
    auto writing = spawn(b.write_all(out));
    co_await a.read_exact(in);
    co_await writing;
    CHECK(in == out);
}

/// Thousands of waits that only a cancel ends, cancelled together; thousands that end
/// together (a burst of completions far larger than the completion ring); exact transfers
/// that resubmit from their completions; then an idle loop woken from another thread.
task<> many_operations(std::size_t waits, std::size_t streams) {
    auto& loop = event_loop::current();
    pipe_pair silent;
    std::vector<future<void>> waiting;
    for (std::size_t i = 0; i < waits; ++i)
        waiting.push_back(spawn([&]() -> task<> { (void)co_await wait_readable(silent.rd); }));
    const bool all_waiting = co_await until_in_flight(waits);
    CHECK(all_waiting);
    for (auto& f : waiting) f.cancel();
    auto cancels = bounded(count_cancelled(waiting), 20s);
    const ending c = co_await std::move(cancels);
    CHECK(c.ok);
    CHECK(c.count == waits);
    CHECK(loop.io().in_flight() == 0);

    pipe_pair ready;
    std::vector<future<void>> woken;
    for (std::size_t i = 0; i < waits; ++i)
        woken.push_back(spawn([&]() -> task<> {
            const unsigned ev = co_await wait_readable(ready.rd);
            CHECK((ev & POLLIN) != 0U);
        }));
    const bool all_armed = co_await until_in_flight(waits);
    CHECK(all_armed);
    REQUIRE(::write(ready.wr, "x", 1) == 1);
    loop.call_soon_threadsafe([] {});  // the wakeup fires amid the burst too
    auto burst = bounded(count_done(woken), 20s);
    const ending b = co_await std::move(burst);
    CHECK(b.ok);
    CHECK(b.count == waits);

    auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
    std::vector<future<void>> transfers;
    for (std::size_t i = 0; i < streams; ++i) {
        auto a = co_await net::tcp_stream::connect(l.local_endpoint());
        auto s = co_await l.accept();
        transfers.push_back(spawn(stream_round_trip(std::move(a), std::move(s), 256 << 10)));
    }
    auto moved = bounded(count_done(transfers), 20s);
    const ending t = co_await std::move(moved);
    CHECK(t.ok);
    CHECK(t.count == streams);
    CHECK(loop.io().in_flight() == 0);

    const bool woke = co_await remote_wake_arrives(42);
    CHECK(woke);
}

}  // namespace

// ---- item 2: closing a socket ends its operations ----

TEST_CASE("faults: closing a stream ends its pending read with the socket was closed and the peer sees the end") {
    const int fds = fd_count();
    run(
        []() -> task<> {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto c = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s = co_await l.accept();
            std::array<char, 16> buf{};
            auto reading = spawn(bounded(c.read_some(buf)));
            auto polling = spawn(bounded(wait_readable(c.native_handle())));
            const bool started = co_await until_in_flight(2);
            CHECK(started);
            c.close();
            CHECK_FALSE(c.is_open());
            const auto t0 = clock::now();
            const ending r = co_await reading;
            const ending p = co_await polling;
            CHECK(ms_since(t0) < 2000);
            check_closed(r, "tcp_stream::read_some");
            CHECK_FALSE(p.timed_out);
            CHECK(p.code == std::errc::bad_file_descriptor);
            CHECK_THAT(p.what, Catch::Contains("wait_readable"));
            // Really closed, not held open by the kernel: the peer reads the end of the stream.
            const ending eof = co_await bounded(s.read_some(buf));
            CHECK(eof.ok);
            CHECK(eof.count == 0);
            CHECK(event_loop::current().io().in_flight() == 0);
        }(),
        on_this_backend());
    CHECK(fd_count() == fds);
}

TEST_CASE("faults: destroying a stream ends its pending read_exact and write_all") {
    const int fds = fd_count();
    run(
        []() -> task<> {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            std::optional<net::tcp_stream> c;
            c.emplace(co_await net::tcp_stream::connect(l.local_endpoint()));
            auto s = co_await l.accept();
            std::string in(10, '\0');
            const std::string big(16 << 20, 'x');  // more than the socket buffers take: the write waits
            auto reading = spawn(bounded(c->read_exact(in)));
            auto writing = spawn(bounded(c->write_all(big)));
            co_await s.write_all(std::string_view("hello"));  // half of what read_exact wants
            const bool started = co_await until_in_flight(2);
            CHECK(started);
            c.reset();
            const ending r = co_await reading;
            const ending w = co_await writing;
            check_closed(r, "tcp_stream::read_exact");
            check_closed(w, "tcp_stream::write_all");
            CHECK(event_loop::current().io().in_flight() == 0);
        }(),
        on_this_backend());
    CHECK(fd_count() == fds);
}

TEST_CASE("faults: closing a listener ends its pending accept and a new listener takes the port") {
    run(
        []() -> task<> {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            const net::endpoint ep = l.local_endpoint();
            auto accepting = spawn(bounded(l.accept()));
            const bool started = co_await until_in_flight(1);
            CHECK(started);
            l.close();
            const ending a = co_await accepting;
            check_closed(a, "tcp_listener::accept");
            // The port is free again: the kernel no longer holds the old listener.
            auto again = net::tcp_listener::bind(ep, {.reuse_address = false});
            CHECK(again.local_endpoint().port() == ep.port());
        }(),
        on_this_backend());
}

TEST_CASE("faults: closing a UDP socket ends its pending recv_from and recv") {
    const int fds = fd_count();
    run(
        []() -> task<> {
            auto u = net::udp_socket::bind(net::endpoint::loopback(0));
            auto v = net::udp_socket::bind(net::endpoint::loopback(0));
            v.connect(u.local_endpoint());
            std::array<char, 32> b1{};
            std::array<char, 32> b2{};
            auto from = spawn(bounded(u.recv_from(b1)));
            auto plain = spawn(bounded(v.recv(b2)));
            const bool started = co_await until_in_flight(2);
            CHECK(started);
            u.close();
            v.close();
            const ending f = co_await from;
            const ending p = co_await plain;
            check_closed(f, "udp_socket::recv_from");
            check_closed(p, "udp_socket::recv");
        }(),
        on_this_backend());
    CHECK(fd_count() == fds);
}

TEST_CASE("faults: an operation of a closed stream never reads the traffic of a socket that reuses its number") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_nowait_fault = &nowait_if_nonblocking;
#endif
    const bool nonblocking = GENERATE(false, true);
    INFO("the stream made non-blocking by a library: " << nonblocking);
    run(
        [](bool nonblocking) -> task<> {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto c = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s = co_await l.accept();
            if (nonblocking) make_nonblocking_behind_corio(c.native_handle());
            std::string in(10, '\0');
            auto reading = spawn(bounded(c.read_exact(in)));
            co_await s.write_all(std::string_view("hello"));
            for (int i = 0; i < 5; ++i) co_await sleep(1ms);  // let it take the first bytes (either way holds)
            c.close();
            // The lowest free number goes to the next socket: the old one's, if close gave it up.
            auto c2 = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s2 = co_await l.accept();
            co_await s.write_all(std::string_view("ab"));
            co_await s2.write_all(std::string_view("new"));
            const ending r = co_await reading;
            CHECK_FALSE(r.ok);
            CHECK(r.code == std::errc::bad_file_descriptor);
            std::array<char, 8> buf{};
            const ending n = co_await bounded(c2.read_some(buf));
            REQUIRE(n.ok);
            CHECK(std::string(buf.data(), n.count) == "new");
        }(nonblocking),
        on_this_backend());
}

TEST_CASE("faults: without cancel by fd closing a socket shuts it down first and still ends its operations") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_request_fault = [](detail::uring_request r) { return r == detail::uring_request::cancel_fd; };
#endif
    const int fds = fd_count();
    run(
        []() -> task<> {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto c = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s = co_await l.accept();
            auto u = net::udp_socket::bind(net::endpoint::loopback(0));
            std::array<char, 16> b1{};
            std::array<char, 16> b2{};
            auto reading = spawn(bounded(c.read_some(b1)));
            auto accepting = spawn(bounded(l.accept()));
            auto receiving = spawn(bounded(u.recv_from(b2)));
            const bool started = co_await until_in_flight(3);
            CHECK(started);
            c.close();
            l.close();
            u.close();
            const ending r = co_await reading;
            const ending a = co_await accepting;
            const ending f = co_await receiving;
            CHECK(r.code == std::errc::bad_file_descriptor);
            CHECK_THAT(r.what, Catch::Contains("tcp_stream::read_some: the socket was closed"));
            CHECK(a.code == std::errc::bad_file_descriptor);
            CHECK_THAT(a.what, Catch::Contains("tcp_listener::accept: the socket was closed"));
            CHECK(f.code == std::errc::bad_file_descriptor);
            CHECK_THAT(f.what, Catch::Contains("udp_socket::recv_from: the socket was closed"));
            const ending eof = co_await bounded(s.read_some(b1));
            CHECK(eof.ok);
            CHECK(eof.count == 0);
            // Later closes go straight to the shutdown, and a stream with nothing pending closes at once.
            auto l2 = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto accepting2 = spawn(bounded(l2.accept()));
            const bool started2 = co_await until_in_flight(1);
            CHECK(started2);
            l2.close();
            const ending a2 = co_await accepting2;
            CHECK(a2.code == std::errc::bad_file_descriptor);
            CHECK(event_loop::current().io().in_flight() == 0);
        }(),
        on_this_backend());
    CHECK(fd_count() == fds);
}

// ---- item 3: a full submission ring ----

TEST_CASE("faults: a ring of 2 entries runs thousands of concurrent operations and cancels and loses none") {
    run(many_operations(3000, 32), on_this_backend(2));
}

TEST_CASE("faults: with the submission ring full operations cancels retries and the wakeup re-arm wait their turn") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    sqe_requests = 0;
#endif
    run(
        []() -> task<> {
#if CORIO_HAS_IO_URING
            detail::uring_sqe_fault = &refuse_sqe_in_stretches;  // once the loop runs
            detail::uring_nowait_fault = &nowait_if_nonblocking;
#endif
            co_await many_operations(1000, 16);
            // Operations that retry after EAGAIN (a descriptor a library made non-blocking)
            // go through the full ring too.
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto a = co_await net::tcp_stream::connect(l.local_endpoint());
            auto b = co_await l.accept();
            make_nonblocking_behind_corio(a.native_handle());
            make_nonblocking_behind_corio(b.native_handle());
            auto moved = bounded(stream_round_trip(std::move(a), std::move(b), 4 << 20), 20s);
            const ending m = co_await std::move(moved);
            CHECK(m.ok);
            // Sockets closed while their reads, and then their cancels by fd, wait for an SQE.
            std::vector<net::tcp_stream> clients;
            std::vector<net::tcp_stream> servers;
            for (int i = 0; i < 32; ++i) {
                clients.push_back(co_await net::tcp_stream::connect(l.local_endpoint()));
                servers.push_back(co_await l.accept());
            }
            std::vector<std::array<char, 8>> bufs(clients.size());
            std::vector<future<ending>> reads;
            for (std::size_t i = 0; i < clients.size(); ++i)
                reads.push_back(spawn(bounded(clients[i].read_some(bufs[i]))));
            co_await yield();  // all started, some still parked
            for (auto& c : clients) c.close();
            std::size_t closed = 0;
            for (auto& r : reads) {
                const ending e = co_await r;
                closed += e.code == std::errc::bad_file_descriptor ? 1 : 0;
            }
            CHECK(closed == clients.size());
            std::size_t ended = 0;
            for (auto& srv : servers) {
                std::array<char, 8> buf{};
                const ending e = co_await bounded(srv.read_some(buf));
                ended += e.ok && e.count == 0 ? 1 : 0;
            }
            CHECK(ended == servers.size());
            CHECK(event_loop::current().io().in_flight() == 0);
#if CORIO_HAS_IO_URING
            if (event_loop::current().backend() == backend_kind::io_uring) CHECK(sqe_requests > 32);  // it did refuse
            detail::uring_sqe_fault = nullptr;
#endif
        }(),
        on_this_backend(4));
}

// ---- item 4: older kernels ----

TEST_CASE(
    "faults: without multishot poll the wakeup is re-armed one-shot and every wake arrives and the idle loop does not "
    "spin") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_request_fault = [](detail::uring_request r) { return r == detail::uring_request::multishot_poll; };
#endif
    reports r;
    loop_options o = r.options(/*debug=*/true);
    o.backend = expected_backend();
    event_loop loop(o);
    REQUIRE(r.count(report_kind::backend_info) == 1);
    if (loop.backend() == backend_kind::io_uring) CHECK_THAT(r.items[0].message, Catch::Contains("one-shot wakeup"));
    loop.run([]() -> task<> {
        int arrived = 0;
        for (int i = 1; i <= 20; ++i) {
            const bool woke = co_await remote_wake_arrives(i);
            arrived += woke ? 1 : 0;
        }
        CHECK(arrived == 20);
        const double cpu0 = thread_cpu_ms();
        co_await sleep(300ms);
        CHECK(thread_cpu_ms() - cpu0 < 150.0);  // asleep in the kernel, not turning
    }());
}

TEST_CASE("faults: a wakeup poll the kernel keeps refusing ends the loop with an error and not a spin") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    oneshot_arms = 0;
    // No multishot; the one-shot poll is accepted at start-up, then refused every time.
    detail::uring_request_fault = [](detail::uring_request r) {
        if (r == detail::uring_request::multishot_poll) return true;
        return r == detail::uring_request::oneshot_poll && oneshot_arms++ > 0;
    };
#endif
    event_loop loop(on_this_backend());
    const auto t0 = clock::now();
    std::string failure;
    try {
        loop.run([]() -> task<> {
            const bool woke = co_await remote_wake_arrives(1);
            CHECK(woke);
            co_await sleep(1s);
        }());
    } catch (const std::system_error& e) {
        failure = e.what();
    }
    if (loop.backend() == backend_kind::io_uring) {
        CHECK_THAT(failure, Catch::Contains("wakeup"));
        CHECK(ms_since(t0) < 900);  // well before the sleep would have ended
    } else {
        CHECK(failure.empty());  // epoll has no such poll: the loop just works
    }
}

TEST_CASE(
    "faults: an io_uring operation the kernel lacks sends automatic to epoll and makes a forced io_uring an error "
    "naming it") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_probe_fault = [](unsigned op) { return op == IORING_OP_RECVMSG; };
    loop_options forced;
    forced.backend = backend_kind::io_uring;
    std::string what;
    try {
        event_loop loop(forced);
        FAIL("a forced io_uring without IORING_OP_RECVMSG must throw");
    } catch (const std::system_error& e) {
        what = e.what();
    }
    CHECK_THAT(what, Catch::Contains("IORING_OP_RECVMSG"));

    env_override env("CORIO_BACKEND", "automatic");
    reports r;
    event_loop loop(r.options(/*debug=*/true));
    CHECK(loop.backend() == backend_kind::epoll);
    REQUIRE(r.count(report_kind::backend_info) == 1);
    CHECK_THAT(r.items[0].message, Catch::Contains("falling back to epoll"));
    CHECK_THAT(r.items[0].message, Catch::Contains("IORING_OP_RECVMSG"));
    CHECK(loop.run([]() -> task<int> {
        auto u = net::udp_socket::bind(net::endpoint::loopback(0));
        co_await u.send_to(std::string_view("hi"), u.local_endpoint());
        std::array<char, 8> buf{};
        const net::datagram d = co_await u.recv_from(buf);
        co_return static_cast<int>(d.size);
    }()) == 2);

    // One that cannot even poll its wakeup eventfd at start-up is refused the same way.
    detail::uring_probe_fault = nullptr;
    detail::uring_request_fault = [](detail::uring_request) { return true; };
    CHECK_THROWS_AS(event_loop(forced), std::system_error);
    reports r2;
    event_loop fallback(r2.options(/*debug=*/true));
    CHECK(fallback.backend() == backend_kind::epoll);
    const bool woke = fallback.run(remote_wake_arrives(7));
    CHECK(woke);
#else
    event_loop loop;
    CHECK(loop.backend() == backend_kind::epoll);
    const bool woke = loop.run(remote_wake_arrives(7));
    CHECK(woke);
#endif
}

// ---- item 9: a cancelled operation that meets EAGAIN ----

TEST_CASE("faults: a cancelled read that meets EAGAIN ends cancelled and not with a system_error") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_nowait_fault = &nowait_if_nonblocking;
#endif
    run(
        []() -> task<> {
            auto& loop = event_loop::current();
            // Sockets a library made non-blocking: with nothing to read, the kernel says EAGAIN.
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto c = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s = co_await l.accept();
            auto u = net::udp_socket::bind(net::endpoint::loopback(0));
            make_nonblocking_behind_corio(c.native_handle());
            make_nonblocking_behind_corio(u.native_handle());
            std::array<char, 8> buf{};
            auto r1 = spawn([&]() -> task<> { (void)co_await c.read_some(buf); });
            auto r2 = spawn([&]() -> task<> { (void)co_await u.recv_from(buf); });
            co_await yield();  // both reads have started: on io_uring their SQEs wait for the next wait
            r1.cancel();
            r2.cancel();
            for (auto* f : {&r1, &r2}) {
                std::string failure;
                bool cancelled = false;
                try {
                    co_await *f;
                } catch (const cancelled_error&) {
                    cancelled = true;
                } catch (const std::system_error& e) {
                    failure = e.what();
                }
                CHECK(cancelled);
                CHECK(failure.empty());
            }
            CHECK(loop.io().in_flight() == 0);
            // And a read that is not cancelled still waits for its data.
            auto r3 = spawn(bounded(c.read_some(buf)));
            co_await sleep(2ms);
            co_await s.write_all(std::string_view("late"));
            const ending e = co_await r3;
            REQUIRE(e.ok);
            CHECK(std::string(buf.data(), e.count) == "late");
        }(),
        on_this_backend());
}

// ---- item 11: the blocking mode of native_handle() ----

TEST_CASE("faults: native_handle is blocking on io_uring until set_nonblocking and corio's operations work after it") {
#if CORIO_HAS_IO_URING
    uring_hooks_reset reset;
    detail::uring_nowait_fault = &nowait_if_nonblocking;  // as on kernels that answer EAGAIN
#endif
    const int fds = fd_count();
    run(
        []() -> task<> {
            const bool uring = event_loop::current().backend() == backend_kind::io_uring;
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            auto c = co_await net::tcp_stream::connect(l.local_endpoint());
            auto s = co_await l.accept();
            auto u = net::udp_socket::bind(net::endpoint::loopback(0));
            // The documented modes: blocking on io_uring (the kernel waits for readiness
            // itself), non-blocking on epoll.
            CHECK(is_nonblocking(c.native_handle()) == !uring);
            CHECK(is_nonblocking(s.native_handle()) == !uring);
            CHECK(is_nonblocking(l.native_handle()) == !uring);
            CHECK(is_nonblocking(u.native_handle()) == !uring);
            c.set_nonblocking();
            s.set_nonblocking();
            l.set_nonblocking();
            u.set_nonblocking();
            CHECK(is_nonblocking(c.native_handle()));
            CHECK(is_nonblocking(s.native_handle()));
            CHECK(is_nonblocking(l.native_handle()));
            CHECK(is_nonblocking(u.native_handle()));
            // What a library sees now: "not now" instead of a blocked loop.
            char byte = 0;
            REQUIRE(is_nonblocking(c.native_handle()));  // else the recv below would block the test
            CHECK(::recv(c.native_handle(), &byte, 1, 0) == -1);
            CHECK((errno == EAGAIN || errno == EWOULDBLOCK));

            // corio's own operations still work: a read that has to wait,
            std::array<char, 16> buf{};
            auto reading = spawn(bounded(c.read_some(buf)));
            co_await sleep(2ms);
            co_await s.write_all(std::string_view("ping"));
            const ending r = co_await reading;
            REQUIRE(r.ok);
            CHECK(std::string(buf.data(), r.count) == "ping");
            // exact transfers larger than the socket buffers,
            auto moved = bounded(stream_round_trip(std::move(c), std::move(s), 8 << 20), 20s);
            const ending m = co_await std::move(moved);
            CHECK(m.ok);
            // an accept that has to wait,
            auto accepting = spawn(bounded(l.accept()));
            co_await sleep(2ms);
            auto c2 = co_await net::tcp_stream::connect(l.local_endpoint());
            const ending a = co_await accepting;
            CHECK(a.ok);
            // and datagrams.
            std::array<char, 16> dbuf{};
            auto receiving = spawn(bounded(u.recv_from(dbuf)));
            co_await sleep(2ms);
            auto v = net::udp_socket::open();
            v.set_nonblocking();
            co_await v.send_to(std::string_view("dgram"), u.local_endpoint());
            const ending d = co_await receiving;
            CHECK(d.ok);
            CHECK(std::string(dbuf.data(), 5) == "dgram");
            // wait_readable on the handle, as a library would use it
            auto polled = spawn(bounded(wait_readable(u.native_handle())));
            co_await sleep(2ms);
            co_await v.send_to(std::string_view("again"), u.local_endpoint());
            const ending p = co_await polled;
            CHECK(p.ok);
            CHECK(event_loop::current().io().in_flight() == 0);
        }(),
        on_this_backend());
    CHECK(fd_count() == fds);
}
