#include <catch2/catch.hpp>

#include <string>

#include "test_util.hpp"

namespace {

corio::task<int> plus_one(int x) { co_return x + 1; }

}  // namespace

// `co_await spawn(...)` in one expression, with and without options: GCC 12 mishandles
// class temporaries with destructors inside a co_await expression, which spawn's
// signature must not hand it (ASan found a double free here before).
TEST_CASE("spawn awaited in the same expression, with and without a name, over and over") {
    int x = corio::run([]() -> corio::task<int> {
        int v = 0;
        for (int i = 0; i < 100; ++i) v = co_await corio::spawn(plus_one(v));
        for (int i = 0; i < 100; ++i)
            v = co_await corio::spawn(plus_one(v), {.name = "a name longer than the small-string buffer"});
        co_return v;
    }());
    CHECK(x == 200);
}

TEST_CASE("spawn copies the task's name so the name need only live for the call") {
    corio::run([]() -> corio::task<> {
        auto f = corio::spawn(corio::sleep(std::chrono::milliseconds(5)), {.name = std::string("temp-") + "orary"});
        auto tasks = corio::event_loop::current().tasks();
        bool found = false;
        for (auto& t : tasks) found = found || t.name == "temp-orary";
        CHECK(found);
        co_await f;
    }());
}

TEST_CASE("spawn starts the task on the next turn, not inline") {
    std::string trace;
    corio::run([&]() -> corio::task<> {
        auto f = corio::spawn([&]() -> corio::task<> {
            trace += "child ";
            co_return;
        });
        trace += "parent ";
        co_await f;
    }());
    CHECK(trace == "parent child ");
}
