#include <catch2/catch.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// An echo server on a free loopback port, run as a task of the test's loop.
struct echo_server {
    net::tcp_listener listener = net::tcp_listener::bind(net::endpoint::loopback(0));
    net::endpoint ep = listener.local_endpoint();

    task<> serve_one(net::tcp_stream s) {
        std::array<char, 4096> buf;
        for (;;) {
            const std::size_t n = co_await s.read_some(buf);
            if (n == 0) co_return;
            co_await s.write_all(const_buffer(buf.data(), n));
        }
    }
    task<> serve(std::size_t connections) {
        co_await with_task_group([&](task_group& g) -> task<> {
            for (std::size_t i = 0; i < connections; ++i) g.spawn(serve_one(co_await listener.accept()));
        });
    }
};

std::uint64_t fnv1a(const char* p, std::size_t n, std::uint64_t h = 1469598103934665603ULL) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * 1099511628211ULL;
    return h;
}

// Set SO_LINGER 0 so close() sends a reset instead of a FIN.
void abort_on_close(int fd) {
    linger l{1, 0};
    REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
}

// Blocks SIGPIPE in this thread while it lives, so that a SIGPIPE raised meanwhile is
// kept pending rather than ending the process; raised() tells whether one came. The
// destructor takes a pending one away before it restores the mask.
class sigpipe_watch {
public:
    sigpipe_watch() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        REQUIRE(::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0);
        take_pending();  // one left from before is not ours
    }
    sigpipe_watch(const sigpipe_watch&) = delete;
    sigpipe_watch& operator=(const sigpipe_watch&) = delete;
    ~sigpipe_watch() {
        take_pending();
        ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    [[nodiscard]] bool raised() const {
        sigset_t pending;
        sigemptyset(&pending);
        ::sigpending(&pending);  // this thread's and the process's
        return sigismember(&pending, SIGPIPE) == 1;
    }

private:
    void take_pending() const {
        const timespec zero{0, 0};
        while (::sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
        }
    }
    sigset_t pipe_;
    sigset_t old_;
};

// Raises RLIMIT_NOFILE's soft limit towards `wanted` (at most to the hard limit) while it
// lives; current() is the soft limit in force.
class fd_limit_raise {
public:
    explicit fd_limit_raise(rlim_t wanted) {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &old_) == 0);
        rlimit raised = old_;
        if (raised.rlim_cur < wanted) raised.rlim_cur = std::min(wanted, raised.rlim_max);
        if (raised.rlim_cur != old_.rlim_cur) REQUIRE(::setrlimit(RLIMIT_NOFILE, &raised) == 0);
        current_ = raised.rlim_cur;
    }
    fd_limit_raise(const fd_limit_raise&) = delete;
    fd_limit_raise& operator=(const fd_limit_raise&) = delete;
    ~fd_limit_raise() { ::setrlimit(RLIMIT_NOFILE, &old_); }
    [[nodiscard]] rlim_t current() const noexcept { return current_; }
    [[nodiscard]] rlim_t hard() const noexcept { return old_.rlim_max; }

private:
    rlimit old_{};
    rlim_t current_ = 0;
};

// Lowers RLIMIT_NOFILE's soft limit to the lowest free descriptor while it lives, so that
// whatever tries to make a descriptor meanwhile fails with EMFILE. Lowering the soft limit
// needs no privilege; if it cannot be done, or does not take, the test fails (it would
// otherwise pass without having tested anything).
class fd_exhaustion {
public:
    fd_exhaustion() {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &old_) == 0);
        const int lowest = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        REQUIRE(lowest >= 0);
        ::close(lowest);
        rlimit low = old_;
        low.rlim_cur = static_cast<rlim_t>(lowest);
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
        const int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        const int probe_errno = errno;
        if (probe >= 0 || probe_errno != EMFILE) {
            if (probe >= 0) ::close(probe);
            ::setrlimit(RLIMIT_NOFILE, &old_);
            FAIL("RLIMIT_NOFILE " << lowest << " did not exhaust the descriptors (open gave " << probe << ", errno "
                                  << probe_errno << ")");
        }
    }
    fd_exhaustion(const fd_exhaustion&) = delete;
    fd_exhaustion& operator=(const fd_exhaustion&) = delete;
    ~fd_exhaustion() { ::setrlimit(RLIMIT_NOFILE, &old_); }

