#include <catch2/catch.hpp>

#include <atomic>
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
