#include <catch2/catch.hpp>
#include <time.h>  // NOLINT(modernize-deprecated-headers): clock_gettime is POSIX

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("sleep never returns early") {
    corio::run([]() -> corio::task<> {
        for (auto d : {1ms, 5ms, 20ms, 50ms}) {
            const auto t0 = clock::now();
            co_await corio::sleep(d);
            CHECK(clock::now() - t0 >= d);
        }
        const auto until = clock::now() + 30ms;
        co_await corio::sleep_until(until);
        CHECK(clock::now() >= until);
    }());
}

TEST_CASE("timers fire in deadline order, and in the order they were set among equal deadlines") {
    std::vector<std::string> order;
    corio::run([&]() -> corio::task<> {
        const auto base = clock::now() + 50ms;
        auto at = [&](std::string name, clock::time_point tp) -> corio::task<> {
            co_await corio::sleep_until(tp);
            order.push_back(std::move(name));
        };
        co_await corio::gather(at("late", base + 20ms), at("equal-1", base), at("early", base - 30ms),
                               at("equal-2", base), at("equal-3", base));
    }());
    CHECK(order == std::vector<std::string>{"early", "equal-1", "equal-2", "equal-3", "late"});
}

TEST_CASE("100,000 gathered sleeps wake in deadline order and none before its deadline") {
    // Each sleep is set for a deadline at or after the moment it is set (up to 1 s later,
    // on a 1 ms grid, so that many deadlines are equal). The loop is one thread: a timer
    // set after another fired must have a later deadline than that one. So, however slow
    // the machine, the wake-ups come in (deadline, order set) order, and each at or after
    // its deadline. Nothing here depends on how fast the sleeps run. (Spread over a
    // second, about 100 sleepers share a deadline: few enough that the loop wakes them
    // within a fraction of a millisecond, so a timer fired early would show.)
    constexpr int n = 100'000;
    struct sleeper {
        clock::time_point deadline;
        std::uint64_t set_seq = 0;
        clock::time_point woke;
    };
    std::vector<sleeper> s(n);
    std::vector<int> wake_order;
    wake_order.reserve(n);
    std::uint64_t next_seq = 0;
    const std::size_t done = corio::run([&]() -> corio::task<std::size_t> {
        std::vector<corio::task<>> sleeps;
        sleeps.reserve(n);
        for (int i = 0; i < n; ++i)
            sleeps.push_back([](sleeper& me, int id, std::vector<int>& order, std::uint64_t& seq) -> corio::task<> {
                const auto d = std::chrono::milliseconds((id * 7919) % 1001);  // 0..1000 ms, scattered
                me.deadline = std::chrono::ceil<std::chrono::milliseconds>(clock::now() + d);
                me.set_seq = seq++;
                co_await corio::sleep_until(me.deadline);
                me.woke = clock::now();
                order.push_back(id);
            }(s[static_cast<std::size_t>(i)], i, wake_order, next_seq));
        auto all = co_await corio::gather(std::move(sleeps));
        co_return all.size();
    }());
    REQUIRE(done == n);
    REQUIRE(wake_order.size() == static_cast<std::size_t>(n));
    int early = 0;
    for (const auto& x : s) early += x.woke < x.deadline ? 1 : 0;
    CHECK(early == 0);
    int out_of_order = 0;
    int first_bad = -1;
    for (std::size_t k = 1; k < wake_order.size(); ++k) {
        const sleeper& a = s[static_cast<std::size_t>(wake_order[k - 1])];
        const sleeper& b = s[static_cast<std::size_t>(wake_order[k])];
        const bool ordered = a.deadline < b.deadline || (a.deadline == b.deadline && a.set_seq < b.set_seq);
        if (!ordered && out_of_order++ == 0) first_bad = static_cast<int>(k);
    }
    INFO("first wake-up out of order: position " << first_bad);
    CHECK(out_of_order == 0);
    // The grid makes ties: many sleepers share each deadline (the tie order is checked).
    std::size_t ties = 0;
    for (std::size_t k = 1; k < wake_order.size(); ++k)
        ties += s[static_cast<std::size_t>(wake_order[k - 1])].deadline ==
                        s[static_cast<std::size_t>(wake_order[k])].deadline
                    ? 1
                    : 0;
    CHECK(ties > static_cast<std::size_t>(n) / 2);
}