private:
    rlimit old_{};
};

// A loopback UDP endpoint nobody is bound to: bind one, note it, close it.
net::endpoint unused_udp_endpoint() {
    auto s = net::udp_socket::bind(net::endpoint::loopback(0));
    return s.local_endpoint();
}

// The error of the first of `tries` writes of 1 KiB that fails (none if all succeed).
task<std::error_code> write_error_of(const net::tcp_stream& s, int tries) {
    const std::string chunk(1024, 'y');
    for (int i = 0; i < tries; ++i) {
        try {
            co_await s.write_all(chunk);
        } catch (const std::system_error& e) {
            co_return e.code();
        }
    }
    co_return std::error_code();
}

}  // namespace

TEST_CASE("endpoints parse and print IPv4 and IPv6") {
    const auto a = net::endpoint::parse("127.0.0.1:8080");
    CHECK_FALSE(a.is_v6());
    CHECK(a.port() == 8080);
    CHECK(a.address() == "127.0.0.1");
    CHECK(a.to_string() == "127.0.0.1:8080");
    const auto b = net::endpoint::parse("[::1]:443");
    CHECK(b.is_v6());
    CHECK(b.port() == 443);
    CHECK(b.to_string() == "[::1]:443");
    CHECK(net::endpoint::parse(b.to_string()) == b);
    CHECK(net::endpoint("10.0.0.1", 1) == net::endpoint::parse("10.0.0.1:1"));
    CHECK_FALSE(net::endpoint("10.0.0.1", 1) == net::endpoint("10.0.0.1", 2));
}

TEST_CASE("malformed endpoints are refused with the text in the message") {
    for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:8o", "1.2.3:80",
                            "localhost:80", "::1:80", "[127.0.0.1]:80", "[::1]80", "[::1]:-1"}) {
        INFO(bad);
        try {
            net::endpoint::parse(bad);
            FAIL("accepted");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::invalid_argument);
            CHECK_THAT(e.what(), Catch::Contains("'" + std::string(bad) + "'"));
        }
    }
    CHECK_THROWS_AS(net::endpoint("not an address", 80), std::system_error);
}

TEST_CASE("an endpoint text holding a NUL byte is refused, the NUL escaped in the message") {
    using namespace std::string_literals;
    // inet_pton and getaddrinfo read C strings: what follows a NUL must not be ignored.
    // what() is one too, so a NUL copied into the message would cut it short there.
    for (const std::string& bad : {"1.2.3.4\0junk:80"s, "127.0.0.1:80\0"s, "[::1\0junk]:80"s, "\0"s}) {
        std::string escaped = bad;
        escaped.replace(bad.find('\0'), 1, "\\x00");
        INFO(escaped);
        std::error_code code;
        std::string what;
        try {
            (void)net::endpoint::parse(bad);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("net::endpoint::parse: '" + escaped + "'") && Catch::Contains("NUL"));
    }
    for (const std::string& bad : {"1.2.3.4\0junk"s, "127.0.0.1\0"s, "::1\0:2"s}) {
        std::string escaped = bad;
        escaped.replace(bad.find('\0'), 1, "\\x00");
        INFO(escaped);
        std::error_code code;
        std::string what;
        try {
            (void)net::endpoint(bad, 80);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("net::endpoint: '" + escaped + "'") && Catch::Contains("NUL"));
    }
    run([]() -> task<> {
        std::error_code code;
        std::string what;
        try {
            const std::string host = "localhost\0.invalid"s;
            auto resolving = net::resolve(host, 80);
            (void)co_await resolving;
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("net::resolve('localhost\\x00.invalid')"));
    }());
}

