// Conformance: behaviours taken from trio's and anyio's own test suites (and CPython's
// asyncio tests where they fit), rewritten for corio. Each case names the test it ports;
// where corio deliberately differs (corio::spawn and task_group::cancel are asyncio's
// create_task and Task.cancel, wait_for is asyncio's edge-triggered wait_for, an await
// that completes without suspending is not a cancellation point, C++ allows no co_await
// inside a handler), the expectation is adapted and the comment says why.
//
// Python's `try: ... finally: await cleanup()` becomes, in C++, a handler that sets a flag
// and the awaits after it; `with scope: ...` becomes a block given to the scope.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace test;
using corio::cancel_scope;
using corio::cancelled_error;
using corio::future;
using corio::task;
using corio::task_group;
using corio::timeout_error;
using strings = std::vector<std::string>;

namespace {

// anyio's async_error: sleeps, and raises `text` whether the sleep ended or was cancelled
// (Python's `finally: raise`).
task<> error_after(const char* text, std::chrono::milliseconds delay) {
    try {
        co_await corio::sleep(delay);
    } catch (const cancelled_error&) {
    }
    throw std::runtime_error(text);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Cancel scopes: move_on_after, fail_after, deadlines
// ---------------------------------------------------------------------------------------

// trio _tests/test_timeouts.py::test_move_on_after; anyio tests/test_taskgroups.py::
// test_cancel_scope_cleared and test_move_on_after_no_timeout
TEST_CASE("move_on_after ends a block that outlasts its deadline and gives the value of one that does not",
          "[conformance]") {
    corio::run([]() -> task<> {
        bool reached = false;
        const auto t0 = clock::now();
        const bool completed = co_await corio::move_on_after(20ms, [&]() -> task<> {
            co_await corio::sleep(10s);
            reached = true;
        });
        const double elapsed = ms_since(t0);
        CHECK_FALSE(completed);
        CHECK_FALSE(reached);
        CHECK(elapsed >= 20.0);
        CHECK(elapsed < 5000.0);
        // The scope's cancel stayed inside it: the task awaits freely afterwards.
        co_await corio::yield();
        co_await corio::sleep(1ms);

        bool cancel_called = true;
        const std::optional<int> v = co_await corio::move_on_after(10s, [&](cancel_scope& s) -> task<int> {
            co_await corio::sleep(1ms);
            cancel_called = s.cancel_called();
            co_return 7;
        });
        REQUIRE(v.has_value());
        CHECK(*v == 7);
        CHECK_FALSE(cancel_called);
    }());
}

// trio _tests/test_timeouts.py::test_fail; CPython test_timeouts.py::test_timeout_basic and
// test_waiter_cancelled; anyio tests/test_taskgroups.py::test_fail_after and
// test_fail_after_no_timeout
TEST_CASE("fail_after throws timeout_error once its block has ended, and the block saw cancelled_error",
          "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const auto t0 = clock::now();
        try {
            co_await corio::fail_after(20ms, [&](cancel_scope& s) -> task<> {
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    trace.push_back(s.deadline_reached() ? "block cancelled by the deadline" : "block cancelled");
                    throw;
                }
                trace.push_back("block slept");
            });
            trace.push_back("no timeout");
        } catch (const timeout_error&) {
            trace.push_back("timeout_error");
        }
        CHECK(trace == strings{"block cancelled by the deadline", "timeout_error"});
        CHECK(ms_since(t0) < 5000.0);

        // A deadline that is not reached: the block's value, nothing thrown.
        const int v = co_await corio::fail_after(10s, []() -> task<int> {
            co_await corio::sleep(1ms);
            co_return 3;
        });
        CHECK(v == 3);
        co_await corio::fail_after(10s, []() -> task<> { co_await corio::yield(); });
    }());
}

// trio _tests/test_timeouts.py::test_sleep (move_on_at(current_time()) cancels sleep(0));
// anyio tests/test_taskgroups.py::test_deadline_reached_on_start and test_fail_after[instant];
// CPython test_timeouts.py::test_timeout_zero_sleep_zero and test_timeout_in_the_past_sleep_zero
TEST_CASE("an expired deadline cancels the block at its first suspension point", "[conformance]") {
    corio::run([]() -> task<> {
        int reached = 0;
        bool deadline_reached = false;
        const bool a = co_await corio::move_on_after(0ms, [&](cancel_scope& s) -> task<> {
            deadline_reached = s.deadline_reached();
            co_await corio::yield();
            ++reached;
        });
        CHECK_FALSE(a);
        CHECK(deadline_reached);
        const bool b = co_await corio::move_on_at(clock::now() - 1s, [&]() -> task<> {
            co_await corio::sleep(10s);
            ++reached;
        });
        CHECK_FALSE(b);
        int timeouts = 0;
        try {
            co_await corio::fail_after(-5ms, [&]() -> task<> {
                co_await corio::yield();
                ++reached;
            });
        } catch (const timeout_error&) {
            ++timeouts;
        }
        try {
            co_await corio::fail_at(clock::now(), [&]() -> task<> {
                co_await corio::sleep(10s);
                ++reached;
            });
        } catch (const timeout_error&) {
            ++timeouts;
        }
        CHECK(timeouts == 2);
        CHECK(reached == 0);
    }());
}

// anyio tests/test_taskgroups.py::test_cancelled_not_caught; trio _core/_tests/test_run.py::
// test_cancel_scope_nesting (a cancel pending in a scope left without a checkpoint is not
// delivered, and does not outlive the scope)
TEST_CASE("a scope cancelled after its block's last suspension point is not caught and its value stands",
          "[conformance]") {
    corio::run([]() -> task<> {
        bool called = false;
        const std::optional<int> v = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<int> {
            co_await corio::yield();
            s.cancel();
            called = s.cancel_called();
            co_return 11;
        });
        CHECK(called);
        REQUIRE(v.has_value());
        CHECK(*v == 11);
        co_await corio::yield();  // the cancel did not leak out of the scope

        // The same with a deadline that had passed before the block started.
        const bool done = co_await corio::move_on_after(0ms, []() -> task<> { co_return; });
        CHECK(done);
        const int w = co_await corio::fail_after(0ms, []() -> task<int> { co_return 4; });
        CHECK(w == 4);
    }());
}

