// Cancel scopes: move_on_after, fail_after, open_cancel_scope (include/corio/cancel.hpp).

#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace test;
using corio::cancel_scope;
using corio::cancelled_error;
using corio::task;

TEST_CASE("move_on_after: a block that finishes in time gives its value") {
    corio::run([]() -> task<> {
        const std::optional<int> v = co_await corio::move_on_after(5s, []() -> task<int> {
            co_await corio::sleep(1ms);
            co_return 4;
        });
        CHECK(v == std::optional<int>(4));
        const bool completed = co_await corio::move_on_after(5s, corio::sleep(1ms));
        CHECK(completed);
    }());
}

TEST_CASE("move_on_after: the deadline ends the block and the scope swallows its own cancel") {
    corio::run([]() -> task<> {
        const auto t0 = clock::now();
        const std::optional<int> v = co_await corio::move_on_after(20ms, []() -> task<int> {
            co_await corio::sleep(10s);
            co_return 1;
        });
        CHECK_FALSE(v.has_value());
        CHECK(ms_since(t0) >= 20);
        co_await corio::sleep(1ms);  // the task itself is not cancelled
    }());
}

TEST_CASE("fail_after: the deadline ends the block with timeout_error, otherwise the value") {
    corio::run([]() -> task<> {
        bool timed_out = false;
        try {
            (void)co_await corio::fail_after(10ms, []() -> task<int> {
                co_await corio::sleep(10s);
                co_return 1;
            });
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        const int v = co_await corio::fail_after(5s, []() -> task<int> { co_return 9; });
        CHECK(v == 9);
    }());
}

TEST_CASE("a cancelled scope is level-triggered: every await in the block throws until it exits") {
    std::vector<std::string> trace;
    corio::run([&]() -> task<> {
        const bool completed = co_await corio::move_on_after(10ms, [&]() -> task<> {
            for (int i = 0; i < 3; ++i) {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                trace.push_back(cancelled ? "cancelled" : "slept");
            }
            co_await corio::yield();  // still cancelled: this throws, the scope catches it
            trace.push_back("not reached");
        });
        CHECK_FALSE(completed);
    }());
    CHECK(trace == std::vector<std::string>{"cancelled", "cancelled", "cancelled"});
}

TEST_CASE("shield inside a cancelled scope lets its awaits run") {
    std::vector<std::string> trace;
    corio::run([&]() -> task<> {
        const bool completed = co_await corio::move_on_after(5ms, [&]() -> task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::shield([&]() -> task<> {
                    co_await corio::sleep(2ms);  // cleanup that must await
                    trace.push_back("cleanup done");
                });
            }
            co_await corio::sleep(1ms);  // unshielded again: throws
            trace.push_back("not reached");
        });
        CHECK_FALSE(completed);
    }());
    CHECK(trace == std::vector<std::string>{"cleanup done"});
}

TEST_CASE("nested scopes: the inner deadline fires first and only the inner scope catches it") {
    std::vector<std::string> trace;
    corio::run([&]() -> task<> {
        const bool outer = co_await corio::move_on_after(10s, [&]() -> task<> {
            const bool inner = co_await corio::move_on_after(5ms, corio::sleep(10s));
            trace.push_back(inner ? "inner completed" : "inner moved on");
            co_await corio::sleep(1ms);  // the outer scope is not cancelled
            trace.push_back("outer continues");
        });
        trace.push_back(outer ? "outer completed" : "outer moved on");
    }());
    CHECK(trace == std::vector<std::string>{"inner moved on", "outer continues", "outer completed"});
}

TEST_CASE("nested scopes: an outer deadline goes through the inner scope, which does not catch it") {
    std::vector<std::string> trace;
    corio::run([&]() -> task<> {
        const bool outer = co_await corio::move_on_after(5ms, [&]() -> task<> {
            const bool inner = co_await corio::move_on_after(10s, corio::sleep(10s));
            trace.push_back(inner ? "inner completed" : "inner moved on");  // not reached
        });
        trace.push_back(outer ? "outer completed" : "outer moved on");
    }());
    CHECK(trace == std::vector<std::string>{"outer moved on"});
}