TEST_CASE("resolve finds localhost and names an unknown host") {
    run([]() -> task<> {
        const auto eps = co_await net::resolve("localhost", 8080);
        REQUIRE_FALSE(eps.empty());
        for (const auto& ep : eps) CHECK(ep.port() == 8080);
        std::string what;
        try {
            co_await net::resolve("no-such-host.invalid", 80);
        } catch (const std::system_error& e) {
            what = e.what();
        }
        CHECK_THAT(what, Catch::Contains("no-such-host.invalid"));
    }());
}

TEST_CASE("a loopback round trip through accept, connect, write_all and read_exact") {
    const int fds = fd_count();
    run([]() -> task<> {
        echo_server srv;
        auto served = spawn(srv.serve(1));
        auto c = co_await net::tcp_stream::connect(srv.ep);
        CHECK(c.remote_endpoint() == srv.ep);
        CHECK(c.local_endpoint().address() == "127.0.0.1");
        c.set_nodelay();
        for (int i = 0; i < 100; ++i) {
            const std::string msg = "message " + std::to_string(i);
            co_await c.write_all(msg);
            std::string back(msg.size(), '\0');
            co_await c.read_exact(back);
            CHECK(back == msg);
        }
        c.shutdown();
        std::array<char, 16> buf;
        const std::size_t n = co_await c.read_some(buf);
        CHECK(n == 0);  // the server saw our end of stream and closed
        co_await served;
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("connect by host name resolves and connects") {
    run([]() -> task<> {
        echo_server srv;
        auto served = spawn(srv.serve(1));
        auto c = co_await net::tcp_stream::connect("localhost", srv.ep.port());
        co_await c.write_all(std::string_view("hi"));
        std::string back(2, '\0');
        co_await c.read_exact(back);
        CHECK(back == "hi");
        c.close();
        co_await served;
    }());
}

TEST_CASE("1000 concurrent connections each get their own echo") {
    // Each connection takes two descriptors here (client and server side). The soft
    // limit goes up to the hard one if need be; under a hard limit too low for 1000, the
    // test runs with as many connections as fit, and fails if that is too few to mean
    // anything.
    constexpr int wanted = 1000;
    const fd_limit_raise limit(2 * wanted + 200);
    const int fds = fd_count();
    const long room = static_cast<long>(std::min<rlim_t>(limit.current(), 1 << 20)) - fds - 100;  // 100 spare
    const int clients = static_cast<int>(std::min<long>(wanted, room / 2));
    if (clients < 100)
        FAIL("RLIMIT_NOFILE allows " << limit.current() << " descriptors (hard limit " << limit.hard() << ", " << fds
                                     << " in use): room for " << clients
                                     << " connections, the test needs at least 100 (1000 to run in full)");
    if (clients < wanted)
        WARN("RLIMIT_NOFILE (hard limit " << limit.hard() << ") leaves room for " << clients << " connections, not "
                                          << wanted << ": the test runs with " << clients);
    run([clients]() -> task<> {
        echo_server srv;
        auto served = spawn(srv.serve(static_cast<std::size_t>(clients)));
        std::vector<task<bool>> all;
        for (int i = 0; i < clients; ++i) {
            all.push_back([](net::endpoint ep, int id) -> task<bool> {
                auto c = co_await net::tcp_stream::connect(ep);
                const std::string msg = "client " + std::to_string(id) + std::string(100, 'x');
                co_await c.write_all(msg);
                std::string back(msg.size(), '\0');
                co_await c.read_exact(back);
                co_return back == msg;
            }(srv.ep, i));
        }
        const std::vector<bool> ok = co_await gather(std::move(all));
        CHECK(std::count(ok.begin(), ok.end(), true) == clients);
        co_await served;
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("half-close: the peer reads end of stream and can still answer") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto server = spawn([&]() -> task<std::string> {
            auto s = co_await l.accept();
            std::string got;
            std::array<char, 64> buf;
            for (std::size_t n; (n = co_await s.read_some(buf)) > 0;) got.append(buf.data(), n);
            co_await s.write_all("got " + std::to_string(got.size()) + " bytes");
            co_return got;  // closing sends our FIN
        });
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        co_await c.write_all(std::string_view("request body"));
        c.shutdown(net::shutdown_how::send);
        std::string reply;
        std::array<char, 64> buf;
        for (std::size_t n; (n = co_await c.read_some(buf)) > 0;) reply.append(buf.data(), n);
        CHECK(reply == "got 12 bytes");
        const auto received = co_await server;
        CHECK(received == "request body");
    }());
}

TEST_CASE("read_exact reports a stream that ends early as end_of_stream") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto server = spawn([&]() -> task<> {
            auto s = co_await l.accept();
            co_await s.write_all(std::string_view("12345"));
        });
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        co_await server;
        std::string buf(10, '\0');
        std::error_code code;
        std::string what;
        try {
            co_await c.read_exact(buf);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == io_errc::end_of_stream);
        CHECK_THAT(what, Catch::Contains("tcp_stream::read_exact") && Catch::Contains("5 of 10"));
        CHECK(buf.substr(0, 5) == "12345");
    }());
}