// trio _core/_tests/test_run.py::test_cancel_edge_cases (two cancels in a row; level
// triggering) and test_cancel_points; anyio tests/test_taskgroups.py::
// test_cancel_from_shielded_scope (two awaits, two cancellations)
TEST_CASE("after scope.cancel() every await in the block throws, also in a catch-then-await cleanup", "[conformance]") {
    strings trace;
    corio::run([&]() -> task<> {
        auto nested = [&]() -> task<> {  // a coroutine awaited in the block shares its cancellation
            co_await corio::sleep(10s);
            trace.push_back("nested slept");
        };
        const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            co_await corio::yield();
            s.cancel();
            s.cancel();  // idempotent
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            trace.push_back(cancelled ? "sleep threw" : "sleep returned");
            // The cleanup, after the handler: still inside the cancelled scope.
            cancelled = false;
            try {
                co_await corio::sleep(1ms);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            trace.push_back(cancelled ? "cleanup sleep threw" : "cleanup sleep returned");
            cancelled = false;
            try {
                co_await corio::yield();
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            trace.push_back(cancelled ? "cleanup yield threw" : "cleanup yield returned");
            cancelled = false;
            try {
                co_await nested();
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            trace.push_back(cancelled ? "nested await threw" : "nested await returned");
            co_await corio::sleep(1ms);  // this last one ends the block; the scope catches it
            trace.push_back("not reached");
        });
        CHECK_FALSE(completed);
    }());
    CHECK(trace == strings{"sleep threw", "cleanup sleep threw", "cleanup yield threw", "nested await threw"});
}

// CPython test_waitfor.py::test_wait_for_self_cancellation (the inner work awaits again
// after its cancel), set against trio's level-triggered scopes (test_run.py::
// test_cancel_edge_cases). corio's wait_for is deliberately asyncio's: one cancel.
TEST_CASE("wait_for stays edge-triggered while move_on_after is level-triggered", "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const int v = co_await corio::wait_for(
            [&]() -> task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                trace.push_back(cancelled ? "timed out" : "slept");
                co_await corio::sleep(2ms);  // edge-triggered: the cleanup awaits run
                co_await corio::yield();
                trace.push_back("cleaned up");
                co_return 42;
            },
            20ms);
        CHECK(v == 42);  // the inner work finished anyway: its value
        CHECK(trace == strings{"timed out", "cleaned up"});

        bool cleanup_threw = false;
        const std::optional<int> w = co_await corio::move_on_after(20ms, [&]() -> task<int> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                try {
                    co_await corio::sleep(2ms);
                } catch (const cancelled_error&) {
                    cleanup_threw = true;
                    throw;
                }
            }
            co_return 42;
        });
        CHECK_FALSE(w.has_value());
        CHECK(cleanup_threw);
    }());
}

// anyio tests/test_taskgroups.py::test_cancel_scope_in_another_task and
// test_cancel_scope_in_child_task
TEST_CASE("scope.cancel() from another task ends only the block it guards", "[conformance]") {
    corio::run([]() -> task<> {
        cancel_scope* scope = nullptr;
        bool result = false;
        bool child_went_on = false;
        auto child = corio::spawn([&]() -> task<> {
            const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
                scope = &s;
                co_await corio::sleep(10s);
                result = true;
            });
            scope = nullptr;
            CHECK_FALSE(completed);
            co_await corio::sleep(1ms);  // the child task itself was not cancelled
            child_went_on = true;
        });
        for (int i = 0; i < 100 && scope == nullptr; ++i) co_await corio::yield();
        REQUIRE(scope != nullptr);
        const auto t0 = clock::now();
        scope->cancel();
        co_await child;
        CHECK(ms_since(t0) < 5000.0);
        CHECK_FALSE(result);
        CHECK(child_went_on);
        CHECK_FALSE(child.cancelled());
        co_await corio::sleep(1ms);  // nor was the host
    }());
}

// trio _core/_tests/test_run.py::test_basic_timeout (changing the deadline); anyio
// tests/test_taskgroups.py::test_deadline_moved; CPython test_timeouts.py::test_reschedule
TEST_CASE("set_deadline moves a scope's deadline later, earlier, or into the past", "[conformance]") {
    corio::run([]() -> task<> {
        // Later: the block outlives the deadline it started with.
        const int v = co_await corio::fail_after(20ms, [](cancel_scope& s) -> task<int> {
            s.set_deadline(s.deadline() + 10s);
            co_await corio::sleep(200ms);
            co_return 1;
        });
        CHECK(v == 1);

        // Earlier: a scope without a deadline is given one.
        bool no_deadline = false;
        bool by_deadline = false;
        bool reached = false;
        const auto t0 = clock::now();
        const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            no_deadline = s.deadline() == clock::time_point::max();
            co_await corio::yield();
            s.set_deadline(clock::now() + 20ms);
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                by_deadline = s.deadline_reached();
                throw;
            }
            reached = true;
        });
        const double elapsed = ms_since(t0);
        CHECK(no_deadline);
        CHECK_FALSE(completed);
        CHECK(by_deadline);
        CHECK_FALSE(reached);
        CHECK(elapsed >= 20.0);
        CHECK(elapsed < 5000.0);

        // Into the past: the scope is cancelled at once, the next suspension point throws.
        bool called_at_once = false;
        int yields = 0;
        const bool c2 = co_await corio::move_on_after(10s, [&](cancel_scope& s) -> task<> {
            co_await corio::yield();
            ++yields;
            s.set_deadline(clock::now() - 1ms);
            called_at_once = s.cancel_called() && s.deadline_reached();
            co_await corio::yield();
            ++yields;
        });
        CHECK_FALSE(c2);
        CHECK(called_at_once);
        CHECK(yields == 1);
    }());
}

// trio _core/_tests/test_run.py::test_yield_briefly_checks_for_timeout
TEST_CASE("a block that only yields is still ended by its deadline", "[conformance]") {
    corio::run([]() -> task<> {
        long turns = 0;
        const auto t0 = clock::now();
        const bool completed = co_await corio::move_on_after(20ms, [&]() -> task<> {
            while (ms_since(t0) < 5000.0) {
                co_await corio::yield();
                ++turns;
            }
        });
        CHECK_FALSE(completed);
        CHECK(turns > 0);
        CHECK(ms_since(t0) < 5000.0);
    }());
}

