// Registered files (io_uring: each socket of corio's gets an entry in the ring's table of
// registered files, under its own number, and its operations use that entry). What a
// program sees must not change: a closed socket really closes (the table must not keep it
// open), a number closed and reused at once serves the new socket, and where the kernel
// refuses the table, plain descriptors do the same work. Every test runs on both
// backends; the table's count is checked where the loop runs io_uring.

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// The sockets in the table now (0 on epoll).
std::size_t fixed_now() {
#if CORIO_HAS_IO_URING
    if (auto* u = uring_of(event_loop::current())) return u->fixed_files();
#endif
    return 0;
}

bool on_uring() { return event_loop::current().backend() == backend_kind::io_uring; }

task<std::string> round_trip(connected_pair& p, std::string_view msg) {
    co_await p.client.write_all(msg);
    std::string back(msg.size(), '\0');
    co_await p.server.read_exact(back);
    co_return back;
}

// Whether a read on s sees the end of the stream (or a reset) within 5 s.
task<bool> sees_end(net::tcp_stream& s) {
    std::array<char, 64> buf{};
    try {
        const std::size_t n = co_await wait_for(s.read_some(buf), 5s);
        co_return n == 0;
    } catch (const std::system_error& e) {
        co_return e.code() == std::errc::connection_reset;
    }
}

}  // namespace

TEST_CASE("registered files: sockets get their entries, and a closed one really closes") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string back = co_await round_trip(pair, "hello");
        CHECK(back == "hello");
        // The listener is gone; the two ends of the connection have entries.
        if (on_uring()) CHECK(fixed_now() == 2);
        pair.server.close();
        const bool ended = co_await sees_end(pair.client);
        CHECK(ended);  // the table did not keep the server's socket open
        if (on_uring()) CHECK(fixed_now() == 1);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("registered files: a number closed and reused at once serves its new socket") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        for (int round = 0; round < 20; ++round) {
            auto accepting = spawn(l.accept());
            auto c = co_await net::tcp_stream::connect(ep);
            auto s = co_await accepting;
            const int number = c.native_handle();
            c.close();
            // The next socket takes the number just freed, before the loop has run a turn.
            auto accepting2 = spawn(l.accept());
            auto c2 = co_await net::tcp_stream::connect(ep);
            auto s2 = co_await accepting2;
            if (round == 0) CHECK(c2.native_handle() == number);
            const std::string msg = "round " + std::to_string(round);
            co_await c2.write_all(std::string_view(msg));
            std::string back(msg.size(), '\0');
            co_await s2.read_exact(back);
            CHECK(back == msg);
            co_await s2.write_all(std::string_view(msg));
            std::string back2(msg.size(), '\0');
            co_await c2.read_exact(back2);
            CHECK(back2 == msg);
            const bool ended = co_await sees_end(s);  // the first client really closed
            CHECK(ended);
        }
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("registered files: 200 connections open and close, and the table empties") {
    const int fds = fd_count();
    run([]() -> task<> {
        std::vector<connected_pair> pairs;
        for (int i = 0; i < 100; ++i) pairs.push_back(co_await connect_pair());
        for (auto& p : pairs) {
            const std::string back = co_await round_trip(p, "x");
            CHECK(back == "x");
        }
        if (on_uring()) CHECK(fixed_now() == 200);
        pairs.clear();
        // Sockets with a receive armed are released (and leave the table) when the kernel has
        // ended it: a turn or two of the loop.
        const auto t0 = clock::now();
        while (fixed_now() != 0 && clock::now() - t0 < 5s) co_await sleep(1ms);
        CHECK(fixed_now() == 0);
    }());
    CHECK(fd_count() == fds);
}

#if CORIO_HAS_IO_URING
TEST_CASE("registered files: a kernel that refuses entries gets plain descriptors (io_uring)") {
    detail::uring_request_fault = [](detail::uring_request r) { return r == detail::uring_request::register_file; };
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string back = co_await round_trip(pair, "plain");
        CHECK(back == "plain");
        CHECK(fixed_now() == 0);
        pair.server.close();
        const bool ended = co_await sees_end(pair.client);
        CHECK(ended);
    }());
    detail::uring_request_fault = nullptr;
}
#endif
