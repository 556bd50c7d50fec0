// The send side of a stream and the receive that follows it: zero-copy sends for large
// writes (io_uring, loop_options::zero_copy_send), which must end only once the kernel
// has let go of the caller's buffer, and a recv issued right after a send, which waits
// for readiness before it tries (IORING_RECVSEND_POLL_FIRST). The bytes a peer sees must
// be exactly what plain sends give, through errors, cancels and deadlines. Every test runs
// on both backends; the counters are checked where the loop runs io_uring.

#include <catch2/catch.hpp>

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "test_util.hpp"

#if CORIO_HAS_IO_URING
#include <liburing.h>
#endif

using namespace test;
using namespace corio;

namespace {

// Reads n bytes and counts those that differ from the pattern.
task<std::size_t> read_and_check(net::tcp_stream& s, std::size_t n) {
    std::vector<char> buf(256 * 1024);
    std::size_t done = 0;
    std::size_t wrong = 0;
    while (done < n) {
        const std::size_t got = co_await s.read_some(buf);
        if (got == 0) break;
        for (std::size_t i = 0; i < got; ++i) wrong += buf[i] != pattern(done + i) ? 1 : 0;
        done += got;
    }
    co_return wrong + (n - done);
}

#if CORIO_HAS_IO_URING
// Zero-copy sends over loopback too (they skip a peer on this host otherwise).
struct zero_copy_locally {
    zero_copy_locally() { detail::uring_zero_copy_local = true; }
    zero_copy_locally(const zero_copy_locally&) = delete;
    zero_copy_locally& operator=(const zero_copy_locally&) = delete;
    ~zero_copy_locally() { detail::uring_zero_copy_local = false; }
};
#else
struct zero_copy_locally {};
#endif

loop_options zero_copy_from(std::size_t bytes) {
    loop_options o;
    o.zero_copy_send = bytes;
    return o;
}

}  // namespace

TEST_CASE("zero-copy send: 16 MiB in writes of 1 MiB arrive intact") {
    [[maybe_unused]] const zero_copy_locally local;
    event_loop loop(zero_copy_from(64 * 1024));
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        constexpr std::size_t total = 16u << 20;
        constexpr std::size_t piece = 1u << 20;
        auto reader = spawn(read_and_check(pair.server, total));
        for (std::size_t done = 0; done < total; done += piece) {
            const std::string chunk = pattern_text(done, piece);
            co_await pair.client.write_all(std::string_view(chunk));
        }
        const std::size_t wrong = co_await reader;
        CHECK(wrong == 0);
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) {
            if (u->has_zero_copy_send())
                CHECK(u->zero_copy_sends() >= total / piece);
            else
                CHECK(u->zero_copy_sends() == 0);
        }
#endif
    }());
}

TEST_CASE("zero-copy send: small writes stay plain sends, and the default is off") {
    event_loop loop(zero_copy_from(64 * 1024));
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string small(1000, 's');
        co_await pair.client.write_all(std::string_view(small));
        std::string back(small.size(), '\0');
        co_await pair.server.read_exact(back);
        CHECK(back == small);
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) CHECK(u->zero_copy_sends() == 0);
#endif
    }());
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string big(1u << 20, 'b');
        auto reader = spawn([&]() -> task<std::size_t> {
            std::vector<char> buf(1u << 20);
            co_await pair.server.read_exact(buf);
            co_return buf.size();
        });
        co_await pair.client.write_all(std::string_view(big));
        const std::size_t n = co_await reader;
        CHECK(n == big.size());
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) CHECK(u->zero_copy_sends() == 0);
#endif
    }());
}

TEST_CASE("zero-copy send: a peer that goes away mid-write is an error, not a hang") {
    [[maybe_unused]] const zero_copy_locally local;
    event_loop loop(zero_copy_from(64 * 1024));
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string chunk(1u << 20, 'x');
        auto writer = spawn([&]() -> task<std::error_code> {
            try {
                for (int i = 0; i < 64; ++i) co_await pair.client.write_all(std::string_view(chunk));
            } catch (const std::system_error& e) {
                co_return e.code();
            }
            co_return std::error_code();
        });
        // The peer reads a little, then closes with unread data: the writer's next sends
        // meet a reset connection.
        std::array<char, 1000> buf{};
        (void)co_await pair.server.read_some(buf);
        pair.server.close();
        const std::error_code code = co_await wait_for(std::move(writer), 10s);
        const bool peer_gone = code == std::errc::connection_reset || code == std::errc::broken_pipe;
        CHECK(peer_gone);
    }());
}