// anyio tests/test_taskgroups.py::test_fail_after_cancelled_before_deadline, adapted: anyio's
// fail_after raises no TimeoutError when scope.cancel() (not the deadline) ended it; corio's
// does as trio's fail_at does (_timeouts.py: TooSlowError whenever the scope caught its own
// cancel), so the deadline-or-cancel distinction is s.deadline_reached().
TEST_CASE("fail_after ended by scope.cancel() throws timeout_error as trio's does", "[conformance]") {
    corio::run([]() -> task<> {
        bool reached = false;
        bool timed_out = false;
        bool by_deadline = true;
        const auto t0 = clock::now();
        try {
            co_await corio::fail_after(10s, [&](cancel_scope& s) -> task<> {
                s.cancel();
                by_deadline = s.deadline_reached();
                co_await corio::yield();
                reached = true;
            });
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK_FALSE(by_deadline);
        CHECK_FALSE(reached);
        CHECK(ms_since(t0) < 5000.0);
    }());
}

// CPython test_timeouts.py::test_foreign_cancel_doesnt_timeout_if_not_expired,
// test_timeout_after_cancellation and test_cancel_in_timeout_after_cancellation; anyio
// tests/test_taskgroups.py::TestUncancel::test_uncancel_after_scope_and_native_cancel
TEST_CASE("a scope catches only its own cancel: a cancel of the task goes on out of it", "[conformance]") {
    corio::run([]() -> task<> {
        // The task is cancelled while it waits in fail_after(10s): cancelled, no timeout.
        bool timed_out = false;
        bool went_on = false;
        auto t = corio::spawn([&]() -> task<> {
            try {
                co_await corio::fail_after(10s, []() -> task<> { co_await corio::sleep(10s); });
            } catch (const timeout_error&) {
                timed_out = true;
            }
            went_on = true;
        });
        co_await corio::sleep(5ms);
        t.cancel();
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
        CHECK_FALSE(timed_out);
        CHECK_FALSE(went_on);

        // Both the scope and the task cancelled: the scope swallows its own, not the task's.
        bool went_on2 = false;
        future<void> t2;
        t2 = corio::spawn([&]() -> task<> {
            (void)co_await corio::move_on_after(10s, [&](cancel_scope& s) -> task<> {
                s.cancel();
                t2.cancel();
                co_await corio::sleep(10s);
            });
            went_on2 = true;
        });
        const bool cancelled2 = co_await ends_cancelled(t2);
        CHECK(cancelled2);
        CHECK_FALSE(went_on2);

        // A task that handled a cancel of its own: a fail_after(0) in its cleanup times out,
        // and a second cancel inside fail_after(1s) comes out as cancelled_error.
        strings trace;
        future<void> t3;
        t3 = corio::spawn([&]() -> task<> {
            t3.cancel();
            try {
                co_await corio::sleep(1s);
            } catch (const cancelled_error&) {
                trace.push_back("own cancel handled");
            }
            try {
                co_await corio::fail_after(0ms, []() -> task<> { co_await corio::sleep(1s); });
                trace.push_back("no timeout");
            } catch (const timeout_error&) {
                trace.push_back("timeout_error");
            } catch (const cancelled_error&) {
                trace.push_back("cancelled_error");
            }
            try {
                co_await corio::fail_after(1s, [&]() -> task<> {
                    t3.cancel();
                    co_await corio::sleep(2s);
                });
                trace.push_back("no exception");
            } catch (const timeout_error&) {
                trace.push_back("timeout_error");
            } catch (const cancelled_error&) {
                trace.push_back("cancelled_error");
            }
        });
        co_await t3;  // it handled both cancels: it ends normally
        CHECK(trace == strings{"own cancel handled", "timeout_error", "cancelled_error"});
    }());
}

// CPython test_timeouts.py::test_foreign_exception_passed and test_foreign_exception_on_timeout
TEST_CASE("an exception of the block passes through a scope, also one thrown in cleanup after the deadline",
          "[conformance]") {
    corio::run([]() -> task<> {
        std::string what;
        try {
            (void)co_await corio::move_on_after(10s, []() -> task<> {
                co_await corio::yield();
                throw std::runtime_error("foreign");
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "foreign");

        bool timed_out = false;
        what.clear();
        try {
            co_await corio::fail_after(20ms, []() -> task<> {
                try {
                    co_await corio::sleep(1s);
                } catch (const cancelled_error&) {
                    throw std::logic_error("crash in cleanup");
                }
            });
        } catch (const timeout_error&) {
            timed_out = true;
        } catch (const std::logic_error& e) {
            what = e.what();
        }
        CHECK_FALSE(timed_out);
        CHECK(what == "crash in cleanup");
    }());
}

// ---------------------------------------------------------------------------------------
// Nested scopes
// ---------------------------------------------------------------------------------------

// CPython test_timeouts.py::test_nested_timeouts_loop_busy; trio's rule that each scope
// catches only the cancel it caused (test_run.py::test_cancel_scope_nesting)
TEST_CASE("nested scopes: the inner deadline fires first and ends only its block, the outer one fires later",
          "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const auto t0 = clock::now();
        const bool outer = co_await corio::move_on_after(300ms, [&]() -> task<> {
            bool inner_timed_out = false;
            try {
                co_await corio::fail_after(20ms, [&]() -> task<> {
                    co_await corio::sleep(10s);
                    trace.push_back("inner slept");
                });
            } catch (const timeout_error&) {
                inner_timed_out = true;
            }
            trace.push_back(inner_timed_out ? "inner timed out" : "inner finished");
            co_await corio::sleep(1ms);
            trace.push_back("outer goes on");
            co_await corio::sleep(10s);  // ended by the outer deadline
            trace.push_back("outer slept");
        });
        const double elapsed = ms_since(t0);
        CHECK_FALSE(outer);
        CHECK(trace == strings{"inner timed out", "outer goes on"});
        CHECK(elapsed >= 300.0);
        CHECK(elapsed < 5000.0);
    }());
}

// anyio tests/test_taskgroups.py::test_nested_move_on_after
TEST_CASE("nested scopes: the outer deadline ends both blocks and the inner scope lets it through", "[conformance]") {
    corio::run([]() -> task<> {
        bool sleep_completed = false;
        bool inner_scope_completed = false;
        bool inner_cancel_called = true;
        const bool outer = co_await corio::move_on_after(20ms, [&]() -> task<> {
            (void)co_await corio::move_on_after(10s, [&](cancel_scope& inner) -> task<> {
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    inner_cancel_called = inner.cancel_called();
                    throw;
                }
                sleep_completed = true;
            });
            inner_scope_completed = true;
        });
        CHECK_FALSE(outer);
        CHECK_FALSE(sleep_completed);
        CHECK_FALSE(inner_scope_completed);
        CHECK_FALSE(inner_cancel_called);
    }());
}