TEST_CASE("a peer reset is an error on read and on write, and never a SIGPIPE") {
    // SIGPIPE is blocked in this thread for the test, so one that is raised stays pending
    // (instead of ending the process) and is seen by sigpending. corio's pool threads
    // block it too, so a process-directed one would be pending as well.
    const sigpipe_watch watch;
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        {
            auto s = co_await l.accept();
            abort_on_close(s.native_handle());
        }  // reset
        std::error_code read_error;
        std::string read_what;
        try {
            std::array<char, 16> buf;
            co_await c.read_some(buf);
        } catch (const std::system_error& e) {
            read_error = e.code();
            read_what = e.what();
        }
        CHECK(read_error == std::errc::connection_reset);
        CHECK_THAT(read_what, Catch::Contains("tcp_stream::read_some"));
        // The read took the reset (ECONNRESET): a write now is EPIPE, the error that
        // raises SIGPIPE unless the send says MSG_NOSIGNAL.
        const std::error_code after_read = co_await write_error_of(c, 1);
        CHECK(after_read == std::errc::broken_pipe);

        auto c2 = co_await net::tcp_stream::connect(l.local_endpoint());
        {
            auto s = co_await l.accept();
            abort_on_close(s.native_handle());
        }
        // The first failing write reports the reset, the next ones EPIPE: keep writing
        // until the error is no longer ECONNRESET.
        std::error_code write_error;
        std::string what;
        int resets = 0;
        const std::string chunk(64 * 1024, 'x');
        for (int i = 0; i < 1000 && resets < 10; ++i) {
            try {
                co_await c2.write_all(chunk);
                continue;
            } catch (const std::system_error& e) {
                write_error = e.code();
                what = e.what();
            }
            if (write_error != std::errc::connection_reset) break;
            ++resets;
        }
        CHECK(resets <= 1);
        CHECK(write_error == std::errc::broken_pipe);
        CHECK_THAT(what, Catch::Contains("tcp_stream::write_all"));

        // A stream whose own sending side is shut down: EPIPE at once, write_some too.
        auto c3 = co_await net::tcp_stream::connect(l.local_endpoint());
        auto s3 = co_await l.accept();
        c3.shutdown(net::shutdown_how::send);
        const std::error_code after_shutdown = co_await write_error_of(c3, 1);
        CHECK(after_shutdown == std::errc::broken_pipe);
        std::error_code some_error;
        try {
            co_await c3.write_some(std::string_view("x"));
        } catch (const std::system_error& e) {
            some_error = e.code();
        }
        CHECK(some_error == std::errc::broken_pipe);
    }());
    CHECK_FALSE(watch.raised());
}

