// Batched waits (io_uring, loop_options::batch_wait: the kernel's min-wait, Linux 6.12):
// with operations in flight, a wait collects several completions before the loop runs
// them. Nothing may change but the count of io_uring_enter calls: every completion still
// arrives, in order per socket, and a timer still fires at its deadline, not after the
// batch. Every test runs on both backends (epoll ignores the option).

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

loop_options batched(std::chrono::microseconds d) {
    loop_options o;
    o.batch_wait = d;
    return o;
}

// Ten connections echoing 50 messages each, all at once.
task<int> echo_traffic() {
    std::vector<connected_pair> pairs;
    for (int i = 0; i < 10; ++i) pairs.push_back(co_await connect_pair());
    int wrong = 0;
    std::vector<future<void>> work;
    for (auto& p : pairs) {
        work.push_back(spawn([&p]() -> task<> {
            std::array<char, 64> buf{};
            for (std::size_t n; (n = co_await p.server.read_some(buf)) > 0;)
                co_await p.server.write_all(const_buffer(buf.data(), n));
        }));
        work.push_back(spawn([&p, &wrong]() -> task<> {
            for (int k = 0; k < 50; ++k) {
                const std::string msg = "m" + std::to_string(k);
                co_await p.client.write_all(std::string_view(msg));
                std::string back(msg.size(), '\0');
                co_await p.client.read_exact(back);
                wrong += back == msg ? 0 : 1;
            }
            p.client.shutdown();
        }));
    }
    for (auto& f : work) co_await f;
    co_return wrong;
}

}  // namespace

TEST_CASE("batched waits: every round trip arrives intact") {
    event_loop loop(batched(std::chrono::microseconds(200)));
    const int wrong = loop.run(echo_traffic());
    CHECK(wrong == 0);
#if CORIO_HAS_IO_URING
    if (auto* u = uring_of(loop)) {
        if (u->has_min_wait())
            CHECK(u->batched_waits() > 0);
        else
            CHECK(u->batched_waits() == 0);
    }
#endif
}

TEST_CASE("batched waits: a timer fires at its deadline while operations stay in flight") {
    // A long min-wait, two reads that never complete: the sleep must still end at 20 ms,
    // not at the end of the batch.
    event_loop loop(batched(std::chrono::milliseconds(500)));
    loop.run([]() -> task<> {
        auto a = co_await connect_pair();
        auto b = co_await connect_pair();
        std::array<char, 8> buf1{};
        std::array<char, 8> buf2{};
        auto r1 = spawn(a.server.read_some(buf1));
        auto r2 = spawn(b.server.read_some(buf2));
        co_await yield();
        const auto t0 = clock::now();
        co_await sleep(20ms);
        const double took = ms_since(t0);
        CHECK(took >= 20);
        CHECK(took < 400);
        r1.cancel();
        r2.cancel();
        (void)co_await ends_cancelled(r1);
        (void)co_await ends_cancelled(r2);
    }());
}

#if CORIO_HAS_IO_URING
TEST_CASE("batched waits: a kernel without min-wait waits as before (io_uring)") {
    detail::uring_min_wait_fault = [] {};
    event_loop loop(batched(std::chrono::microseconds(200)));
    const int wrong = loop.run(echo_traffic());
    detail::uring_min_wait_fault = nullptr;
    CHECK(wrong == 0);
    if (auto* u = uring_of(loop)) {
        CHECK_FALSE(u->has_min_wait());
        CHECK(u->batched_waits() == 0);
    }
}
#endif
