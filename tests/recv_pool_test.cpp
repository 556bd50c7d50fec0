// Stream reads through the receive pool (io_uring: one multishot receive per socket over
// a ring of provided buffers). The byte stream a reader sees must be exactly what a plain
// recv gives: in order, nothing lost to a cancel, a close, a dry pool or a kernel that
// refuses the feature. Every test runs on both backends; the pool's own counters are
// checked where the loop runs io_uring.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// Writes n pattern bytes in pieces of varying size.
task<> write_pattern(net::tcp_stream& s, std::size_t n) {
    static constexpr std::size_t pieces[] = {1, 13, 128, 4096, 777, 30000, 5};
    std::size_t done = 0;
    for (std::size_t k = 0; done < n; ++k) {
        std::size_t len = pieces[k % std::size(pieces)];
        if (len > n - done) len = n - done;
        const std::string piece = pattern_text(done, len);
        co_await s.write_all(std::string_view(piece));
        done += len;
    }
}

// Waits (bounded) for a condition the loop brings about in a few turns.
template <class F>
task<bool> eventually(F f) {
    const auto t0 = clock::now();
    while (!f()) {
        if (clock::now() - t0 > 10s) co_return false;
        co_await sleep(1ms);
    }
    co_return true;
}

}  // namespace

TEST_CASE("receive pool: 200 round trips on one stream arm one multishot receive") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::array<char, 256> buf{};
        for (int i = 0; i < 200; ++i) {
            const std::string msg = "message " + std::to_string(i);
            co_await pair.client.write_all(std::string_view(msg));
            co_await pair.server.read_exact(mutable_buffer(buf.data(), msg.size()));
            CHECK(std::string_view(buf.data(), msg.size()) == msg);
        }
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) {
            CHECK(u->multishot_recv());
            CHECK(u->multishot_arms() == 1);
            CHECK(u->recv_buffers_free() == 256);  // every buffer read went back to the ring
        }
#endif
    }());
}

TEST_CASE("receive pool: bytes keep their order through reads of every size") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        constexpr std::size_t total = 600 * 1024;
        auto writer = spawn(write_pattern(pair.client, total));
        // Small reads, reads larger than a pool buffer, reads larger than the pool's
        // size limit for multishot (which must still come through the queue), exact reads.
        static constexpr std::size_t sizes[] = {1, 7, 100, 4096, 5000, 20000, 65536, 3};
        std::vector<char> buf(65536);
        std::size_t got = 0;
        bool in_order = true;
        for (std::size_t k = 0; got < total; ++k) {
            std::size_t want = sizes[k % std::size(sizes)];
            if (want > total - got) want = total - got;
            std::size_t n = 0;
            if (k % 5 == 4) {
                co_await pair.server.read_exact(mutable_buffer(buf.data(), want));
                n = want;
            } else {
                n = co_await pair.server.read_some(mutable_buffer(buf.data(), want));
            }
            REQUIRE(n > 0);
            if (std::string_view(buf.data(), n) != pattern_text(got, n)) in_order = false;
            got += n;
        }
        co_await std::move(writer);
        CHECK(in_order);
        CHECK(got == total);
    }());
}

TEST_CASE("receive pool: a read that times out loses nothing that arrives after it") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::array<char, 64> buf{};
        for (int round = 0; round < 3; ++round) {
            bool timed_out = false;
            try {
                (void)co_await wait_for(pair.server.read_some(buf), 20ms);
            } catch (const timeout_error&) {
                timed_out = true;
            }
            CHECK(timed_out);
        }
        CHECK(event_loop::current().io().in_flight() == 0);
        // Data that arrives while nobody reads is kept for the next read.
        co_await pair.client.write_all(std::string_view("after the timeouts"));
        co_await sleep(5ms);
        const std::size_t n = co_await wait_for(pair.server.read_some(buf), 5s);
        CHECK(std::string_view(buf.data(), n) == "after the timeouts");
    }());
}

TEST_CASE("receive pool: a cancelled reader leaves the bytes to the next one") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::array<char, 64> buf{};
        auto reader = spawn([&]() -> task<std::size_t> { co_return co_await pair.server.read_some(buf); });
        co_await sleep(2ms);
        reader.cancel();
        const bool cancelled = co_await ends_cancelled(reader);  // (g++ 12: no co_await in a macro)
        CHECK(cancelled);
        co_await pair.client.write_all(std::string_view("kept"));
        const std::size_t n = co_await wait_for(pair.server.read_some(buf), 5s);
        CHECK(std::string_view(buf.data(), n) == "kept");
    }());
}