TEST_CASE("a refused connect names the endpoint") {
    const int fds = fd_count();
    run([]() -> task<> {
        // A port nobody listens on: bind one, note it, close it.
        net::endpoint ep;
        {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            ep = l.local_endpoint();
        }
        std::error_code code;
        std::string what;
        try {
            co_await net::tcp_stream::connect(ep);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::connection_refused);
        CHECK_THAT(what, Catch::Contains("tcp_stream::connect to " + ep.to_string()));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("a refused connect by host name names the host and port") {
    const int fds = fd_count();
    run([]() -> task<> {
        std::uint16_t port = 0;
        {
            auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
            port = l.local_endpoint().port();
        }
        std::error_code code;
        std::string what;
        try {
            const std::string host = "localhost";
            auto connecting = net::tcp_stream::connect(host, port);
            (void)co_await connecting;
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::connection_refused);
        CHECK_THAT(what, Catch::Contains("tcp_stream::connect to localhost:" + std::to_string(port)));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("accept on a closed listener is an error naming accept") {
    run([]() -> task<> {
        net::tcp_listener never_bound;
        std::error_code code;
        std::string what;
        try {
            auto aw = never_bound.accept();
            const net::tcp_stream s = co_await aw;
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("tcp_listener::accept: "));

        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        l.close();
        CHECK_FALSE(l.is_open());
        code.clear();
        what.clear();
        try {
            auto aw = l.accept();
            const net::tcp_stream s = co_await aw;
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("tcp_listener::accept: "));
    }());
}

TEST_CASE("accept out of descriptors (EMFILE) names accept and the listener, and the connection waits") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const net::endpoint ep = l.local_endpoint();
        auto c = co_await net::tcp_stream::connect(ep);  // queued on the listener
        // UBSan checks a polymorphic object of a type it has not met yet by writing it to a
        // pipe: out of descriptors that fails, and it takes the object for a bad one. So
        // nothing new may look at an exception meanwhile: an accept that fails first takes
        // the library's path once, and the test keeps what it catches for afterwards.
        std::error_code code;
        try {
            const net::tcp_listener closed;
            auto aw = closed.accept();
            const net::tcp_stream s = co_await aw;
        } catch (const std::system_error& e) {
            code = e.code();
        }
        REQUIRE(code == std::errc::bad_file_descriptor);
        std::exception_ptr failure;
        {
            const fd_exhaustion no_descriptors;
            try {
                auto aw = l.accept();
                const net::tcp_stream s = co_await aw;
            } catch (...) {
                failure = std::current_exception();
            }
        }
        REQUIRE(failure);
        std::string what;
        code.clear();
        try {
            std::rethrow_exception(failure);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::too_many_files_open);
        CHECK_THAT(what, Catch::Contains("tcp_listener::accept on " + ep.to_string()));
        // The limit is back: the connection was not lost to the failed accept.
        auto aw = l.accept();
        auto s = co_await aw;
        co_await c.write_all(std::string_view("still here"));
        std::string back(10, '\0');
        co_await s.read_exact(back);
        CHECK(back == "still here");
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("binding a port in use is an error naming the endpoint") {
    run([]() -> task<> {
        auto a = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = a.local_endpoint();
        std::string what;
        try {
            (void)net::tcp_listener::bind(ep, {.reuse_address = false});
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::address_in_use);
            what = e.what();
        }
        CHECK_THAT(what, Catch::Contains("tcp_listener::bind " + ep.to_string()));
        co_return;
    }());
}

TEST_CASE("operations on a closed stream fail cleanly") {
    run([]() -> task<> {
        net::tcp_stream never_connected;
        CHECK_FALSE(never_connected.is_open());
        std::error_code code;
        std::string what;
        try {
            std::array<char, 4> buf;
            co_await never_connected.read_some(buf);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("tcp_stream::read_some"));
        code.clear();
        what.clear();
        try {
            co_await never_connected.write_all(std::string_view("x"));
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("tcp_stream::write_all"));
    }());
}

TEST_CASE("a read on a silent peer times out, the kernel lets go, and the stream still works") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        auto s = co_await l.accept();
        std::array<char, 16> buf{};
        const auto t0 = clock::now();
        bool timed_out = false;
        try {
            co_await wait_for(c.read_some(buf), 50ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(ms_since(t0) >= 45);
        CHECK(ms_since(t0) < 5000);
        CHECK(event_loop::current().io().in_flight() == 0);
        co_await s.write_all(std::string_view("late"));
        const std::size_t n = co_await c.read_some(buf);
        CHECK(std::string(buf.data(), n) == "late");
    }());
}

TEST_CASE("cancelling accept, connect, read and write ends each promptly") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto& loop = event_loop::current();
        // accept with nobody connecting
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0), {.backlog = 0});
        auto accepting = spawn([&]() -> task<> { (void)co_await l.accept(); });
        co_await sleep(5ms);
        accepting.cancel();
        bool cancelled = false;
        try {
            co_await accepting;
        } catch (const cancelled_error&) {
            cancelled = true;
        }
        CHECK(cancelled);

        // connect to a listener whose backlog is full: the SYN is dropped and the
        // connect hangs until cancelled
        auto first = co_await net::tcp_stream::connect(l.local_endpoint());
        std::vector<net::tcp_stream> filling;
        bool connect_timed_out = false;
        try {
            for (int i = 0; i < 4; ++i)
                filling.push_back(co_await wait_for(net::tcp_stream::connect(l.local_endpoint()), 100ms));
        } catch (const timeout_error&) {
            connect_timed_out = true;
        }
        CHECK(connect_timed_out);

        // write to a peer that never reads: the socket buffers fill, then write_all waits
        auto peer = co_await l.accept();
        const std::string chunk(1 << 20, 'w');
        const auto t0 = clock::now();
        bool write_timed_out = false;
        try {
            co_await wait_for(
                [&]() -> task<> {
                    for (;;) co_await first.write_all(chunk);
                },
                100ms);
        } catch (const timeout_error&) {
            write_timed_out = true;
        }
        CHECK(write_timed_out);
        CHECK(ms_since(t0) < 5000);

        // read (the peer never writes), through future::cancel
        auto reading = spawn([&]() -> task<> {
            std::array<char, 8> buf;
            (void)co_await first.read_some(buf);
        });
        co_await sleep(5ms);
        reading.cancel();
        bool read_cancelled = false;
        try {
            co_await reading;
        } catch (const cancelled_error&) {
            read_cancelled = true;
        }
        CHECK(read_cancelled);
        CHECK(loop.io().in_flight() == 0);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("64 MiB cross the loopback intact") {
    run([]() -> task<> {
        constexpr std::size_t total = 64u << 20;
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto receiver = spawn([&]() -> task<std::pair<std::size_t, std::uint64_t>> {
            auto s = co_await l.accept();
            std::vector<char> buf(256 * 1024);
            std::size_t got = 0;
            std::uint64_t h = 1469598103934665603ULL;
            for (std::size_t n; (n = co_await s.read_some(buf)) > 0;) {
                h = fnv1a(buf.data(), n, h);
                got += n;
            }
            co_return std::pair{got, h};
        });
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        std::vector<char> chunk(1 << 20);
        std::uint64_t sent_hash = 1469598103934665603ULL;
        std::uint64_t x = 88172645463325252ULL;
        for (std::size_t off = 0; off < total; off += chunk.size()) {
            for (auto& ch : chunk) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ch = static_cast<char>(x);
            }
            sent_hash = fnv1a(chunk.data(), chunk.size(), sent_hash);
            co_await c.write_all(chunk);
        }
        c.shutdown();
        const auto [got, hash] = co_await receiver;
        CHECK(got == total);
        CHECK(hash == sent_hash);
    }());
}

TEST_CASE("UDP datagrams: send_to, recv_from, truncation and connected sockets") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto a = net::udp_socket::bind(net::endpoint::loopback(0));
        auto b = net::udp_socket::bind(net::endpoint::loopback(0));
        const std::size_t sent = co_await b.send_to(std::string_view("ping"), a.local_endpoint());
        CHECK(sent == 4);
        std::array<char, 64> buf;
        const net::datagram d = co_await a.recv_from(buf);
        CHECK(std::string(buf.data(), d.size) == "ping");
        CHECK(d.from == b.local_endpoint());
        CHECK_FALSE(d.truncated);

        co_await b.send_to(std::string(100, 'z'), a.local_endpoint());
        std::array<char, 10> small;
        const net::datagram t = co_await a.recv_from(small);
        CHECK(t.size == 10);
        CHECK(t.truncated);

        a.connect(b.local_endpoint());
        co_await a.send(std::string_view("pong"));
        const net::datagram r = co_await b.recv_from(buf);
        CHECK(std::string(buf.data(), r.size) == "pong");

        // a datagram that never comes: the wait is cancelled cleanly
        bool timed_out = false;
        try {
            co_await wait_for(b.recv_from(buf), 20ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(event_loop::current().io().in_flight() == 0);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("an opened UDP socket is unbound until its first send_to, which picks its port") {
    const int fds = fd_count();
    run([]() -> task<> {
        for (const bool v6 : {false, true}) {
            auto receiver = net::udp_socket::bind(v6 ? net::endpoint::loopback_v6(0) : net::endpoint::loopback(0));
            const net::endpoint to = receiver.local_endpoint();
            auto s = v6 ? net::udp_socket::open(AF_INET6) : net::udp_socket::open();
            REQUIRE(s.is_open());
            const net::endpoint before = s.local_endpoint();
            CHECK(before.is_v6() == v6);
            CHECK(before.port() == 0);  // not bound yet
            const std::size_t sent = co_await s.send_to(std::string_view("hello"), to);
            CHECK(sent == 5);
            std::array<char, 16> buf{};
            const net::datagram d = co_await receiver.recv_from(buf);
            CHECK(std::string(buf.data(), d.size) == "hello");
            const net::endpoint after = s.local_endpoint();
            CHECK(after.port() != 0);
            CHECK(d.from.port() == after.port());
            CHECK(d.from.is_v6() == v6);
            // The port stays: an answer to it arrives.
            co_await receiver.send_to(std::string_view("back"), d.from);
            const net::datagram r = co_await s.recv_from(buf);
            CHECK(std::string(buf.data(), r.size) == "back");
            CHECK(r.from == to);
        }
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("a connected UDP socket receives with recv, and only from its peer") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto a = net::udp_socket::bind(net::endpoint::loopback(0));
        auto peer = net::udp_socket::bind(net::endpoint::loopback(0));
        auto other = net::udp_socket::bind(net::endpoint::loopback(0));
        const net::endpoint a_ep = a.local_endpoint();
        a.connect(peer.local_endpoint());
        // From another sender first: the kernel drops it, so the peer's come first.
        const std::size_t n_other = co_await other.send_to(std::string_view("intruder"), a_ep);
        CHECK(n_other == 8);
        co_await peer.send_to(std::string_view("from peer"), a_ep);
        co_await other.send_to(std::string_view("intruder"), a_ep);
        const std::string long_one(100, 'p');
        co_await peer.send_to(long_one, a_ep);
        std::array<char, 64> buf{};
        const std::size_t n = co_await a.recv(buf);
        CHECK(std::string(buf.data(), n) == "from peer");
        // recv gets one datagram, cut to the buffer
        std::array<char, 10> small{};
        const std::size_t cut = co_await a.recv(small);
        CHECK(cut == 10);
        CHECK(std::string(small.data(), cut) == std::string(10, 'p'));
        // and nothing else is waiting (no intruder after them either)
        const auto pending = ::recv(a.native_handle(), buf.data(), buf.size(), MSG_DONTWAIT);
        const int pending_errno = errno;
        CHECK(pending == -1);
        CHECK(pending_errno == EAGAIN);
        // recv_from on a connected socket names the peer
        co_await peer.send_to(std::string_view("again"), a_ep);
        const net::datagram d = co_await a.recv_from(buf);
        CHECK(std::string(buf.data(), d.size) == "again");
        CHECK(d.from == peer.local_endpoint());
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("UDP over IPv6 loopback: send_to, recv_from, and connected send and recv") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto a = net::udp_socket::bind(net::endpoint::loopback_v6(0));
        auto b = net::udp_socket::bind(net::endpoint::loopback_v6(0));
        const net::endpoint a_ep = a.local_endpoint();
        const net::endpoint b_ep = b.local_endpoint();
        CHECK(a_ep.is_v6());
        CHECK(a_ep.address() == "::1");
        CHECK(a_ep.port() != 0);
        CHECK(a_ep.to_string() == "[::1]:" + std::to_string(a_ep.port()));
        const std::size_t sent = co_await b.send_to(std::string_view("six"), a_ep);
        CHECK(sent == 3);
        std::array<char, 64> buf{};
        const net::datagram d = co_await a.recv_from(buf);
        CHECK(std::string(buf.data(), d.size) == "six");
        CHECK(d.from.is_v6());
        CHECK(d.from == b_ep);
        CHECK_FALSE(d.truncated);

        a.connect(b_ep);
        b.connect(a_ep);
        co_await a.send(std::string_view("over"));
        const std::size_t n = co_await b.recv(buf);
        CHECK(std::string(buf.data(), n) == "over");
        co_await b.send(std::string_view("and out"));
        const net::datagram r = co_await a.recv_from(buf);
        CHECK(std::string(buf.data(), r.size) == "and out");
        CHECK(r.from == b_ep);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("UDP errors name the operation and the endpoint") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto a = net::udp_socket::bind(net::endpoint::loopback(0));
        const net::endpoint a_ep = a.local_endpoint();
        std::error_code code;
        std::string what;
        const auto caught = [&](const std::system_error& e) {
            code = e.code();
            what = e.what();
        };
        const auto reset = [&] {
            code.clear();
            what.clear();
        };

        // bind in use
        try {
            (void)net::udp_socket::bind(a_ep);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::address_in_use);
        CHECK_THAT(what, Catch::Contains("udp_socket::bind " + a_ep.to_string()));

        // send_to port 0, and to an IPv6 address from an IPv4 socket
        reset();
        const net::endpoint port_zero = net::endpoint::loopback(0);
        try {
            (void)co_await a.send_to(std::string_view("x"), port_zero);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("udp_socket::send_to 127.0.0.1:0"));
        reset();
        const net::endpoint v6 = net::endpoint::loopback_v6(9);
        try {
            (void)co_await a.send_to(std::string_view("x"), v6);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::address_family_not_supported);
        CHECK_THAT(what, Catch::Contains("udp_socket::send_to [::1]:9"));

        // connect to an address of the other family
        reset();
        try {
            a.connect(v6);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::address_family_not_supported);
        CHECK_THAT(what, Catch::Contains("udp_socket::connect [::1]:9"));

        // connected to a port nobody is on: the kernel's "port unreachable" comes back
        // as ECONNREFUSED on the next receive
        reset();
        auto c = net::udp_socket::open();
        c.connect(unused_udp_endpoint());
        co_await c.send(std::string_view("anyone?"));
        std::array<char, 16> buf{};
        try {
            auto waiting = wait_for(c.recv(buf), 10s);
            (void)co_await waiting;
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::connection_refused);
        CHECK_THAT(what, Catch::Contains("udp_socket::recv: "));

        // a closed socket, and one never opened
        a.close();
        reset();
        try {
            (void)co_await a.recv(buf);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("udp_socket::recv: "));
        reset();
        try {
            (void)co_await a.recv_from(buf);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("udp_socket::recv_from"));
        reset();
        const net::udp_socket never_opened;
        try {
            (void)co_await never_opened.send_to(std::string_view("x"), a_ep);
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("udp_socket::send_to " + a_ep.to_string()));
        reset();
        try {
            (void)co_await never_opened.send(std::string_view("x"));
        } catch (const std::system_error& e) {
            caught(e);
        }
        CHECK(code == std::errc::bad_file_descriptor);
        CHECK_THAT(what, Catch::Contains("udp_socket::send: "));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("sockets closed after their loop has gone are released") {
    const int fds = fd_count();
    {
        net::tcp_listener kept;
        run([&]() -> task<> {
            kept = net::tcp_listener::bind(net::endpoint::loopback(0));
            co_return;
        }());
        CHECK(kept.is_open());
    }
    CHECK(fd_count() == fds);
}
