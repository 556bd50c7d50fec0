#include <catch2/catch.hpp>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("a promise's value wakes every awaiter of its future") {
    auto results = corio::run([]() -> corio::task<std::vector<int>> {
        corio::promise<int> p;
        auto f = p.get_future();
        auto waiter = [](corio::future<int> fut) -> corio::task<int> { co_return co_await fut; };
        auto all = corio::spawn(corio::gather(waiter(f), waiter(f), waiter(f)));
        co_await corio::sleep(5ms);
        CHECK_FALSE(f.done());
        p.set_value(11);
        auto [a, b, c] = co_await all;
        CHECK(f.result() == 11);
        co_return std::vector<int>{a, b, c};
    }());
    CHECK(results == std::vector<int>{11, 11, 11});
}

TEST_CASE("a promise's exception reaches the awaiters, and a dropped promise breaks its future") {
    corio::run([]() -> corio::task<> {
        corio::promise<int> p;
        auto f = p.get_future();
        p.set_exception(std::make_exception_ptr(std::runtime_error("nope")));
        std::string what;
        try {
            (void)co_await f;
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "nope");
        CHECK(f.exception() != nullptr);

        corio::future<int> broken;
        {
            corio::promise<int> q;
            broken = q.get_future();
        }
        bool threw = false;
        try {
            (void)co_await broken;
        } catch (const std::future_error& e) {
            threw = e.code() == std::future_errc::broken_promise;
        }
        CHECK(threw);
    }());
}

TEST_CASE("setting a promise twice is an error") {
    corio::run([]() -> corio::task<> {
        corio::promise<int> p;
        auto f = p.get_future();
        p.set_value(1);
        CHECK_THROWS_AS(p.set_value(2), std::future_error);
        const int v = co_await f;
        CHECK(v == 1);
    }());
}

TEST_CASE("done callbacks run on the loop after the future completes") {
    std::vector<std::string> trace;
    corio::run([&]() -> corio::task<> {
        corio::promise<std::string> p;
        auto f = p.get_future();
        f.add_done_callback([&](const corio::future<std::string>& g) { trace.push_back("callback " + g.result()); });
        p.set_value("x");
        trace.push_back("set");
        co_await corio::yield();
        co_await corio::yield();
    }());
    CHECK(trace == std::vector<std::string>{"set", "callback x"});
}

TEST_CASE("a move-only value travels through a spawned task's future") {
    auto p = corio::run([]() -> corio::task<std::unique_ptr<int>> {
        auto f = corio::spawn([]() -> corio::task<std::unique_ptr<int>> { co_return std::make_unique<int>(3); }());
        co_return co_await std::move(f);
    }());
    REQUIRE(p != nullptr);
    CHECK(*p == 3);
}

TEST_CASE("an exception nobody retrieved is reported exactly once, naming the task and where it was spawned") {
    reports r;
    corio::run(
        []() -> corio::task<> {
            corio::spawn(
                []() -> corio::task<> {
                    co_await corio::sleep(1ms);
                    throw std::runtime_error("lost?");
                }(),
                {.name = "orphan"});
            co_await corio::sleep(20ms);
        }(),
        r.options());
    REQUIRE(r.count(corio::report_kind::unretrieved_exception) == 1);
    const auto& c = r.items.front();
    CHECK(c.task_name == "orphan");
    CHECK(std::string(c.location.file_name()).find("future_test.cpp") != std::string::npos);
    CHECK_THROWS_WITH(std::rethrow_exception(c.exception), "lost?");
}

TEST_CASE("an exception that was retrieved is not reported") {
    reports r;
    corio::run(
        []() -> corio::task<> {
            auto f = corio::spawn([]() -> corio::task<> {
                throw std::runtime_error("seen");
                co_return;
            }());
            try {
                co_await f;
            } catch (const std::runtime_error&) {
            }
        }(),
        r.options());
    CHECK(r.items.empty());
}

TEST_CASE("100,000 promises completed from 4 foreign threads wake the loop, none lost") {
    constexpr int per_thread = 25'000;
    constexpr int threads = 4;
    long long sum = corio::run([]() -> corio::task<long long> {
        std::vector<corio::promise<int>> promises(per_thread * threads);
        std::vector<corio::future<int>> futures;
        futures.reserve(promises.size());
        for (auto& p : promises) futures.push_back(p.get_future());
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&promises, t] {
                for (int i = 0; i < per_thread; ++i) {
                    const int idx = t * per_thread + i;
                    promises[static_cast<std::size_t>(idx)].set_value(idx);
                }
            });
        }
        long long total = 0;
        for (auto& f : futures) total += co_await f;
        for (auto& w : workers) w.join();
        co_return total;
    }());
    const long long n = per_thread * threads;
    CHECK(sum == n * (n - 1) / 2);
}

namespace {

// Awaits f: what it threw ("value" if nothing), and whether it resumed off the loop's thread.
corio::task<std::string> outcome_of(corio::future<int> f, std::thread::id loop_thread) {
    std::string out;
    try {
        (void)co_await f;
        out = "value";
    } catch (const std::future_error& e) {
        out = e.code() == std::future_errc::broken_promise ? "broken_promise" : "future_error";
    } catch (const std::exception& e) {
        out = e.what();
    }
    if (std::this_thread::get_id() != loop_thread) out += " (resumed off the loop's thread)";
    co_return out;
}

// Waits (at most 5 s) until thread `tid`, a loop's, sleeps in the kernel for events, so
// that what another thread does next must wake it. False if it never did.
bool wait_until_asleep(pid_t tid) {
    const std::string task = "/proc/self/task/" + std::to_string(tid);
    const auto until = clock::now() + 5s;
    while (clock::now() < until) {
        std::ifstream syscall(task + "/syscall");
        long nr = -1;
        const bool waits = syscall >> nr && (nr == SYS_io_uring_enter || nr == SYS_epoll_wait ||
                                             nr == SYS_epoll_pwait || nr == SYS_epoll_pwait2);
        // Sleeping (S) in that call, not just passing through it (an io_uring submit).
        std::ifstream stat(task + "/stat");
        std::string line;
        std::getline(stat, line);
        const auto paren = line.rfind(')');
        if (waits && paren != std::string::npos && line.compare(paren, 3, ") S") == 0) return true;
        std::this_thread::sleep_for(100us);
    }
    return false;
}

}  // namespace