TEST_CASE("yield lets every other ready task run once") {
    std::string trace;
    corio::run([&]() -> corio::task<> {
        auto worker = [&](char c) -> corio::task<> {
            for (int i = 0; i < 3; ++i) {
                trace += c;
                co_await corio::yield();
            }
        };
        co_await corio::gather(worker('a'), worker('b'));
    }());
    CHECK(trace == "ababab");
}

TEST_CASE("an idle loop uses no CPU while it waits") {
    auto cpu_now = [] {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
    };
    double cpu_ms = 0;
    double wall_ms = 0;
    corio::run([&]() -> corio::task<> {
        co_await corio::sleep(1ms);  // the loop is warm
        const double c0 = cpu_now();
        const auto t0 = clock::now();
        co_await corio::sleep(200ms);
        cpu_ms = cpu_now() - c0;
        wall_ms = ms_since(t0);
    }());
    CHECK(wall_ms >= 200.0);
    CHECK(cpu_ms < 20.0);  // busy waiting would burn ~200 ms
}

TEST_CASE("wait_for returns the value when the inner work finishes first") {
    int v = corio::run([]() -> corio::task<int> {
        co_return co_await corio::wait_for(
            []() -> corio::task<int> {
                co_await corio::sleep(5ms);
                co_return 5;
            }(),
            1s);
    }());
    CHECK(v == 5);
}

TEST_CASE("wait_for cancels the inner work, waits for it, then throws timeout_error") {
    bool inner_saw_cancel = false;
    bool inner_finished_cleanup = false;
    bool timed_out = false;
    const auto t0 = clock::now();
    corio::run([&]() -> corio::task<> {
        auto slow = [&]() -> corio::task<int> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                inner_saw_cancel = true;
            }
            if (inner_saw_cancel) {
                co_await corio::sleep(20ms);  // cleanup that itself awaits
                inner_finished_cleanup = true;
                throw corio::cancelled_error();
            }
            co_return 1;
        };
        try {
            co_await corio::wait_for(slow(), 30ms);
        } catch (const corio::timeout_error&) {
            timed_out = true;
            CHECK(inner_finished_cleanup);  // nothing left running behind our back
        }
    }());
    CHECK(timed_out);
    CHECK(inner_saw_cancel);
    CHECK(ms_since(t0) >= 50.0);
    CHECK(ms_since(t0) < 5000.0);
}

TEST_CASE("cancelling the task that awaits wait_for cancels the inner work too") {
    bool inner_cancelled = false;
    bool outer_cancelled = false;
    corio::run([&]() -> corio::task<> {
        auto outer = corio::spawn([&]() -> corio::task<> {
            try {
                co_await corio::wait_for(
                    [&]() -> corio::task<> {
                        try {
                            co_await corio::sleep(10s);
                        } catch (const corio::cancelled_error&) {
                            inner_cancelled = true;
                            throw;
                        }
                    }(),
                    5s);
            } catch (const corio::cancelled_error&) {
                outer_cancelled = true;
                throw;
            } catch (const corio::timeout_error&) {
                FAIL("a cancel is not a timeout");
            }
        });
        co_await corio::sleep(10ms);
        outer.cancel();
        co_await corio::gather_settled(outer);
        CHECK(outer.cancelled());
    }());
    CHECK(inner_cancelled);
    CHECK(outer_cancelled);
}

TEST_CASE("call_later runs after its delay, and a cancelled one never runs") {
    std::vector<std::string> ran;
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        const auto t0 = clock::now();
        auto keep = loop.call_later(20ms, [&] {
            ran.push_back("kept");
            CHECK(clock::now() - t0 >= 20ms);
        });
        auto drop = loop.call_later(10ms, [&] { ran.push_back("dropped"); });
        CHECK(drop.cancel());
        CHECK_FALSE(drop.cancel());
        co_await corio::sleep(50ms);
        CHECK_FALSE(keep.pending());
    }());
    CHECK(ran == std::vector<std::string>{"kept"});
}

TEST_CASE("a task that yields in a tight loop does not starve timers") {
    long spins = 0;
    const auto t0 = clock::now();
    corio::run([&]() -> corio::task<> {
        bool stop = false;
        auto spinner = corio::spawn([&]() -> corio::task<> {
            while (!stop) {
                ++spins;
                co_await corio::yield();
            }
        });
        co_await corio::sleep(20ms);  // must fire although the ready queue is never empty
        stop = true;
        co_await spinner;
    }());
    CHECK(ms_since(t0) >= 20.0);
    CHECK(ms_since(t0) < 2000.0);
    CHECK(spins > 100);  // the spinner really ran meanwhile
}