// trio _core/_tests/test_run.py::test_cancel_scope_nesting (two scopes triggering at once:
// the outer one wins); CPython test_timeouts.py::test_nested_timeouts (one deadline for
// both: only the outermost raises TimeoutError, the inner block sees a cancellation)
TEST_CASE("nested scopes triggering at once: the outer one wins", "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const bool r1 = co_await corio::open_cancel_scope([&](cancel_scope&) -> task<> {
            const bool r2 = co_await corio::open_cancel_scope([&](cancel_scope& s2) -> task<> {
                const bool r3 = co_await corio::open_cancel_scope([&](cancel_scope& s3) -> task<> {
                    s3.cancel();
                    s2.cancel();
                    co_await corio::sleep(10s);
                });
                trace.push_back(r3 ? "s3 completed" : "s3 caught the cancel");
            });
            trace.push_back(r2 ? "s2 completed" : "s2 caught the cancel");
        });
        CHECK(r1);  // the outermost scope was never cancelled
        CHECK(trace == strings{"s2 caught the cancel"});

        trace.clear();
        const auto deadline = clock::now() + 20ms;
        try {
            co_await corio::fail_at(deadline, [&]() -> task<> {
                try {
                    co_await corio::fail_at(deadline, []() -> task<> { co_await corio::sleep(10s); });
                } catch (const timeout_error&) {
                    trace.push_back("inner timeout_error");
                } catch (const cancelled_error&) {
                    trace.push_back("inner cancelled_error");
                    throw;
                }
            });
            trace.push_back("no timeout");
        } catch (const timeout_error&) {
            trace.push_back("outer timeout_error");
        }
        CHECK(trace == strings{"inner cancelled_error", "outer timeout_error"});
    }());
}

// anyio tests/test_taskgroups.py::test_nested_fail_after; trio _core/_tests/test_run.py::
// test_cancel_scope_nesting (a cancelled outer scope raises inside the inner one)
TEST_CASE("an outer cancel reaches through an inner fail_after without becoming a timeout", "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const auto t0 = clock::now();
        const bool r = co_await corio::open_cancel_scope([&](cancel_scope& outer) -> task<> {
            bool timed_out = false;
            try {
                co_await corio::fail_after(10s, [&]() -> task<> {
                    co_await corio::yield();
                    outer.cancel();
                    co_await corio::sleep(10s);
                    trace.push_back("inner slept");
                });
            } catch (const timeout_error&) {
                timed_out = true;
            }
            trace.push_back(timed_out ? "timeout_error" : "inner scope ended");
        });
        CHECK_FALSE(r);
        CHECK(trace.empty());
        CHECK(ms_since(t0) < 5000.0);
    }());
}

// ---------------------------------------------------------------------------------------
// Shielding
// ---------------------------------------------------------------------------------------

// trio _core/_tests/test_run.py::test_cancel_shielding and test_cancel_points (main4: a
// shielded checkpoint does not raise, the next one does); anyio tests/test_taskgroups.py::
// test_shielding
TEST_CASE("shield inside a cancelled scope lets its awaits run, and the next unshielded await throws",
          "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const auto t0 = clock::now();
        const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            s.cancel();
            co_await corio::shield([]() -> task<> {
                co_await corio::yield();
                co_await corio::yield();
            });
            trace.push_back("shielded yields ran");
            const int v = co_await corio::shield([]() -> task<int> {
                co_await corio::sleep(20ms);
                co_await corio::sleep(1ms);
                co_return 5;
            });
            trace.push_back("shielded sleeps gave " + std::to_string(v));
            co_await corio::yield();
            trace.push_back("not reached");
        });
        CHECK_FALSE(completed);
        CHECK(trace == strings{"shielded yields ran", "shielded sleeps gave 5"});
        CHECK(ms_since(t0) >= 21.0);

        // The cleanup idiom (trio's shielded `finally`): catch the cancel, do the cleanup
        // under a shield, let the cancel go on.
        bool cleaned = false;
        const bool c2 = co_await corio::move_on_after(20ms, [&]() -> task<> {
            std::exception_ptr cancel;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancel = std::current_exception();
            }
            co_await corio::shield([&]() -> task<> {
                co_await corio::sleep(5ms);
                cleaned = true;
            });
            if (cancel) std::rethrow_exception(cancel);
        });
        CHECK_FALSE(c2);
        CHECK(cleaned);
    }());
}

// trio _core/_tests/test_run.py::test_cancel_shielding (a shield does not protect from a
// scope inside it); anyio tests/test_taskgroups.py::test_nested_shield,
// test_triple_nested_shield_checkpoint_in_outer and _in_middle
TEST_CASE("a scope inside a shield still cancels its own block, and a cancel made under a shield waits for it",
          "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        const auto t0 = clock::now();
        const bool r = co_await corio::open_cancel_scope([&](cancel_scope& outer) -> task<> {
            outer.cancel();
            bool timed_out = false;
            try {
                co_await corio::shield([]() -> task<> {
                    co_await corio::fail_after(20ms, []() -> task<> { co_await corio::sleep(10s); });
                });
            } catch (const timeout_error&) {
                timed_out = true;
            }
            trace.push_back(timed_out ? "inner timeout_error" : "no timeout");
            co_await corio::yield();  // the outer scope's cancel
            trace.push_back("not reached");
        });
        CHECK_FALSE(r);
        CHECK(trace == strings{"inner timeout_error"});
        CHECK(ms_since(t0) >= 20.0);

        // Both scopes cancelled under a shield at the end of the inner block: the inner
        // block ends without another checkpoint, the outer one's next await throws.
        trace.clear();
        const bool r1 = co_await corio::open_cancel_scope([&](cancel_scope& s1) -> task<> {
            const bool r2 = co_await corio::open_cancel_scope([&](cancel_scope& s2) -> task<> {
                co_await corio::shield([&]() -> task<> {
                    s1.cancel();
                    s2.cancel();
                    co_return;
                });
            });
            trace.push_back(r2 ? "s2 completed" : "s2 caught the cancel");
            co_await corio::yield();
            trace.push_back("got past the checkpoint in s1");
        });
        CHECK_FALSE(r1);
        CHECK(trace == strings{"s2 completed"});

        // Only the outer scope cancelled, under a shield in the inner block: the inner
        // block's next await throws and the inner scope lets the cancel through.
        trace.clear();
        const bool r3 = co_await corio::open_cancel_scope([&](cancel_scope& s1) -> task<> {
            (void)co_await corio::open_cancel_scope([&](cancel_scope&) -> task<> {
                co_await corio::shield([&]() -> task<> {
                    s1.cancel();
                    co_return;
                });
                co_await corio::yield();
                trace.push_back("got past the checkpoint in s2");
            });
            trace.push_back("after s2");
        });
        CHECK_FALSE(r3);
        CHECK(trace.empty());
    }());
}