TEST_CASE("zero-copy send: a write ends only once the kernel has let go of the buffer") {
    [[maybe_unused]] const zero_copy_locally local;
    event_loop loop(zero_copy_from(64 * 1024));
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        constexpr std::size_t total = 1u << 20;
        const std::string all = pattern_text(0, total);
        auto writer = spawn(pair.client.write_all(std::string_view(all)));
        co_await sleep(50ms);
        std::size_t wrong = 0;
#if CORIO_HAS_IO_URING
        // Over loopback the sent pages wait in the peer's receive queue until it reads them:
        // the kernel still holds the buffer, so the write has not ended.
        if (auto* u = uring_of(event_loop::current()); u != nullptr && u->has_zero_copy_send()) {
            CHECK_FALSE(writer.done());
            CHECK(u->zero_copy_sends() == 1);
        }
#endif
        wrong = co_await read_and_check(pair.server, total);
        CHECK(wrong == 0);
        co_await writer;  // ended once the peer had read it all
    }());
}

TEST_CASE("zero-copy send: skipped for a peer on this host, where a deadline still ends a write at once") {
    event_loop loop(zero_copy_from(64 * 1024));
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        const std::string chunk(4u << 20, 'y');
        bool timed_out = false;
        const auto t0 = clock::now();
        try {
            for (;;) (void)co_await wait_for(pair.client.write_some(std::string_view(chunk)), 100ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK(ms_since(t0) < 5000);
        co_await pair.server.write_all(std::string_view("pong"));
        std::array<char, 4> back{};
        co_await pair.client.read_exact(back);
        CHECK(std::string_view(back.data(), back.size()) == "pong");
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) CHECK(u->zero_copy_sends() == 0);
#endif
    }());
}

#if CORIO_HAS_IO_URING
TEST_CASE("zero-copy send: a kernel without it gets plain sends (io_uring)") {
    [[maybe_unused]] const zero_copy_locally local;
    detail::uring_probe_fault = [](unsigned op) { return op == IORING_OP_SEND_ZC; };
    event_loop loop(zero_copy_from(64 * 1024));
    detail::uring_probe_fault = nullptr;
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        constexpr std::size_t total = 4u << 20;
        auto reader = spawn(read_and_check(pair.server, total));
        const std::string all = pattern_text(0, total);
        co_await pair.client.write_all(std::string_view(all));
        const std::size_t wrong = co_await reader;
        CHECK(wrong == 0);
        if (auto* u = uring_of(event_loop::current())) {
            CHECK_FALSE(u->has_zero_copy_send());
            CHECK(u->zero_copy_sends() == 0);
        }
    }());
}
#endif

TEST_CASE("a recv issued right after a send waits for readiness first, and round trips stay intact") {
    loop_options o;
    o.recv_buffers = 0;  // plain receives: each read is an SQE of its own
    event_loop loop(o);
    loop.run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto echo = spawn([&]() -> task<> {
            std::array<char, 256> buf{};
            for (std::size_t n; (n = co_await pair.server.read_some(buf)) > 0;)
                co_await pair.server.write_all(const_buffer(buf.data(), n));
        });
        for (int i = 0; i < 100; ++i) {
            const std::string msg = "message " + std::to_string(i);
            co_await pair.client.write_all(std::string_view(msg));
            std::string back(msg.size(), '\0');
            co_await pair.client.read_exact(back);
            CHECK(back == msg);
        }
        pair.client.shutdown();
        co_await echo;
#if CORIO_HAS_IO_URING
        // Both sides read right after their send: the client each time, the server after
        // every echo but the first read.
        if (auto* u = uring_of(event_loop::current())) CHECK(u->poll_first_recvs() >= 199);
#endif
    }());
}