TEST_CASE("receive pool: the stream's end reaches every read after the data") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        co_await pair.client.write_all(std::string_view("last words"));
        pair.client.close();
        std::array<char, 64> buf{};
        std::string got;
        for (;;) {
            const std::size_t n = co_await wait_for(pair.server.read_some(buf), 5s);
            if (n == 0) break;
            got.append(buf.data(), n);
        }
        CHECK(got == "last words");
        const std::size_t again = co_await pair.server.read_some(buf);  // and again: the end stays
        const std::size_t third = co_await pair.server.read_some(buf);
        CHECK(again == 0);
        CHECK(third == 0);
    }());
}

TEST_CASE("receive pool: a read waiting when its socket closes ends 'the socket was closed' and the buffers return") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        auto& loop = event_loop::current();
        // Unread data queued on the socket, then a reader that drains it and waits.
        co_await pair.client.write_all(std::string_view(pattern_text(0, 10000)));
        std::vector<char> big(10000);
        co_await pair.server.read_exact(mutable_buffer(big.data(), 4000));
        std::array<char, 64> buf{};
        auto reader = spawn([&]() -> task<std::string> {
            try {
                for (;;) (void)co_await pair.server.read_some(buf);
            } catch (const std::system_error& e) {
                co_return std::string(e.what()) + " / " + std::to_string(e.code().value());
            }
        });
        co_await sleep(5ms);
        pair.server.close();
        const std::string why = co_await wait_for(std::move(reader), 5s);
        CHECK(why.find("the socket was closed") != std::string::npos);
        CHECK(why.find(" / " + std::to_string(EBADF)) != std::string::npos);
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(loop)) {
            const bool returned = co_await eventually([u] { return u->recv_buffers_free() == 256; });
            CHECK(returned);
        }
#endif
        CHECK(loop.io().in_flight() == 0);
    }());
}

TEST_CASE("receive pool: closing a socket with unread data gives its buffers back") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        co_await pair.client.write_all(std::string_view(pattern_text(0, 20000)));
        std::array<char, 16> buf{};
        (void)co_await pair.server.read_some(buf);  // arms the multishot; the rest queues
#if CORIO_HAS_IO_URING
        auto* u = uring_of(event_loop::current());
        if (u != nullptr) {
            const bool queued = co_await eventually([u] { return u->recv_buffers_free() < 256; });
            CHECK(queued);
        }
#endif
        pair.server.close();
#if CORIO_HAS_IO_URING
        if (u != nullptr) {
            const bool returned = co_await eventually([u] { return u->recv_buffers_free() == 256; });
            CHECK(returned);
        }
#endif
    }());
}

TEST_CASE("receive pool: a dry pool falls back to plain reads and loses nothing") {
    loop_options o;
    o.recv_buffers = 8;  // 8 x 64 bytes: one unread socket empties it
    o.recv_buffer_size = 64;
    run(
        []() -> task<> {
            auto hog = co_await connect_pair();
            auto pair = co_await connect_pair();
            std::array<char, 64> buf{};
            co_await hog.client.write_all(std::string_view(pattern_text(0, 1)));
            const std::size_t first = co_await hog.server.read_some(mutable_buffer(buf.data(), 1));  // armed
            CHECK(first == 1);
            co_await hog.client.write_all(std::string_view(pattern_text(1, 4000)));
#if CORIO_HAS_IO_URING
            if (auto* u = uring_of(event_loop::current())) {
                const bool dry = co_await eventually([u] { return u->recv_buffers_free() == 0; });
                CHECK(dry);
            }
#endif
            for (int i = 0; i < 100; ++i) {  // another socket still reads, with plain receives
                const std::string msg = pattern_text(static_cast<std::size_t>(i), 40);
                co_await pair.client.write_all(std::string_view(msg));
                co_await wait_for(pair.server.read_exact(mutable_buffer(buf.data(), 40)), 5s);
                REQUIRE(std::string_view(buf.data(), 40) == msg);
            }
            std::vector<char> rest(4000);
            co_await wait_for(hog.server.read_exact(mutable_buffer(rest.data(), rest.size())), 5s);
            CHECK(std::string_view(rest.data(), rest.size()) == pattern_text(1, 4000));
        }(),
        o);
}