// ---------------------------------------------------------------------------------------
// Scopes around task groups and gather
// ---------------------------------------------------------------------------------------

// anyio tests/test_taskgroups.py::test_timeout_error_with_multiple_cancellations; CPython
// test_timeouts.py::test_timeout_taskgroup
TEST_CASE("fail_after around a task group cancels the body and the children level-triggered", "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        bool timed_out = false;
        const auto t0 = clock::now();
        try {
            co_await corio::fail_after(20ms, [&]() -> task<> {
                co_await corio::with_task_group([&](task_group& g) -> task<> {
                    for (int i = 0; i < 2; ++i) {
                        g.spawn([&]() -> task<> {
                            bool cancelled = false;
                            try {
                                co_await corio::sleep(10s);
                            } catch (const cancelled_error&) {
                                cancelled = true;
                            }
                            if (!cancelled) co_return;
                            bool again = false;
                            try {
                                co_await corio::sleep(1ms);
                            } catch (const cancelled_error&) {
                                again = true;
                            }
                            trace.push_back(again ? "child cleanup cancelled" : "child cleanup ran");
                        });
                    }
                    bool body_cancelled = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        body_cancelled = true;
                    }
                    trace.push_back(body_cancelled ? "body cancelled" : "body slept");
                    co_await corio::yield();  // level-triggered: the body's cleanup throws too
                    trace.push_back("body cleanup ran");
                });
                trace.push_back("after the group");
            });
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        std::sort(trace.begin(), trace.end());
        CHECK(trace == strings{"body cancelled", "child cleanup cancelled", "child cleanup cancelled"});
        CHECK(ms_since(t0) < 5000.0);
    }());
}

// trio _core/_tests/test_run.py::test_cancel_inheritance (cancellation reaches every
// descendant at once: nested nurseries, here nested task groups, and gather's children)
TEST_CASE("a cancelled scope reaches every child of a gather and every leaf of nested task groups", "[conformance]") {
    corio::run([]() -> task<> {
        int cleanup_cancelled = 0;
        auto child = [&]() -> task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const cancelled_error&) {
                cancelled = true;
            }
            if (!cancelled) co_return;
            try {
                co_await corio::sleep(1ms);
            } catch (const cancelled_error&) {
                ++cleanup_cancelled;
                throw;
            }
        };
        const bool r =
            co_await corio::move_on_after(20ms, [&]() -> task<> { (void)co_await corio::gather(child, child, child); });
        CHECK_FALSE(r);
        CHECK(cleanup_cancelled == 3);

        std::set<std::string> record;
        const bool r2 = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                for (const char* w : {"w1", "w2"}) {
                    g.spawn([&record, w]() -> task<> {
                        co_await corio::with_task_group([&record, w](task_group& g2) -> task<> {
                            for (const char* l : {"-l1", "-l2"}) {
                                g2.spawn([&record, w, l]() -> task<> {
                                    try {
                                        co_await corio::sleep(10s);
                                    } catch (const cancelled_error&) {
                                        record.insert(std::string(w) + l);
                                        throw;
                                    }
                                });
                            }
                            co_return;
                        });
                    });
                }
                co_await corio::sleep(5ms);  // every leaf is asleep
                s.cancel();
            });
        });
        CHECK_FALSE(r2);
        CHECK(record == std::set<std::string>{"w1-l1", "w1-l2", "w2-l1", "w2-l2"});
    }());
}

// anyio tests/test_taskgroups.py::test_cancel_child_task_when_host_is_shielded (regression
// test for anyio #642): cancelling a scope reaches the children of a task group in it even
// while the group's body waits under a shield.
// (A task group listens on its body's node for a level-triggered cancel, so the scope's
// cancel reaches the children whatever the body waits on.)
TEST_CASE("a scope cancelled while the group body is shielded still cancels the group's children", "[conformance]") {
    corio::run([]() -> task<> {
        corio::event child_cancelled;
        bool timed_out = false;
        const auto t0 = clock::now();
        const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& parent) -> task<> {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        child_cancelled.set();
                        throw;
                    }
                });
                co_await corio::yield();  // the child is asleep
                try {
                    co_await corio::shield([&]() -> task<> {
                        co_await corio::fail_after(3s, [&]() -> task<> {
                            parent.cancel();
                            co_await child_cancelled.wait();
                        });
                    });
                } catch (const timeout_error&) {
                    timed_out = true;
                }
            });
        });
        CHECK_FALSE(completed);
        CHECK(child_cancelled.is_set());
        CHECK_FALSE(timed_out);
        CHECK(ms_since(t0) < 2000.0);
    }());
}