TEST_CASE("a scope does not catch a cancel of the awaiting task") {
    corio::run([]() -> task<> {
        corio::future<void> t;
        bool after_scope = false;
        t = corio::spawn([&]() -> task<> {
            (void)co_await corio::move_on_after(10s, corio::sleep(10s));
            after_scope = true;
        });
        co_await corio::sleep(2ms);
        t.cancel();
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
        CHECK_FALSE(after_scope);
    }());
}

TEST_CASE("open_cancel_scope: the block cancels itself, and set_deadline moves the deadline") {
    corio::run([]() -> task<> {
        const std::optional<int> a = co_await corio::open_cancel_scope([](cancel_scope& s) -> task<int> {
            s.cancel();
            co_await corio::yield();
            co_return 1;
        });
        CHECK_FALSE(a.has_value());

        bool reached = false;
        const auto t0 = clock::now();
        const bool completed = co_await corio::move_on_after(10s, [&](cancel_scope& s) -> task<> {
            s.set_deadline(cancel_scope::clock::now() + 10ms);  // much earlier
            co_await corio::sleep(10s);
            reached = true;
        });
        CHECK_FALSE(completed);
        CHECK_FALSE(reached);
        CHECK(ms_since(t0) < 5000);

        const bool later = co_await corio::move_on_after(5ms, [](cancel_scope& s) -> task<> {
            s.set_deadline(cancel_scope::clock::now() + 10s);  // later: the block finishes
            co_await corio::sleep(20ms);
            CHECK_FALSE(s.cancel_called());
        });
        CHECK(later);
    }());
}

TEST_CASE("an expired scope deadline gives the same answer every time") {
    corio::run([]() -> task<> {
        for (int n = 1; n <= 70; ++n) {
            const std::optional<int> v = co_await corio::move_on_after(0ms, [n]() -> task<int> {
                for (int i = 0; i < n; ++i) co_await corio::yield();
                co_return n;
            });
            INFO("yields: " << n);
            CHECK_FALSE(v.has_value());
        }
        const std::optional<int> at_once = co_await corio::move_on_after(-1s, []() -> task<int> { co_return 3; });
        CHECK(at_once == std::optional<int>(3));  // never suspended: never cancelled
    }());
}

TEST_CASE("a cancelled scope cancels a gather and a task group inside it, level-triggered") {
    std::vector<std::string> trace;
    corio::run([&]() -> task<> {
        auto child = [&](std::string name) -> task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            if (!cancelled) co_return;
            bool again = false;
            try {
                co_await corio::sleep(10s);  // the cleanup's await is cancelled too
            } catch (const cancelled_error&) {
                again = true;
            }
            if (again) trace.push_back(name + " cancelled twice");
        };
        // The children swallow their cancels and return; the block's next await throws.
        const bool g = co_await corio::move_on_after(5ms, [&]() -> task<> {
            co_await corio::gather(child("a"), child("b"));
            co_await corio::yield();
        });
        CHECK_FALSE(g);
        const bool tg = co_await corio::move_on_after(5ms, [&]() -> task<> {
            co_await corio::with_task_group([&](corio::task_group& group) -> task<> {
                group.spawn(child("c"));
                co_await corio::sleep(10s);
            });
        });
        CHECK_FALSE(tg);
    }());
    std::sort(trace.begin(), trace.end());
    CHECK(trace == std::vector<std::string>{"a cancelled twice", "b cancelled twice", "c cancelled twice"});
}

TEST_CASE("wait_for stays edge-triggered: its inner work may await during cleanup") {
    corio::run([]() -> task<> {
        const int v = co_await corio::wait_for(
            []() -> task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) co_await corio::sleep(1ms);  // allowed: one cancel only
                co_return 8;
            },
            5ms);
        CHECK(v == 8);
    }());
}
