// What the epoll backend knows of an attached socket's readiness: a short transfer on a
// byte stream drained it (or filled its send buffer), so the next operation waits for the
// edge instead of meeting EAGAIN; an end of stream or a datagram socket never leaves an
// operation waiting for an edge that will not come. On io_uring the same tests check the
// behaviour only (the kernel waits for readiness itself).

#include <catch2/catch.hpp>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// Counts the syscalls the epoll backend tries on one fd, and those that found nothing.
struct attempts {
    static inline int fd = -1;
    static inline int tried = 0;
    static inline int empty = 0;

    explicit attempts(int watched) {
        fd = watched;
        tried = empty = 0;
        detail::epoll_attempt_hook = [](const detail::io_op& op, bool finished) {
            if (op.fd != fd) return;
            ++tried;
            if (!finished) ++empty;
        };
    }
    attempts(const attempts&) = delete;
    attempts& operator=(const attempts&) = delete;
    ~attempts() {
        detail::epoll_attempt_hook = nullptr;
        fd = -1;
    }
};

bool on_epoll() { return expected_backend() == backend_kind::epoll; }

}  // namespace

TEST_CASE("readiness: after a short read the next read waits for data without a recv that fails") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& c = pair.client;
        auto& s = pair.server;
        const attempts count(s.native_handle());
        std::array<char, 4096> buf{};
        co_await c.write_all(std::string_view("hello"));
        const std::size_t first = co_await wait_for(s.read_some(buf), 5s);
        CHECK(first == 5);  // short: the socket is drained
        auto next = spawn([&]() -> task<std::size_t> { co_return co_await s.read_some(buf); });
        co_await sleep(1ms);  // the read is pending, and the loop has waited for events
        CHECK_FALSE(next.done());
        co_await c.write_all(std::string_view("world"));
        const std::size_t second = co_await wait_for(std::move(next), 5s);
        CHECK(second == 5);
        CHECK(std::string_view(buf.data(), 5) == "world");
        if (on_epoll()) {
            CHECK(count.tried == 2);  // one recv for each message
            CHECK(count.empty == 0);
        }
    }());
}

TEST_CASE("readiness: an echo of many small messages never meets EAGAIN on epoll") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& c = pair.client;
        auto& s = pair.server;
        const attempts count(s.native_handle());
        auto echo = spawn([&s]() -> task<int> {
            std::array<char, 4096> buf{};
            int messages = 0;
            for (std::size_t n; (n = co_await s.read_some(buf)) > 0; ++messages)
                co_await s.write_all(const_buffer(buf.data(), n));
            co_return messages;
        });
        for (int i = 0; i < 200; ++i) {
            const std::string msg = "message " + std::to_string(i);
            co_await c.write_all(msg);
            std::string back(msg.size(), '\0');
            co_await wait_for(c.read_exact(back), 5s);
            CHECK(back == msg);
        }
        c.shutdown();
        const int echoed = co_await wait_for(std::move(echo), 5s);
        CHECK(echoed == 200);
        // Each message: one recv and one send; then the end of the stream (one recv).
        if (on_epoll()) {
            CHECK(count.empty == 0);
            CHECK(count.tried == 2 * 200 + 1);
        }
    }());
}

TEST_CASE("readiness: data then the end of the stream: the read after a short one returns 0") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& c = pair.client;
        auto& s = pair.server;
        co_await c.write_all(std::string_view("abc"));
        c.shutdown();
        // The loop takes the event that shows both (EPOLLIN and EPOLLRDHUP) before any
        // read: no further edge will come for this socket.
        co_await sleep(1ms);
        std::array<char, 64> buf{};
        const std::size_t first = co_await wait_for(s.read_some(buf), 5s);
        CHECK(first == 3);
        const std::size_t end = co_await wait_for(s.read_some(buf), 5s);
        CHECK(end == 0);
        const std::size_t again = co_await wait_for(s.read_some(buf), 5s);
        CHECK(again == 0);
    }());
}

TEST_CASE("readiness: a peer that resets after sending: the read after a short one reports the reset") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& c = pair.client;
        auto& s = pair.server;
        co_await c.write_all(std::string_view("abc"));
        std::array<char, 64> buf{};
        const std::size_t first = co_await wait_for(s.read_some(buf), 5s);
        CHECK(first == 3);
        // Unread data on close makes the kernel send a reset.
        co_await s.write_all(std::string_view("unread"));
        co_await sleep(1ms);
        c.close();
        co_await sleep(1ms);  // the loop sees the error event before the read
        // Either the reset itself, or the end of the stream first and then the reset; never a
        // wait that runs into the 5 s bound.
        bool timed_out = false;
        bool reset = false;
        try {
            (void)co_await wait_for(s.read_some(buf), 5s);
            (void)co_await wait_for(s.read_some(buf), 5s);
        } catch (const timeout_error&) {
            timed_out = true;
        } catch (const std::system_error& e) {
            reset = e.code() == std::errc::connection_reset;
        }
        CHECK_FALSE(timed_out);
        CHECK(reset);
    }());
}

TEST_CASE("readiness: a datagram socket reads each queued datagram at once") {
    run([]() -> task<> {
        auto a = net::udp_socket::bind(net::endpoint::loopback(0));
        auto b = net::udp_socket::bind(net::endpoint::loopback(0));
        a.connect(b.local_endpoint());
        b.connect(a.local_endpoint());
        for (const char* m : {"one", "two", "three"}) co_await a.send(std::string_view(m));
        co_await sleep(1ms);  // the loop takes the socket's event before any read
        std::array<char, 64> buf{};
        std::vector<std::string> got;
        for (int i = 0; i < 3; ++i) {
            const std::size_t n = co_await wait_for(b.recv(buf), 5s);
            got.emplace_back(buf.data(), n);  // each shorter than the buffer
        }
        CHECK(got == std::vector<std::string>{"one", "two", "three"});
    }());
}

TEST_CASE("readiness: a write larger than the send buffer waits for room, not for EAGAIN") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& c = pair.client;
        auto& s = pair.server;
        const attempts count(s.native_handle());
        const std::string big(8 << 20, 'x');
        auto writer = spawn([&]() -> task<> { co_await s.write_all(big); });
        std::vector<char> buf(1 << 16);
        std::size_t got = 0;
        while (got < big.size()) got += co_await wait_for(c.read_some(buf), 5s);
        co_await wait_for(std::move(writer), 5s);
        CHECK(got == big.size());
        if (on_epoll()) {
            CHECK(count.tried >= 2);  // the send buffer filled at least once
            CHECK(count.empty == 0);
        }
    }());
}