TEST_CASE("receive pool: a read waiting when the pool runs dry gets its bytes by a plain receive") {
    loop_options o;
    o.recv_buffers = 8;
    o.recv_buffer_size = 64;
    run(
        []() -> task<> {
            auto waiting = co_await connect_pair();
            auto hog = co_await connect_pair();
            std::array<char, 64> buf{};
            // Both sockets get their multishot receive armed.
            co_await waiting.client.write_all(std::string_view("1"));
            co_await hog.client.write_all(std::string_view("2"));
            const std::size_t w1 = co_await waiting.server.read_some(mutable_buffer(buf.data(), 1));
            const std::size_t h1 = co_await hog.server.read_some(mutable_buffer(buf.data(), 1));
            CHECK(w1 == 1);
            CHECK(h1 == 1);
            std::array<char, 64> got{};
            auto reader = spawn([&]() -> task<std::size_t> { co_return co_await waiting.server.read_some(got); });
            co_await sleep(2ms);
            co_await hog.client.write_all(std::string_view(pattern_text(0, 4000)));  // takes every buffer
#if CORIO_HAS_IO_URING
            if (auto* u = uring_of(event_loop::current())) {
                const bool dry = co_await eventually([u] { return u->recv_buffers_free() == 0; });
                CHECK(dry);
            }
#endif
            co_await waiting.client.write_all(std::string_view("hello"));
            const std::size_t n = co_await wait_for(std::move(reader), 5s);
            CHECK(std::string_view(got.data(), n) == "hello");
        }(),
        o);
}

TEST_CASE("receive pool: a socket nobody reads stops taking buffers at its share") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::array<char, 1> one{};
        co_await pair.client.write_all(std::string_view(pattern_text(0, 1)));
        (void)co_await pair.server.read_some(one);  // armed
        constexpr std::size_t total = 2 * 1024 * 1024;
        auto writer = spawn(write_pattern(pair.client, total));
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) {
            // Its share is 16 buffers (64 KiB); more may be in flight as the stop is sent,
            // but without the stop the kernel would fill every buffer in microseconds.
            const bool taken = co_await eventually([u] { return u->recv_buffers_free() <= 256 - 16; });
            CHECK(taken);
            co_await sleep(50ms);
            CHECK(u->recv_buffers_free() >= 128);
        }
#endif
        std::vector<char> buf(total);
        co_await wait_for(pair.server.read_exact(mutable_buffer(buf.data(), total)), 10s);
        co_await std::move(writer);
        CHECK(std::string_view(buf.data(), total) == pattern_text(0, total));
    }());
}

TEST_CASE("receive pool: two readers on one stream share its bytes without loss") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        std::vector<char> a(3000);
        std::vector<char> b(3000);
        auto ra = spawn(pair.server.read_exact(mutable_buffer(a.data(), a.size())));
        auto rb = spawn(pair.server.read_exact(mutable_buffer(b.data(), b.size())));
        co_await sleep(2ms);
        co_await write_pattern(pair.client, 6000);
        co_await wait_for(std::move(ra), 5s);
        co_await wait_for(std::move(rb), 5s);
        // Together they hold every byte once: the multiset of both is the pattern's.
        std::string both(a.begin(), a.end());
        both.append(b.begin(), b.end());
        std::string want = pattern_text(0, 6000);
        std::sort(both.begin(), both.end());
        std::sort(want.begin(), want.end());
        CHECK(both == want);
    }());
}

#if CORIO_HAS_IO_URING

namespace {

struct buf_ring_fault_guard {
    explicit buf_ring_fault_guard(int (*f)()) { detail::uring_buf_ring_fault = f; }
    buf_ring_fault_guard(const buf_ring_fault_guard&) = delete;
    buf_ring_fault_guard& operator=(const buf_ring_fault_guard&) = delete;
    ~buf_ring_fault_guard() { detail::uring_buf_ring_fault = nullptr; }
};

// Round trips of varying sizes on one stream, checked byte for byte.
task<> round_trips(connected_pair& pair, int count) {
    std::vector<char> buf(9000);
    for (int i = 0; i < count; ++i) {
        const std::size_t len = 1 + static_cast<std::size_t>(i) * 97 % 8999;
        const std::string msg = pattern_text(static_cast<std::size_t>(i), len);
        co_await pair.client.write_all(std::string_view(msg));
        co_await wait_for(pair.server.read_exact(mutable_buffer(buf.data(), len)), 5s);
        REQUIRE(std::string_view(buf.data(), len) == msg);
    }
}

}  // namespace

TEST_CASE("receive pool: a kernel without multishot receive gets plain reads (io_uring)") {
    request_fault_guard g([](detail::uring_request r) { return r == detail::uring_request::multishot_recv; });
    run([]() -> task<> {
        auto* u = uring_of(event_loop::current());
        if (u == nullptr) co_return;  // the suite runs on epoll
        auto pair = co_await connect_pair();
        co_await round_trips(pair, 50);
        CHECK_FALSE(u->multishot_recv());
        CHECK(u->multishot_arms() == 1);  // refused once, then never asked again
        CHECK(u->recv_buffers_free() == 256);
    }());
}

