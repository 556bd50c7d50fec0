#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>

#include "test_util.hpp"

using namespace test;

TEST_CASE("to_thread runs off the loop thread and resumes on it") {
    const auto loop_thread = std::this_thread::get_id();
    corio::run([&]() -> corio::task<> {
        auto worker = co_await corio::to_thread([] { return std::this_thread::get_id(); });
        CHECK(worker != loop_thread);
        CHECK(std::this_thread::get_id() == loop_thread);
        int sum = co_await corio::to_thread([](int a, int b) { return a + b; }, 2, 3);
        CHECK(sum == 5);
    }());
}

TEST_CASE("an exception thrown on the pool reaches the awaiting task") {
    CHECK_THROWS_WITH(corio::run([]() -> corio::task<> {
                          co_await corio::to_thread([] { throw std::runtime_error("pool failure"); });
                      }()),
                      "pool failure");
}

TEST_CASE("run_in uses the given pool, whose threads run concurrently") {
    corio::thread_pool pool(4);
    const auto t0 = clock::now();
    corio::run([&]() -> corio::task<> {
        auto block = [] { std::this_thread::sleep_for(100ms); };
        co_await corio::gather(corio::run_in(pool, block), corio::run_in(pool, block), corio::run_in(pool, block),
                               corio::run_in(pool, block));
    }());
    CHECK(ms_since(t0) >= 100.0);
    CHECK(ms_since(t0) < 350.0);  // one after another: 400 ms
}

TEST_CASE("cancelling a task whose job is still queued withdraws the job") {
    corio::thread_pool pool(1);
    std::atomic<bool> second_ran{false};
    corio::run([&]() -> corio::task<> {
        auto busy = corio::spawn(corio::run_in(pool, [] { std::this_thread::sleep_for(50ms); }));
        auto queued = corio::spawn(corio::run_in(pool, [&] { second_ran = true; }));
        co_await corio::sleep(5ms);
        queued.cancel();
        co_await corio::gather_settled(busy, queued);
        CHECK(queued.cancelled());
        CHECK(busy.done());
        CHECK_FALSE(busy.cancelled());
    }());
    CHECK_FALSE(second_ran.load());
}

TEST_CASE("run_coroutine_threadsafe runs a coroutine on a loop from another thread") {
    std::future<int> result;
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        std::thread t([&] {
            result = corio::run_coroutine_threadsafe(loop, []() -> corio::task<int> {
                co_await corio::sleep(5ms);
                co_return 41 + 1;
            }());
        });
        t.join();
        co_await corio::sleep(50ms);
    }());
    REQUIRE(result.valid());
    CHECK(result.get() == 42);
}
