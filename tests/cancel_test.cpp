#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("cancelling a sleeping task makes its sleep throw cancelled_error") {
    bool saw = false;
    corio::run([&]() -> corio::task<> {
        auto f = corio::spawn([&]() -> corio::task<> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                saw = true;
                throw;
            }
        });
        co_await corio::sleep(5ms);
        CHECK(f.cancel());
        CHECK_FALSE(f.done());  // it ends when it has handled the cancel
        co_await corio::gather_settled(f);
        CHECK(f.cancelled());
        CHECK_FALSE(f.cancel());  // already done
    }());
    CHECK(saw);
}

TEST_CASE("a cancelled task may catch the cancel, await during cleanup, and return a value") {
    int result = corio::run([]() -> corio::task<int> {
        auto f = corio::spawn([]() -> corio::task<int> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                cancelled = true;  // (C++ allows no co_await inside a handler)
            }
            if (!cancelled) co_return 0;
            co_await corio::sleep(5ms);
            co_return 17;
        }());
        co_await corio::sleep(1ms);
        f.cancel();
        co_return co_await f;
    }());
    CHECK(result == 17);
}

TEST_CASE("a cancel requested while the task runs takes effect at its next suspension") {
    std::vector<std::string> trace;
    corio::run([&]() -> corio::task<> {
        corio::future<void> self;
        auto body = [&]() -> corio::task<> {
            self.cancel();  // cancels itself while running
            trace.push_back("still running");
            try {
                co_await corio::yield();
                trace.push_back("not reached");
            } catch (const corio::cancelled_error&) {
                trace.push_back("cancelled at the yield");
            }
            co_await corio::sleep(1ms);  // the request was consumed: this await works
            trace.push_back("awaited after the cancel");
        };
        self = corio::spawn(body());
        co_await self;
    }());
    CHECK(trace == std::vector<std::string>{"still running", "cancelled at the yield", "awaited after the cancel"});
}

TEST_CASE("awaiting a cancelled future throws cancelled_error") {
    corio::run([]() -> corio::task<> {
        corio::promise<int> p;
        auto f = p.get_future();
        CHECK(f.cancel());
        CHECK(f.cancelled());
        bool threw = false;
        try {
            (void)co_await f;
        } catch (const corio::cancelled_error&) {
            threw = true;
        }
        CHECK(threw);
        CHECK_THROWS_AS(f.result(), corio::cancelled_error);
    }());
}

TEST_CASE("cancelling the awaiter of a spawned task's future cancels that task") {
    bool inner_cancelled = false;
    corio::run([&]() -> corio::task<> {
        auto inner = corio::spawn([&]() -> corio::task<> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                inner_cancelled = true;
                throw;
            }
        });
        auto outer = corio::spawn([](corio::future<void> f) -> corio::task<> { co_await f; }(inner));
        co_await corio::sleep(5ms);
        outer.cancel();
        co_await corio::gather_settled(outer);
        CHECK(outer.cancelled());
        CHECK(inner.cancelled());
    }());
    CHECK(inner_cancelled);
}

TEST_CASE("shield lets the protected work finish, and the cancel arrives at the next suspension point") {
    std::vector<std::string> trace;
    corio::run([&]() -> corio::task<> {
        auto f = corio::spawn([&]() -> corio::task<> {
            int v = co_await corio::shield([&]() -> corio::task<int> {
                co_await corio::sleep(30ms);
                trace.push_back("protected work done");
                co_return 5;
            }());
            trace.push_back("shield returned " + std::to_string(v));
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                trace.push_back("cancelled after the shield");
                throw;
            }
        });
        co_await corio::sleep(5ms);
        f.cancel();
        co_await corio::gather_settled(f);
        CHECK(f.cancelled());
    }());
    CHECK(trace == std::vector<std::string>{"protected work done", "shield returned 5", "cancelled after the shield"});
}
