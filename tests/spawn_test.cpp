#include <catch2/catch.hpp>

#include <functional>
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

// The lambda-coroutine trap (README, "spawn"): a lambda coroutine called on a temporary
// closure reads captures that die at the end of the statement. The loop reports it when
// it is spawned (debug mode, or any build without NDEBUG); the safe forms are quiet.
namespace {

struct counter_object {
    int n = 0;
    corio::task<> bump() {  // a member coroutine: called on an object that outlives it
        ++n;
        co_return;
    }
};

corio::task<int> takes_closure(std::function<int()> f) { co_return f(); }

}  // namespace

static_assert(corio::detail::is_capturing_closure<decltype([x = 1] { return x; })>());
static_assert(corio::detail::is_capturing_closure<decltype([s = std::string("x")](int) { return s; })>());
static_assert(!corio::detail::is_capturing_closure<decltype([] { return 1; })>());
static_assert(!corio::detail::is_capturing_closure<counter_object>());
static_assert(!corio::detail::is_capturing_closure<std::string>());
static_assert(!corio::detail::is_capturing_closure<int>());

TEST_CASE("spawn reports a lambda coroutine called on a temporary closure, with where it was spawned") {
    test::reports seen;
    corio::event_loop loop(seen.options(true));
    int line = 0;
    loop.run([&]() -> corio::task<> {
        // The body never touches its capture: the closure is gone when the task runs.
        // clang-format off
        line = __LINE__; auto f = corio::spawn([kept = std::string("x")]() -> corio::task<> { co_return; }());
        // clang-format on
        co_await std::move(f);
    });
    if (!corio::detail::closure_seen_by_promise) {  // clang 14: the closure never reaches the promise
        CHECK(seen.count(corio::report_kind::borrowed_closure) == 0);
        return;
    }
    REQUIRE(seen.count(corio::report_kind::borrowed_closure) == 1);
    corio::exception_context r;
    for (const auto& item : seen.items)
        if (item.kind == corio::report_kind::borrowed_closure) r = item;
    CHECK(r.message.find("lambda coroutine") != std::string::npos);
    CHECK(r.message.find("spawn([&]() -> task<> { ... })") != std::string::npos);
    CHECK(std::string(r.location.file_name()).find("spawn_test.cpp") != std::string::npos);
    CHECK(static_cast<int>(r.location.line()) == line);
}

TEST_CASE("spawn is quiet for the safe forms: the callable, a lambda without captures, a member, a parameter") {
    test::reports seen;
    corio::event_loop loop(seen.options(true));
    int total = loop.run([]() -> corio::task<int> {
        int a = 1;
        counter_object obj;
        int got = co_await corio::spawn([&a]() -> corio::task<int> { co_return a + 1; });  // the callable form
        got += co_await corio::spawn([]() -> corio::task<int> { co_return 10; }());        // nothing captured
        co_await corio::spawn(obj.bump());
        got += obj.n * 100;
        got += co_await corio::spawn(takes_closure([a] { return a * 1000; }));  // a closure copied in
        co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
            g.spawn([&a]() -> corio::task<> {
                ++a;
                co_return;
            });
            co_return;
        });
        co_return got + a * 10000;
    }());
    CHECK(total == 2 + 10 + 100 + 1000 + 20000);
    CHECK(seen.count(corio::report_kind::borrowed_closure) == 0);
}

TEST_CASE("task_group::spawn reports the trap too, and a loop out of debug mode only in builds without NDEBUG") {
    test::reports seen;
    corio::event_loop loop(seen.options(false));
    loop.run([]() -> corio::task<> {
        co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
            g.spawn([kept = std::string("x")]() -> corio::task<> { co_return; }());
            co_return;
        });
    }());
    const bool reported = corio::detail::debug_build && corio::detail::closure_seen_by_promise;
    CHECK(seen.count(corio::report_kind::borrowed_closure) == (reported ? 1U : 0U));
}

namespace {

struct own_cancel : corio::cancelled_error {};  // a class of the user's, derived

corio::task<> throws_cancel() {
    co_await corio::yield();
    throw corio::cancelled_error();
}
corio::task<> throws_derived_cancel() {
    co_await corio::yield();
    throw own_cancel();
}
// Catches corio's cancel and fails otherwise: a failure, not a cancellation.
corio::task<> turns_cancel_into_failure() {
    try {
        co_await corio::sleep(std::chrono::hours(24));
    } catch (const corio::cancelled_error&) {
        throw std::runtime_error("cleanup failed");
    }
}

}  // namespace

TEST_CASE("a cancelled_error the task throws itself ends it cancelled, a derived one too") {
    corio::run([]() -> corio::task<> {
        auto a = corio::spawn(throws_cancel());
        auto b = corio::spawn(throws_derived_cancel());
        co_await corio::gather_settled(a, b);
        CHECK(a.cancelled());
        CHECK(b.cancelled());
    }());
}

TEST_CASE("a task that catches its cancel and throws something else ends failed, not cancelled") {
    corio::run([]() -> corio::task<> {
        auto f = corio::spawn(turns_cancel_into_failure());
        co_await corio::yield();
        f.cancel();
        co_await corio::gather_settled(f);
        CHECK_FALSE(f.cancelled());
        CHECK_THROWS_AS(f.result(), std::runtime_error);
    }());
}

TEST_CASE("wait_for times out around a task whose own cancelled_error is classified from its type") {
    // The inner work ends by a cancelled_error of its own after the deadline's cancel: the
    // timeout is still a timeout, whether the error is corio's or derived from it.
    auto inner = []() -> corio::task<> {
        try {
            co_await corio::sleep(std::chrono::hours(24));
        } catch (const corio::cancelled_error&) {
        }
        throw own_cancel();
    };
    bool timed_out = false;
    corio::run([&]() -> corio::task<> {
        try {
            co_await corio::wait_for(inner(), std::chrono::milliseconds(1));
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
    }());
    CHECK(timed_out);
}