// trio _core/_tests/test_run.py::test_cancel_inheritance, adapted: corio::spawn is asyncio's
// create_task, a task of its own that no scope owns, so cancelling the scope it was spawned
// in leaves it running (awaiting it from the scope would cancel it: asyncio semantics). A
// child spawned into a task group belongs to the group, not to the scope it was spawned from
// (trio: a task runs under its nursery's cancel scopes).
TEST_CASE("a task spawned inside a cancel scope is independent of the scope", "[conformance]") {
    corio::run([]() -> task<> {
        bool bg_done = false;
        future<int> bg;
        const bool completed = co_await corio::move_on_after(20ms, [&]() -> task<> {
            bg = corio::spawn([&]() -> task<int> {
                co_await corio::sleep(100ms);
                bg_done = true;
                co_return 9;
            });
            co_await corio::sleep(10s);
        });
        CHECK_FALSE(completed);
        CHECK_FALSE(bg.done());
        const int v = co_await bg;
        CHECK(v == 9);
        CHECK(bg_done);

        bool child_done = false;
        bool scope_completed = true;
        co_await corio::with_task_group([&](task_group& g) -> task<> {
            scope_completed = co_await corio::move_on_after(20ms, [&]() -> task<> {
                g.spawn([&]() -> task<> {
                    co_await corio::sleep(100ms);
                    child_done = true;
                });
                co_await corio::sleep(10s);
            });
        });
        CHECK_FALSE(scope_completed);
        CHECK(child_done);
    }());
}

// ---------------------------------------------------------------------------------------
// Task groups
// ---------------------------------------------------------------------------------------

// trio _core/_tests/test_run.py::test_basic_interleave; anyio tests/test_taskgroups.py::
// test_success
TEST_CASE("task group children run interleaved and never outlive the group", "[conformance]") {
    strings record;
    const auto t0 = clock::now();
    corio::run([&]() -> task<> {
        co_await corio::with_task_group([&](task_group& g) -> task<> {
            for (const char* who : {"a", "b"}) {
                g.spawn([&record, who]() -> task<> {
                    for (int i = 0; i < 3; ++i) {
                        std::string step =
                            who;  // not `who + to_string(i)`: g++ 12 -O3 warns (-Wrestrict, a false positive)
                        step += std::to_string(i);
                        record.push_back(step);
                        co_await corio::yield();
                    }
                });
            }
            g.spawn([&]() -> task<> {
                co_await corio::sleep(30ms);
                record.push_back("sleeper");
            });
            co_return;
        });
        record.push_back("group ended");
    }());
    CHECK(ms_since(t0) >= 30.0);
    INFO(testing_join(record));
    REQUIRE(record.size() == 8);
    for (int round = 0; round < 3; ++round) {
        const std::set<std::string> got{record[2 * round], record[2 * round + 1]};
        std::string a = "a", b = "b";  // not "a" + to_string(round): the same false positive
        a += std::to_string(round);
        b += std::to_string(round);
        const std::set<std::string> want{a, b};
        CHECK(got == want);
    }
    CHECK(record[6] == "sleeper");
    CHECK(record[7] == "group ended");
}

// trio _core/_tests/test_run.py::test_task_crash_propagation and test_child_crash_wakes_parent;
// anyio tests/test_taskgroups.py::test_failing_child_task_cancels_host and
// test_exception_cancels_siblings
TEST_CASE("a failing child cancels its siblings and the body, and the group rethrows it", "[conformance]") {
    corio::run([]() -> task<> {
        strings trace;
        std::string what;
        const auto t0 = clock::now();
        try {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    try {
                        for (;;) co_await corio::yield();
                    } catch (const cancelled_error&) {
                        trace.push_back("looper cancelled");
                        throw;
                    }
                });
                g.spawn([&]() -> task<> {
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        trace.push_back("sleeper cancelled");
                        throw;
                    }
                    trace.push_back("sleeper slept");
                });
                g.spawn([]() -> task<> {
                    co_await corio::yield();
                    throw std::runtime_error("argh");
                });
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    trace.push_back("body cancelled");
                    throw;
                }
                trace.push_back("body slept");
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "argh");
        std::sort(trace.begin(), trace.end());
        CHECK(trace == strings{"body cancelled", "looper cancelled", "sleeper cancelled"});
        CHECK(ms_since(t0) < 5000.0);
    }());
}

// anyio tests/test_taskgroups.py::test_failing_host_task_cancels_children and
// test_host_exception
TEST_CASE("a failing body cancels the children and the group rethrows its error", "[conformance]") {
    corio::run([]() -> task<> {
        bool child_completed = false;
        bool child_cancelled = false;
        std::string what;
        try {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        child_cancelled = true;
                        throw;
                    }
                    child_completed = true;
                });
                co_await corio::yield();  // the child is asleep
                throw std::runtime_error("foo");
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "foo");
        CHECK(child_cancelled);
        CHECK_FALSE(child_completed);
    }());
}

// anyio tests/test_taskgroups.py::test_exception_group_children; trio _core/_tests/
// test_run.py::test_two_child_crashes, adapted: trio starts both crashers before either
// fails; in corio a sibling cancelled before its first step never runs (asyncio), so the
// second error comes, as in anyio's async_error, from the cleanup of a cancelled child.
TEST_CASE("two children fail: the first is rethrown and the other reported, or both with group_errors::all",
          "[conformance]") {
    reports r;
    std::string first;
    corio::run(
        [&]() -> task<> {
            try {
                co_await corio::with_task_group([](task_group& g) -> task<> {
                    g.spawn(error_after("task1", 10ms));
                    g.spawn(error_after("task2", 10s));
                    co_return;
                });
            } catch (const std::runtime_error& e) {
                first = e.what();
            }
        }(),
        r.options());
    CHECK(first == "task1");
    REQUIRE(r.count(corio::report_kind::unretrieved_exception) == 1);
    CHECK(message_of(r.items.at(0).exception) == "task2");

    reports r2;
    strings messages;
    std::size_t size = 0;
    std::string what;
    corio::run(
        [&]() -> task<> {
            try {
                co_await corio::with_task_group(
                    [](task_group& g) -> task<> {
                        g.spawn(error_after("task1", 10ms));
                        g.spawn(error_after("task2", 10s));
                        co_return;
                    },
                    corio::group_errors::all);
            } catch (const corio::exception_group& eg) {
                size = eg.size();
                what = eg.what();
                for (const auto& e : eg.exceptions()) messages.push_back(message_of(e));
            }
        }(),
        r2.options());
    CHECK(size == 2);
    CHECK(messages == strings{"task1", "task2"});
    CHECK(what.find("2 errors in a task group") != std::string::npos);
    CHECK(r2.items.empty());
}