TEST_CASE("receive pool: a kernel without provided-buffer rings gets plain reads (io_uring)") {
    buf_ring_fault_guard g([] { return EINVAL; });
    run([]() -> task<> {
        auto* u = uring_of(event_loop::current());
        if (u == nullptr) co_return;
        auto pair = co_await connect_pair();
        co_await round_trips(pair, 50);
        CHECK_FALSE(u->multishot_recv());
        CHECK(u->multishot_arms() == 0);
    }());
}

TEST_CASE("receive pool: recv_buffers = 0 keeps every read a plain receive (io_uring)") {
    loop_options o;
    o.recv_buffers = 0;
    run(
        []() -> task<> {
            auto* u = uring_of(event_loop::current());
            if (u == nullptr) co_return;
            auto pair = co_await connect_pair();
            co_await round_trips(pair, 20);
            CHECK(u->multishot_arms() == 0);
        }(),
        o);
}

#endif  // CORIO_HAS_IO_URING

TEST_CASE("receive: bytes handed over without a copy, in order, the end of the stream empty") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        constexpr std::size_t total = 300 * 1024;
        auto writer = spawn([&]() -> task<> {
            co_await write_pattern(pair.client, total);
            pair.client.shutdown();
        });
        std::size_t got = 0;
        bool in_order = true;
        std::vector<net::received_bytes> held;  // some kept a while, to see them released later
        for (;;) {
            net::received_bytes r = co_await wait_for(pair.server.receive(), 10s);
            if (r.empty()) break;
            if (r.view() != pattern_text(got, r.size())) in_order = false;
            got += r.size();
            if (held.size() < 4) held.push_back(std::move(r));
        }
        co_await std::move(writer);
        CHECK(in_order);
        CHECK(got == total);
#if CORIO_HAS_IO_URING
        if (auto* u = uring_of(event_loop::current())) {
            CHECK(u->recv_buffers_free() == 256 - held.size());  // held buffers are not the kernel's
            held.clear();
            CHECK(u->recv_buffers_free() == 256);
        }
#endif
        net::received_bytes again = co_await pair.server.receive();
        CHECK(again.empty());
    }());
}

TEST_CASE("receive: a timeout or a cancel loses nothing, and mixes with read_some") {
    run([]() -> task<> {
        auto pair = co_await connect_pair();
        bool timed_out = false;
        try {
            (void)co_await wait_for(pair.server.receive(), 20ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        auto reader = spawn([&]() -> task<std::size_t> {
            net::received_bytes r = co_await pair.server.receive();
            co_return r.size();
        });
        co_await sleep(2ms);
        reader.cancel();
        const bool cancelled = co_await ends_cancelled(reader);
        CHECK(cancelled);
        co_await pair.client.write_all(std::string_view("0123456789"));
        std::array<char, 4> head{};
        co_await wait_for(pair.server.read_exact(head), 5s);  // part of a buffer by copy...
        CHECK(std::string_view(head.data(), 4) == "0123");
        std::string rest;
        while (rest.size() < 6) {
            net::received_bytes r = co_await wait_for(pair.server.receive(), 5s);  // ... the rest by lease
            REQUIRE_FALSE(r.empty());
            rest += r.view();
        }
        CHECK(rest == "456789");
        CHECK(event_loop::current().io().in_flight() == 0);
    }());
}

TEST_CASE("receive: a lease that outlives its loop is still valid and is given back safely") {
    net::received_bytes kept;
    run([&]() -> task<> {
        auto pair = co_await connect_pair();
        co_await pair.client.write_all(std::string_view("outlives"));
        kept = co_await wait_for(pair.server.receive(), 5s);
    }());
    CHECK(kept.view() == "outlives");  // the pool's memory stays until the last lease goes
    kept.release();
    CHECK(kept.empty());
}

TEST_CASE("receive: without the pool, or with a dry one, each receive reads into a buffer of its own") {
    for (const unsigned buffers : {0U, 8U}) {
        loop_options o;
        o.recv_buffers = buffers;  // 0: plain receives; 8 x 64: dry after 512 bytes
        o.recv_buffer_size = 64;
        run(
            []() -> task<> {
                auto pair = co_await connect_pair();
                constexpr std::size_t total = 20000;
                auto writer = spawn(write_pattern(pair.client, total));
                std::vector<net::received_bytes> held;  // held: the pool runs dry
                std::size_t got = 0;
                bool in_order = true;
                while (got < total) {
                    net::received_bytes r = co_await wait_for(pair.server.receive(), 5s);
                    REQUIRE_FALSE(r.empty());
                    CHECK(r.size() <= 64);
                    if (r.view() != pattern_text(got, r.size())) in_order = false;
                    got += r.size();
                    held.push_back(std::move(r));
                }
                co_await std::move(writer);
                CHECK(in_order);
                CHECK(got == total);
            }(),
            o);
    }
}
