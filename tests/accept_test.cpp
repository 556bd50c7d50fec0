// Accepting connections (io_uring: one multishot accept per listener, its connections
// handed to the accept waiting or queued on the listener for the next one). What a server
// sees must be what plain accepts give: every connection, in the order they came, none
// lost to a cancelled accept, none left open by a closed listener, and the listener's
// backlog limit in force while nobody accepts. Every test runs on both backends; the
// multishot's counters are checked where the loop runs io_uring.

#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// A client that connects and says which one it is: "client-<i>\n" (9 or 10 bytes).
std::string hello(std::size_t i) { return "client-" + std::to_string(i) + "\n"; }

task<net::tcp_stream> connect_and_say(const net::endpoint& ep, std::size_t i) {
    auto c = co_await net::tcp_stream::connect(ep);
    const std::string h = hello(i);
    co_await c.write_all(std::string_view(h));
    co_return c;
}

// Reads a client's hello from an accepted stream.
task<std::string> read_hello(net::tcp_stream& s) {
    std::string out;
    char ch = 0;
    while (out.empty() || out.back() != '\n') {
        const std::size_t n = co_await s.read_some(mutable_buffer(&ch, 1));
        if (n == 0) break;
        out += ch;
    }
    co_return out;
}

}  // namespace

TEST_CASE("accept: 50 connections one after another come in order through one multishot accept") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        std::vector<net::tcp_stream> clients;
        for (std::size_t i = 0; i < 50; ++i) {
            auto accepting = spawn(l.accept());
            clients.push_back(co_await connect_and_say(ep, i));
            auto s = co_await accepting;
            const std::string got = co_await read_hello(s);
            CHECK(got == hello(i));
        }
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) {
            CHECK(u->multishot_accept());
            CHECK(u->multishot_accepts() == 1);
        }
#endif
    }());
}

TEST_CASE("accept: connections that come while nobody accepts wait for the next accept, in order") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto accepting = spawn(l.accept());  // arms the multishot on io_uring
        auto first = co_await connect_and_say(ep, 0);
        auto s0 = co_await accepting;
        // Nobody accepts now: these are queued on the listener (io_uring) or in its backlog.
        std::vector<net::tcp_stream> clients;
        for (std::size_t i = 1; i <= 5; ++i) clients.push_back(co_await connect_and_say(ep, i));
        for (std::size_t i = 1; i <= 5; ++i) {
            auto s = co_await l.accept();
            const std::string got = co_await read_hello(s);
            CHECK(got == hello(i));
        }
        const std::string got0 = co_await read_hello(s0);
        CHECK(got0 == hello(0));
    }());
}

TEST_CASE("accept: a cancelled accept loses no connection, queued or still to come") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto a = spawn(l.accept());
        auto c0 = co_await connect_and_say(ep, 0);
        auto s0 = co_await a;
        // One queued (io_uring) before an accept that is cancelled, one that comes after.
        auto c1 = co_await connect_and_say(ep, 1);
        auto cancelled = spawn(l.accept());
        co_await yield();
        cancelled.cancel();
        // The connection may have been handed over before the cancel arrived: the task then
        // ended with it (as a plain accept that won the race does), and it is not lost.
        bool ended_cancelled = false;
        net::tcp_stream s1;
        try {
            s1 = co_await cancelled;
        } catch (const cancelled_error&) {
            ended_cancelled = true;
        }
        if (ended_cancelled) s1 = co_await l.accept();
        const std::string got1 = co_await read_hello(s1);
        CHECK(got1 == hello(1));
        auto timed_out = false;
        try {
            (void)co_await wait_for(l.accept(), 20ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        auto c2 = co_await connect_and_say(ep, 2);
        auto s2 = co_await l.accept();
        const std::string got2 = co_await read_hello(s2);
        CHECK(got2 == hello(2));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("accept: closing a listener closes the connections nobody accepted and ends a waiting accept") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto a = spawn(l.accept());
        auto c0 = co_await connect_and_say(ep, 0);
        auto s0 = co_await a;
        std::vector<net::tcp_stream> clients;
        for (std::size_t i = 1; i <= 3; ++i) clients.push_back(co_await connect_and_say(ep, i));
        co_await sleep(10ms);  // let the kernel hand them over (io_uring: to the listener's queue)
        auto waiting = spawn(l.accept());
        // The waiting accept takes client 1; the next one waits on a listener then closed.
        auto s1 = co_await waiting;
        auto last = spawn(l.accept());
        (void)co_await l.accept();  // client 2
        (void)co_await l.accept();  // client 3
        co_await yield();
        l.close();
        std::string what;
        try {
            (void)co_await last;
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::bad_file_descriptor);
            what = e.what();
        }
        CHECK_THAT(what, Catch::Contains("the socket was closed"));
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("accept: a closed listener's queued connections are closed, and their clients see the end") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto a = spawn(l.accept());
        auto c0 = co_await connect_and_say(ep, 0);
        auto s0 = co_await a;
        std::vector<net::tcp_stream> clients;
        for (std::size_t i = 1; i <= 4; ++i) clients.push_back(co_await connect_and_say(ep, i));
        co_await sleep(10ms);  // queued on the listener (io_uring) or in its backlog (epoll)
        l.close();
        // Each client sees its connection end (an orderly end or a reset), promptly.
        for (auto& c : clients) {
            std::array<char, 16> buf{};
            bool ended = false;
            try {
                const std::size_t n = co_await wait_for(c.read_some(buf), 5s);
                ended = n == 0;
            } catch (const std::system_error& e) {
                ended = e.code() == std::errc::connection_reset;
            }
            CHECK(ended);
        }
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("accept: a listener nobody accepts on stops taking connections at its share, losing none") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto a = spawn(l.accept());
        auto c0 = co_await connect_and_say(ep, 0);
        auto s0 = co_await a;
        constexpr std::size_t n = 60;  // more than a listener queues before it stops
        std::vector<net::tcp_stream> clients;
        for (std::size_t i = 1; i <= n; ++i) clients.push_back(co_await connect_and_say(ep, i));
        for (std::size_t i = 1; i <= n; ++i) {
            auto s = co_await l.accept();
            const std::string got = co_await read_hello(s);
            CHECK(got == hello(i));
        }
#if CORIO_HAS_IO_URING
        // Stopped once at its share, armed again by the accept that found the queue empty.
        if (auto* u = uring_of(event_loop::current())) CHECK(u->multishot_accepts() == 2);
#endif
    }());
}

TEST_CASE("accept: a non-blocking listener accepts as a blocking one does") {
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        l.set_nonblocking();
        const auto ep = l.local_endpoint();
        for (std::size_t i = 0; i < 5; ++i) {
            auto accepting = spawn(l.accept());
            auto c = co_await connect_and_say(ep, i);
            auto s = co_await accepting;
            const std::string got = co_await read_hello(s);
            CHECK(got == hello(i));
        }
    }());
}

#if CORIO_HAS_IO_URING
TEST_CASE("accept: a kernel without multishot accept gets plain accepts (io_uring)") {
    const request_fault_guard g([](detail::uring_request r) { return r == detail::uring_request::multishot_accept; });
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        for (std::size_t i = 0; i < 5; ++i) {
            auto accepting = spawn(l.accept());
            auto c = co_await connect_and_say(ep, i);
            auto s = co_await accepting;
            const std::string got = co_await read_hello(s);
            CHECK(got == hello(i));
        }
        if (auto* u = uring_of(event_loop::current())) {
            CHECK_FALSE(u->multishot_accept());
            CHECK(u->multishot_accepts() == 1);  // refused once, then never asked again
        }
    }());
}
#endif