// anyio tests/test_taskgroups.py::test_exception_group_host; trio _core/_tests/test_run.py::
// test_main_and_task_both_crash
TEST_CASE("the body and a child fail: group_errors::all carries both, the body's first", "[conformance]") {
    reports r;
    strings messages;
    corio::run(
        [&]() -> task<> {
            try {
                co_await corio::with_task_group(
                    [](task_group& g) -> task<> {
                        g.spawn(error_after("child", 10s));
                        co_await corio::yield();  // the child is asleep
                        throw std::logic_error("host");
                    },
                    corio::group_errors::all);
            } catch (const corio::exception_group& eg) {
                for (const auto& e : eg.exceptions()) messages.push_back(message_of(e));
            }
        }(),
        r.options());
    CHECK(messages == strings{"host", "child"});
    CHECK(r.items.empty());
}

// anyio tests/test_taskgroups.py::test_single_cancellation_exc and
// test_propagate_native_cancellation_from_taskgroup
TEST_CASE("a cancel from outside goes on out of a task group as a single cancelled_error", "[conformance]") {
    corio::run([]() -> task<> {
        bool cancelled_out = false;
        bool wrong = false;
        const auto t0 = clock::now();
        const bool r = co_await corio::open_cancel_scope([&](cancel_scope& outer) -> task<> {
            try {
                co_await corio::with_task_group(
                    [&](task_group& g) -> task<> {
                        g.spawn([]() -> task<> { co_await corio::sleep(5s); });
                        co_await corio::yield();
                        outer.cancel();
                        co_await corio::sleep(5s);
                    },
                    corio::group_errors::all);
            } catch (const cancelled_error&) {
                cancelled_out = true;
                throw;
            } catch (...) {
                wrong = true;
                throw;
            }
        });
        CHECK_FALSE(r);
        CHECK(cancelled_out);
        CHECK_FALSE(wrong);
        CHECK(ms_since(t0) < 4000.0);

        // The same for a cancel of the task that runs the group.
        bool child_cancelled = false;
        bool went_on = false;
        auto t = corio::spawn([&]() -> task<> {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        child_cancelled = true;
                        throw;
                    }
                });
                co_return;
            });
            went_on = true;
        });
        co_await corio::sleep(5ms);
        t.cancel();
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
        CHECK(child_cancelled);
        CHECK_FALSE(went_on);
    }());
}

// anyio tests/test_taskgroups.py::test_level_cancellation and test_escaping_cancelled_exception,
// adapted: task_group::cancel() cancels the children as asyncio's Task.cancel() does, edge-
// triggered (a child may await in its cleanup), and a child cancelled before its first step
// never runs (trio would start it and cancel it at its first checkpoint). The body is not
// cancelled, and a cancelled child is not a failure of the group.
TEST_CASE("task_group::cancel cancels the children, not the body, and is no failure of the group", "[conformance]") {
    corio::run([]() -> task<> {
        int marker = 0;
        co_await corio::with_task_group([&](task_group& g) -> task<> {
            g.spawn([&]() -> task<> {
                marker = 1;
                co_await corio::yield();
                marker = 2;
            });
            g.cancel();  // before the child's first step
            co_return;
        });
        CHECK(marker == 0);

        bool cleanup_ran = false;
        bool body_went_on = false;
        co_await corio::with_task_group([&](task_group& g) -> task<> {
            g.spawn([&]() -> task<> {
                marker = 1;
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                    marker = 2;
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(1ms);
                    cleanup_ran = true;
                }
            });
            co_await corio::yield();  // the child is asleep
            g.cancel();
            co_await corio::sleep(1ms);
            body_went_on = true;
        });
        CHECK(marker == 1);
        CHECK(cleanup_ran);
        CHECK(body_went_on);
    }());
}

// anyio tests/test_taskgroups.py::test_start_cancel_after_error (regression test for anyio
// #517: after a failure the group starts no new work); trio _core/_tests/test_run.py::
// test_precancelled_task, adapted: trio starts a task spawned into a cancelled nursery and
// cancels it at its first checkpoint; in corio it is cancelled before its first step and,
// as in asyncio, never runs.
TEST_CASE("a child spawned into a failing group or inside a cancelled scope never runs", "[conformance]") {
    corio::run([]() -> task<> {
        bool late_ran = false;
        std::string what;
        try {
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) {  // the sibling failed: spawn more work from the cleanup
                        g.spawn([&]() -> task<> {
                            late_ran = true;
                            co_return;
                        });
                    }
                });
                g.spawn([]() -> task<> {
                    co_await corio::yield();
                    throw std::runtime_error("first");
                });
                co_await corio::sleep(10s);
            });
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "first");
        CHECK_FALSE(late_ran);

        strings record;
        const bool r = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            s.cancel();
            co_await corio::with_task_group([&](task_group& g) -> task<> {
                g.spawn([&]() -> task<> {
                    record.push_back("started");
                    co_await corio::sleep(10s);
                    record.push_back("slept");
                });
                co_return;
            });
        });
        CHECK_FALSE(r);
        CHECK(record.empty());  // trio: {"started"}
    }());
}

// trio _core/_tests/test_run.py::test_trivial_yields (opening and closing a nursery with
// nothing to wait for is not a cancellation point); anyio tests/test_taskgroups.py::
// test_cancel_before_entering_task_group ("This should not raise a cancellation exception")
// (The group delivers a pending cancel at its end only if its join suspended.)
TEST_CASE("an empty task group in a cancelled scope is not a cancellation point", "[conformance]") {
    corio::run([]() -> task<> {
        bool threw = false;
        const std::optional<int> r = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<int> {
            s.cancel();
            try {
                co_await corio::with_task_group([](task_group&) -> task<> { co_return; });
            } catch (const cancelled_error&) {
                threw = true;
                throw;
            }
            co_return 1;
        });
        CHECK_FALSE(threw);
        REQUIRE(r.has_value());
        CHECK(*r == 1);
    }());
}

// ---------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------