TEST_CASE("a promise failed from another thread wakes the loop, and its awaiter gets the exception") {
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<bool> asleep{false};
    const std::string what = corio::run([&]() -> corio::task<std::string> {
        corio::promise<int> p;
        auto waiter = corio::spawn(outcome_of(p.get_future(), loop_thread));
        co_await corio::yield();  // the waiter is suspended on the future
        // Made here: a runtime_error made there would share its message (a reference-counted
        // string, in a libstdc++ that TSan does not see into) with a temporary freed there.
        auto failure = std::make_exception_ptr(std::runtime_error("from afar"));
        // The loop has nothing else to do: the result comes while it sleeps in the kernel.
        std::jthread far([&p, &failure, &asleep, tid = ::gettid()] {
            asleep = wait_until_asleep(tid);
            p.set_exception(std::move(failure));
        });
        co_return co_await corio::wait_for(std::move(waiter), 5s);
    }());
    CHECK(what == "from afar");
    CHECK(asleep);
}

TEST_CASE("a promise destroyed on another thread without a result breaks its future and wakes the awaiter") {
    const auto loop_thread = std::this_thread::get_id();
    std::atomic<bool> asleep{false};
    const std::string what = corio::run([&]() -> corio::task<std::string> {
        auto p = std::make_unique<corio::promise<int>>();  // made on the loop's thread
        auto waiter = corio::spawn(outcome_of(p->get_future(), loop_thread));
        co_await corio::yield();
        std::jthread far([q = std::move(p), &asleep, tid = ::gettid()]() mutable {
            asleep = wait_until_asleep(tid);
            q.reset();  // dropped there, unset
        });
        co_return co_await corio::wait_for(std::move(waiter), 5s);
    }());
    CHECK(what == "broken_promise");
    CHECK(asleep);
}

TEST_CASE("a failed promise whose future nobody reads is reported exactly once") {
    reports r;
    corio::future<int> kept;  // outlives the loop
    corio::run(
        [&]() -> corio::task<> {
            {
                // Failed on the loop's thread, the future dropped unread.
                corio::promise<int> p;
                auto f = p.get_future();
                p.set_exception(std::make_exception_ptr(std::runtime_error("dropped")));
            }
            {
                // Failed from another thread after the future was dropped unread.
                corio::promise<int> p;
                (void)p.get_future();
                corio::promise<void> then;
                auto after = then.get_future();
                std::thread([&] {
                    p.set_exception(std::make_exception_ptr(std::runtime_error("from afar")));
                    then.set_value();
                }).join();
                co_await after;  // the loop takes what the thread sent in order: p's first
            }
            {
                // Read: not reported.
                corio::promise<int> p;
                auto f = p.get_future();
                p.set_exception(std::make_exception_ptr(std::runtime_error("read")));
                CHECK(f.exception() != nullptr);
            }
            {
                // Still unread when the loop ends.
                corio::promise<int> p;
                kept = p.get_future();
                p.set_exception(std::make_exception_ptr(std::runtime_error("kept")));
            }
            co_await corio::yield();
        }(),
        r.options());
    kept = corio::future<int>();  // after the loop: not reported a second time
    std::vector<std::string> what;
    for (const auto& c : r.items) {
        CHECK(c.kind == corio::report_kind::unretrieved_exception);
        what.push_back(message_of(c.exception));
    }
    CHECK(what == std::vector<std::string>{"dropped", "from afar", "kept"});
}

TEST_CASE("an exception thrown by a done callback goes to the exception handler, and the loop goes on") {
    reports r;
    std::vector<std::string> trace;
    corio::run(
        [&]() -> corio::task<> {
            corio::promise<int> p;
            auto f = p.get_future();
            f.add_done_callback([](const corio::future<int>&) { throw std::runtime_error("added before"); });
            f.add_done_callback(
                [&](const corio::future<int>& g) { trace.push_back("next " + std::to_string(g.result())); });
            p.set_value(4);
            co_await corio::yield();
            co_await corio::yield();
            // Added once the future is done: it runs soon, and its exception is reported too.
            f.add_done_callback([](const corio::future<int>&) { throw std::runtime_error("added after"); });
            co_await corio::yield();
            co_await corio::yield();
            auto named = corio::spawn([]() -> corio::task<int> { co_return 1; }(), {.name = "named"});
            named.add_done_callback([](const corio::future<int>&) { throw std::runtime_error("on a task"); });
            const int one = co_await named;
            CHECK(one == 1);
            co_await corio::yield();
            co_await corio::yield();
            trace.push_back("the loop goes on");
        }(),
        r.options());
    CHECK(trace == std::vector<std::string>{"next 4", "the loop goes on"});
    REQUIRE(r.items.size() == 3);
    std::vector<std::string> what;
    for (const auto& c : r.items) {
        CHECK(c.kind == corio::report_kind::callback_exception);
        CHECK_THAT(c.message, Catch::Contains("done callback"));
        what.push_back(message_of(c.exception));
    }
    CHECK(what == std::vector<std::string>{"added before", "added after", "on a task"});
    CHECK(r.items[2].task_name == "named");
}
