// wait_for on one I/O operation: the deadline is a timer entry beside the op (no task),
// with the answers wait_for gives over a task.

#include <catch2/catch.hpp>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// The deadline path is taken (an awaiter of its own, not a task around the read).
using read_with_deadline =
    decltype(wait_for(std::declval<net::tcp_stream&>().read_some(mutable_buffer{}), std::chrono::seconds(1)));
static_assert(std::is_base_of_v<detail::io_awaiter, read_with_deadline>);

}  // namespace

TEST_CASE("io deadline: a read with no data times out, and the socket reads what comes later") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& loop = event_loop::current();
        std::array<char, 64> buf{};
        const auto t0 = clock::now();
        bool timed_out = false;
        try {
            (void)co_await wait_for(pair.server.read_some(buf), 50ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(ms_since(t0) >= 50);
        CHECK(loop.armed_timers() == 0);
        CHECK(loop.io().in_flight() == 0);  // the read was cancelled and has ended
        co_await pair.client.write_all(std::string_view("later"));
        const std::size_t n = co_await wait_for(pair.server.read_some(buf), 5s);
        CHECK(std::string_view(buf.data(), n) == "later");
    }());
}

TEST_CASE("io deadline: a read that completes first returns its value and leaves no timer") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& loop = event_loop::current();
        std::array<char, 64> buf{};
        auto reader =
            spawn([&]() -> task<std::size_t> { co_return co_await wait_for(pair.server.read_some(buf), 5s); });
        co_await sleep(1ms);
        CHECK(loop.armed_timers() == 1);  // the read's deadline, and nothing else
        co_await pair.client.write_all(std::string_view("quick"));
        const std::size_t n = co_await std::move(reader);
        CHECK(std::string_view(buf.data(), n) == "quick");
        CHECK(loop.armed_timers() == 0);
    }());
}

TEST_CASE("io deadline: an expired deadline times out without reading, every time") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        co_await pair.client.write_all(std::string_view("kept"));
        co_await sleep(1ms);  // the data has arrived: a read would take it at once
        std::array<char, 64> buf{};
        for (const auto d : {0ms, -5ms}) {
            bool timed_out = false;
            try {
                (void)co_await wait_for(pair.server.read_some(buf), d);
            } catch (const timeout_error&) {
                timed_out = true;
            }
            CHECK(timed_out);
        }
        const std::size_t n = co_await wait_for(pair.server.read_some(buf), 5s);
        CHECK(std::string_view(buf.data(), n) == "kept");  // nothing was read by the expired ones
    }());
}

TEST_CASE("io deadline: an outside cancel ends the task cancelled, not timed out") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::array<char, 64> buf{};
        auto reader = spawn([&]() -> task<> { (void)co_await wait_for(pair.server.read_some(buf), 5s); });
        co_await sleep(1ms);
        reader.cancel();
        const bool cancelled = co_await ends_cancelled(reader);
        CHECK(cancelled);
        CHECK(event_loop::current().armed_timers() == 0);
    }());
}

TEST_CASE("io deadline: write_all to a peer that does not read times out, the send buffer full") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string big(64 << 20, 'x');  // far more than both socket buffers hold
        bool timed_out = false;
        try {
            co_await wait_for(pair.server.write_all(big), 100ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(event_loop::current().armed_timers() == 0);
        CHECK(event_loop::current().io().in_flight() == 0);
    }());
}

TEST_CASE("io deadline: an accept and a wait_readable time out too") {
    run([]() -> task<> {
        auto listener = net::tcp_listener::bind(net::endpoint::loopback(0));
        bool accept_timed_out = false;
        try {
            (void)co_await wait_for(listener.accept(), 20ms);
        } catch (const timeout_error&) {
            accept_timed_out = true;
        }
        CHECK(accept_timed_out);
        pipe_pair p;
        bool poll_timed_out = false;
        try {
            (void)co_await wait_for(wait_readable(p.rd), 20ms);
        } catch (const timeout_error&) {
            poll_timed_out = true;
        }
        CHECK(poll_timed_out);
        // Both still work once something happens.
        auto c = co_await net::tcp_stream::connect(listener.local_endpoint());
        auto s = co_await wait_for(listener.accept(), 5s);
        CHECK(s.is_open());
    }());
}

TEST_CASE("io deadline: a loop torn down with a deadline armed frees it with the frame") {
    reports r;
    {
        event_loop loop(r.options());
        loop.run([]() -> task<> {
            auto pair = co_await connect_pair();
            std::array<char, 64> buf{};
            // Left waiting when run() returns: the loop ends it as it closes.
            spawn([](net::tcp_stream s) -> task<> {
                std::array<char, 64> b{};
                (void)co_await wait_for(s.read_some(b), 1h);
            }(std::move(pair.server)));
            co_await sleep(1ms);
            CHECK(event_loop::current().armed_timers() == 1);  // the read's deadline
            (void)buf;
        }());
        // The loop's destructor ends the task; the deadline leaves the heap with its frame
        // (ASan reports a timer that outlives it).
    }
    CHECK(r.items.empty());
}