// trio _core/_tests/test_run.py::test_cancel_points (a checkpoint raises once the scope is
// cancelled), adapted from test_trivial_yields: in trio every async primitive is a
// checkpoint; corio, like asyncio, suspends only when it must wait, and an await that
// completes without suspending (a finished task or future, a set event, a free semaphore)
// is not a cancellation point.
TEST_CASE("yield is a cancellation point and an await that completes at once is not", "[conformance]") {
    corio::run([]() -> task<> {
        corio::event ev;
        ev.set();
        corio::semaphore sem(1);
        auto finished = corio::spawn([]() -> task<int> { co_return 8; });
        co_await corio::yield();
        REQUIRE(finished.done());
        auto immediate = []() -> task<int> { co_return 5; };

        strings trace;
        const bool completed = co_await corio::open_cancel_scope([&](cancel_scope& s) -> task<> {
            s.cancel();
            const int a = co_await immediate();
            trace.push_back("task gave " + std::to_string(a));
            const int b = co_await finished;
            trace.push_back("future gave " + std::to_string(b));
            co_await ev.wait();
            trace.push_back("event");
            {
                auto permit = co_await sem.acquire();
                trace.push_back("semaphore");
            }
            co_await corio::yield();
            trace.push_back("not reached");
        });
        CHECK_FALSE(completed);
        CHECK(trace == strings{"task gave 5", "future gave 8", "event", "semaphore"});
        CHECK(sem.available() == 1);
    }());
}

// ---------------------------------------------------------------------------------------
// std::stop_token interop
// ---------------------------------------------------------------------------------------

// trio _tests/test_threads.py::test_from_thread_host_cancelled (a scope cancelled from a
// worker thread); anyio tests/test_taskgroups.py::test_cancel_before_entering_scope (a
// cancel requested before the block starts)
TEST_CASE("cancel_on cancels the work when its stop_source is requested, from any thread", "[conformance]") {
    corio::run([]() -> task<> {
        std::stop_source src;
        const std::stop_token tok = src.get_token();
        const auto t0 = clock::now();
        std::thread stopper([&src] {
            std::this_thread::sleep_for(30ms);
            src.request_stop();
        });
        bool cancelled = false;
        auto op = corio::cancel_on(tok, []() -> task<> { co_await corio::sleep(10s); });
        try {
            co_await op;
        } catch (const cancelled_error&) {
            cancelled = true;
        }
        stopper.join();  // it has requested the stop already
        const double elapsed = ms_since(t0);
        CHECK(cancelled);
        CHECK(elapsed >= 30.0);
        CHECK(elapsed < 5000.0);
        co_await corio::sleep(1ms);  // the awaiting task itself was not cancelled

        // A token stopped before: the work starts cancelled; one that never suspends keeps
        // its value.
        std::stop_source stopped;
        stopped.request_stop();
        const std::stop_token stopped_tok = stopped.get_token();
        bool cancelled2 = false;
        auto op2 = corio::cancel_on(stopped_tok, []() -> task<> { co_await corio::sleep(10s); });
        try {
            co_await op2;
        } catch (const cancelled_error&) {
            cancelled2 = true;
        }
        CHECK(cancelled2);
        auto op3 = corio::cancel_on(stopped_tok, []() -> task<int> { co_return 3; });
        const int v3 = co_await op3;
        CHECK(v3 == 3);

        // A token never stopped: the value. And a scope around cancel_on still reaches in.
        std::stop_source idle;
        const std::stop_token idle_tok = idle.get_token();
        auto op4 = corio::cancel_on(idle_tok, []() -> task<int> {
            co_await corio::sleep(1ms);
            co_return 4;
        });
        const int v4 = co_await op4;
        CHECK(v4 == 4);
        const bool completed = co_await corio::move_on_after(20ms, [&]() -> task<> {
            auto op5 = corio::cancel_on(idle_tok, []() -> task<> { co_await corio::sleep(10s); });
            co_await op5;
        });
        CHECK_FALSE(completed);
        CHECK(ms_since(t0) < 10000.0);
    }());
}

// trio _tests/test_threads.py::test_from_thread_check_cancelled (a worker thread sees that
// its host was cancelled); anyio tests/test_to_thread.py::test_cancel_worker_thread (the
// cancel waits for the thread; here the thread polls the token and ends early)
TEST_CASE("current_stop_token is requested when the task or its cancel scope is cancelled", "[conformance]") {
    corio::run([]() -> task<> {
        std::atomic<bool> started{false};
        std::atomic<bool> saw_stop{false};
        bool possible = false;
        bool requested_early = true;
        auto t = corio::spawn([&]() -> task<int> {
            const std::stop_token tok = co_await corio::current_stop_token();
            possible = tok.stop_possible();
            requested_early = tok.stop_requested();
            auto poll = [tok, &started, &saw_stop] {
                started = true;
                const auto begin = std::chrono::steady_clock::now();
                while (!tok.stop_requested() && std::chrono::steady_clock::now() - begin < 5s)
                    std::this_thread::sleep_for(1ms);
                saw_stop = tok.stop_requested();
                return 1;
            };
            const int v = co_await corio::to_thread(poll);
            co_return v;
        });
        for (int i = 0; i < 2000 && !started; ++i) co_await corio::sleep(1ms);
        REQUIRE(started);
        const auto t0 = clock::now();
        t.cancel();
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(possible);
        CHECK_FALSE(requested_early);
        CHECK(cancelled);  // the job ran to its end, then the cancel ended the task
        CHECK(saw_stop);
        CHECK(ms_since(t0) < 4000.0);

        // Inside a scope's block: requested by the scope's deadline.
        saw_stop = false;
        int thread_result = 0;
        const bool completed = co_await corio::move_on_after(30ms, [&]() -> task<> {
            const std::stop_token tok = co_await corio::current_stop_token();
            auto poll = [tok, &saw_stop] {
                const auto begin = std::chrono::steady_clock::now();
                while (!tok.stop_requested() && std::chrono::steady_clock::now() - begin < 5s)
                    std::this_thread::sleep_for(1ms);
                saw_stop = tok.stop_requested();
                return 2;
            };
            thread_result = co_await corio::to_thread(poll);
            co_await corio::yield();  // the scope's cancel
        });
        CHECK_FALSE(completed);
        CHECK(thread_result == 2);
        CHECK(saw_stop);

        // A cancel already pending: the token comes requested.
        bool at_once = false;
        future<void> t2;
        t2 = corio::spawn([&]() -> task<> {
            t2.cancel();
            const std::stop_token tok = co_await corio::current_stop_token();
            at_once = tok.stop_requested();
        });
        const bool cancelled2 = co_await ends_cancelled(t2);
        CHECK(cancelled2);
        CHECK(at_once);
    }());
}
