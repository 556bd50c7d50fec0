#include <catch2/catch.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "test_util.hpp"

using namespace test;

namespace {

corio::task<int> after(std::chrono::milliseconds d, int v) {
    co_await corio::sleep(d);
    co_return v;
}

}  // namespace

TEST_CASE("as_completed yields the results in completion order with their indices") {
    using entry = std::pair<std::size_t, int>;
    auto got = corio::run([]() -> corio::task<std::vector<entry>> {
        std::vector<corio::task<int>> jobs;
        jobs.push_back(after(60ms, 600));
        jobs.push_back(after(20ms, 200));
        jobs.push_back(after(40ms, 400));
        auto pending = corio::as_completed(std::move(jobs));
        CHECK(pending.size() == 3);
        std::vector<entry> out;
        while (!pending.empty()) {
            auto [index, value] = co_await pending.next();
            out.emplace_back(index, value);
            CHECK(pending.size() == 3 - out.size());
        }
        co_return out;
    }());
    CHECK(got == std::vector<entry>{{1, 200}, {2, 400}, {0, 600}});
}

TEST_CASE("as_completed keeps the completion order of results that ended while nobody waited") {
    std::vector<std::size_t> order;
    corio::run([&]() -> corio::task<> {
        std::vector<corio::task<int>> jobs;
        for (int ms : {40, 10, 50, 20, 30}) jobs.push_back(after(std::chrono::milliseconds(ms), ms));
        auto pending = corio::as_completed(std::move(jobs));
        co_await corio::sleep(100ms);  // every one has ended; none was taken
        CHECK(pending.size() == 5);
        while (!pending.empty()) {
            auto r = co_await pending.next();
            order.push_back(r.index);
        }
    }());
    CHECK(order == std::vector<std::size_t>{1, 3, 4, 0, 2});
}

TEST_CASE("as_completed starts every child at once, before the first next()") {
    int started = 0;
    corio::run([&]() -> corio::task<> {
        auto job = [&](int v) -> corio::task<int> {
            ++started;
            co_await corio::sleep(10s);
            co_return v;
        };
        std::vector<corio::task<int>> jobs;
        for (int i = 0; i < 3; ++i) jobs.push_back(job(i));
        auto pending = corio::as_completed(std::move(jobs));
        CHECK(started == 0);  // like spawn: the first steps run at our next suspension
        co_await corio::yield();
        CHECK(started == 3);
        co_await pending.close();
    }());
    CHECK(started == 3);
}

TEST_CASE("as_completed rethrows a failing child's own exception at its turn and the others still deliver") {
    reports r;
    std::vector<std::string> seen;
    corio::run(
        [&]() -> corio::task<> {
            std::vector<corio::task<int>> jobs;
            jobs.push_back(after(10ms, 1));
            jobs.push_back([]() -> corio::task<int> {
                co_await corio::sleep(30ms);
                throw std::runtime_error("the second fails");
            }());
            jobs.push_back(after(50ms, 3));
            auto pending = corio::as_completed(std::move(jobs));
            while (!pending.empty()) {
                try {
                    auto [index, value] = co_await pending.next();
                    seen.push_back(std::to_string(index) + "=" + std::to_string(value));
                } catch (const std::runtime_error& e) {
                    seen.push_back(e.what());
                }
            }
        }(),
        r.options());
    CHECK(seen == std::vector<std::string>{"0=1", "the second fails", "2=3"});
    CHECK(r.items.empty());  // the failure was retrieved: nothing to report
}

TEST_CASE("as_completed takes callables and void tasks, whose values are std::monostate") {
    std::vector<std::size_t> order;
    corio::run([&]() -> corio::task<> {
        std::vector<std::function<corio::task<>()>> jobs;
        for (int ms : {40, 10, 25})
            jobs.emplace_back([ms]() -> corio::task<> { co_await corio::sleep(std::chrono::milliseconds(ms)); });
        auto pending = corio::as_completed(std::move(jobs));
        static_assert(std::is_same_v<decltype(pending), corio::as_completed_set<void>>);
        while (!pending.empty()) {
            auto r = co_await pending.next();
            static_assert(std::is_same_v<decltype(r.value), std::monostate>);
            order.push_back(r.index);
        }
    }());
    CHECK(order == std::vector<std::size_t>{1, 2, 0});
}

TEST_CASE("as_completed of an empty range is empty at once") {
    std::string what;
    corio::run([&]() -> corio::task<> {
        auto pending = corio::as_completed(std::vector<corio::task<int>>{});
        CHECK(pending.empty());
        CHECK(pending.size() == 0);
        try {
            (void)co_await pending.next();
        } catch (const corio::usage_error& e) {
            what = e.what();
        }
        co_await pending.close();  // nothing to wait for
    }());
    CHECK(what.find("no result left") != std::string::npos);
}

TEST_CASE("next() on an exhausted as_completed throws usage_error") {
    std::string what;
    int value = 0;
    corio::run([&]() -> corio::task<> {
        std::vector<corio::task<int>> jobs;
        jobs.push_back(after(1ms, 5));
        auto pending = corio::as_completed(std::move(jobs));
        auto r = co_await pending.next();
        value = r.value;
        CHECK(pending.empty());
        try {
            (void)co_await pending.next();
        } catch (const corio::usage_error& e) {
            what = e.what();
        }
    }());
    CHECK(value == 5);
    CHECK(what == "corio: as_completed: next() with no result left (check empty() first)");
}

TEST_CASE("as_completed outside a running loop throws usage_error") {
    std::vector<corio::task<int>> jobs;
    jobs.push_back(after(1ms, 1));
    CHECK_THROWS_AS((void)corio::as_completed(std::move(jobs)), corio::usage_error);
}

TEST_CASE("cancelling the task waiting in next() loses no result and leaves the children to the set") {
    bool slow_cancelled = false;
    bool waiter_cancelled = false;
    corio::run([&]() -> corio::task<> {
        auto slow = [&]() -> corio::task<int> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                slow_cancelled = true;
                throw;
            }
            co_return 2;
        };
        std::vector<corio::task<int>> jobs;
        jobs.push_back(after(30ms, 1));
        jobs.push_back(slow());
        auto pending = corio::as_completed(std::move(jobs));
        auto waiter = corio::spawn([&]() -> corio::task<> {
            try {
                (void)co_await pending.next();
            } catch (const corio::cancelled_error&) {
                waiter_cancelled = true;
                throw;
            }
        });
        co_await corio::sleep(5ms);
        CHECK(pending.size() == 1);  // one result claimed by the waiter
        waiter.cancel();
        auto [o] = co_await corio::gather_settled(waiter);
        CHECK(o.cancelled());
        CHECK(waiter_cancelled);
        CHECK(pending.size() == 2);            // the claim went back
        auto first = co_await pending.next();  // the 30 ms child, which ended after the cancel
        CHECK(first.index == 0);
        CHECK(first.value == 1);
        CHECK_FALSE(slow_cancelled);  // still running: it belongs to the set
        CHECK(pending.size() == 1);
        co_await pending.close();
        CHECK(slow_cancelled);
    }());
    CHECK(slow_cancelled);
}

TEST_CASE("a result that reaches next() as its task is cancelled is delivered exactly once") {
    // The cancel comes k steps after the child ends: before the result is handed to the
    // waiter, after it is handed but before the waiter resumes (it goes back to the set),
    // or after the waiter has it. Whichever, the value reaches someone exactly once.
    int delivered_to_waiter = 0;
    for (int k = 0; k < 5; ++k) {
        CAPTURE(k);
        int seen_by_waiter = 0;
        int seen_later = 0;
        corio::run([&]() -> corio::task<> {
            corio::event ending;
            auto child = [&]() -> corio::task<int> {
                co_await corio::sleep(5ms);
                ending.set();
                co_return 7;
            };
            std::vector<corio::task<int>> jobs;
            jobs.push_back(child());
            auto pending = corio::as_completed(std::move(jobs));
            auto waiter = corio::spawn([&]() -> corio::task<> {
                auto r = co_await pending.next();
                seen_by_waiter += r.value;
                co_await corio::sleep(10s);  // a late cancel ends it here
            });
            auto canceller = corio::spawn([&]() -> corio::task<> {
                co_await ending.wait();
                for (int i = 0; i < k; ++i) co_await corio::yield();
                waiter.cancel();
            });
            co_await canceller;
            auto [o] = co_await corio::gather_settled(waiter);
            CHECK(o.cancelled());
            if (!pending.empty()) {
                auto r = co_await pending.next();
                seen_later += r.value;
            }
            CHECK(pending.empty());
        }());
        CHECK(seen_by_waiter + seen_later == 7);
        delivered_to_waiter += seen_by_waiter > 0 ? 1 : 0;
    }
    CHECK(delivered_to_waiter > 0);  // the late cancels did not take the value away either
}

TEST_CASE("several tasks waiting in next() each get a different result") {
    std::vector<int> got;
    std::string what;
    corio::run([&]() -> corio::task<> {
        std::vector<corio::task<int>> jobs;
        jobs.push_back(after(40ms, 1));
        jobs.push_back(after(20ms, 2));
        auto pending = corio::as_completed(std::move(jobs));
        auto taker = [&]() -> corio::task<> {
            auto r = co_await pending.next();
            got.push_back(r.value);
        };
        auto a = corio::spawn(taker);
        auto b = corio::spawn(taker);
        co_await corio::yield();  // both wait now
        CHECK(pending.empty());   // every result still to come is claimed
        try {
            (void)co_await pending.next();
        } catch (const corio::usage_error& e) {
            what = e.what();
        }
        co_await a;
        co_await b;
    }());
    CHECK(got == std::vector<int>{2, 1});  // in completion order, oldest waiter first
    CHECK(what.find("no result left") != std::string::npos);
}

TEST_CASE("a next() waiting when its as_completed set is closed throws usage_error") {
    std::string what;
    corio::run([&]() -> corio::task<> {
        std::vector<corio::task<int>> jobs;
        jobs.push_back(after(10s, 1));
        auto pending = corio::as_completed(std::move(jobs));
        auto waiter = corio::spawn([&]() -> corio::task<> {
            try {
                (void)co_await pending.next();
            } catch (const corio::usage_error& e) {
                what = e.what();
            }
        });
        co_await corio::yield();  // the waiter waits
        co_await pending.close();
        co_await waiter;
    }());
    CHECK(what == "corio: as_completed: the set was closed while next() waited");
}

TEST_CASE("close() cancels the children still running and returns once they have ended") {
    reports r;
    std::vector<std::string> events;
    std::string what;
    corio::run(
        [&]() -> corio::task<> {
            auto slow = [&](std::string name) -> corio::task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const corio::cancelled_error&) {
                    events.push_back(name + " cancelled");
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(20ms);  // cleanup that awaits: close() waits for it
                    events.push_back(name + " cleaned up");
                    throw corio::cancelled_error();
                }
                co_return 0;
            };
            std::vector<corio::task<int>> jobs;
            jobs.push_back(after(5ms, 1));
            jobs.push_back(slow("a"));
            jobs.push_back(slow("b"));
            jobs.push_back(after(10ms, 4));
            auto pending = corio::as_completed(std::move(jobs));
            auto first = co_await pending.next();
            CHECK(first.index == 0);
            co_await corio::sleep(30ms);  // index 3 has ended too: nobody takes it
            CHECK(pending.size() == 3);
            co_await pending.close();
            events.push_back("closed");
            CHECK(pending.empty());
            CHECK(corio::event_loop::current().tasks().size() == 1);  // only this task is left
            try {
                (void)co_await pending.next();
            } catch (const corio::usage_error& e) {
                what = e.what();
            }
            co_await pending.close();  // again: at once
        }(),
        r.options());
    REQUIRE(events.size() == 5);
    CHECK(std::count(events.begin(), events.end(), "a cleaned up") == 1);
    CHECK(std::count(events.begin(), events.end(), "b cleaned up") == 1);
    CHECK(events.back() == "closed");
    CHECK(what == "corio: as_completed: next() after close()");
    CHECK(r.items.empty());  // cancelled children and dropped values are not failures
}

TEST_CASE("a cancel of the task in close() still waits for the children, then throws cancelled_error") {
    bool cleaned_up = false;
    bool cleaned_up_when_close_threw = false;
    bool close_threw = false;
    corio::run([&]() -> corio::task<> {
        auto slow = [&]() -> corio::task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::sleep(30ms);
                cleaned_up = true;
            }
        };
        std::vector<corio::task<>> jobs;
        jobs.push_back(slow());
        auto pending = corio::as_completed(std::move(jobs));
        auto closer = corio::spawn([&]() -> corio::task<> {
            try {
                co_await pending.close();
            } catch (const corio::cancelled_error&) {
                close_threw = true;
                cleaned_up_when_close_threw = cleaned_up;
                throw;
            }
        });
        co_await corio::sleep(5ms);
        closer.cancel();
        auto [o] = co_await corio::gather_settled(closer);
        CHECK(o.cancelled());
        co_await corio::sleep(60ms);  // a close() that returned early fails the checks, not ASan
    }());
    CHECK(close_threw);
    CHECK(cleaned_up_when_close_threw);
}

TEST_CASE("close() called with a cancel already pending still waits for the children, then throws") {
    bool cleaned_up = false;
    bool cleaned_up_when_close_ended = false;
    bool close_threw = false;
    corio::run([&]() -> corio::task<> {
        auto slow = [&]() -> corio::task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::sleep(30ms);
                cleaned_up = true;
            }
        };
        std::vector<corio::task<>> jobs;
        jobs.push_back(slow());
        auto pending = corio::as_completed(std::move(jobs));
        co_await corio::yield();  // the child sleeps
        corio::future<void> closer;
        closer = corio::spawn([&]() -> corio::task<> {
            closer.cancel();  // pending: we are running
            try {
                co_await pending.close();
            } catch (const corio::cancelled_error&) {
                close_threw = true;
            }
            cleaned_up_when_close_ended = cleaned_up;
        });
        co_await corio::gather_settled(closer);
        co_await corio::sleep(60ms);  // a close() that returned early fails the checks, not ASan
    }());
    CHECK(cleaned_up_when_close_ended);
    CHECK(close_threw);
}

TEST_CASE("destroying an as_completed set without close() cancels the rest and reports nothing spurious") {
    reports r;
    int cancelled = 0;
    bool late_ran = false;
    corio::run(
        [&]() -> corio::task<> {
            auto slow = [&]() -> corio::task<int> {
                try {
                    co_await corio::sleep(10s);
                } catch (const corio::cancelled_error&) {
                    ++cancelled;
                    throw;
                }
                co_return 0;
            };
            auto late = [&]() -> corio::task<int> {
                co_await corio::yield();
                late_ran = true;
                co_return 0;
            };
            {
                std::vector<corio::task<int>> jobs;
                jobs.push_back(after(1ms, 1));
                jobs.push_back(slow());
                jobs.push_back(slow());
                auto pending = corio::as_completed(std::move(jobs));
                co_await corio::sleep(20ms);  // the first has ended; nobody takes it
                CHECK(cancelled == 0);
            }
            {
                // Destroyed before its children's first step.
                std::vector<corio::task<int>> jobs;
                jobs.push_back(late());
                auto pending = corio::as_completed(std::move(jobs));
            }
            co_await corio::sleep(10ms);
            CHECK(cancelled == 2);
            CHECK(corio::event_loop::current().tasks().size() == 1);  // they have all ended
        }(),
        r.options());
    CHECK(cancelled == 2);
    CHECK_FALSE(late_ran);
    CHECK(r.items.empty());
}

TEST_CASE("a failure nobody took from an as_completed set is reported once when the set goes") {
    reports r;
    corio::run(
        [&]() -> corio::task<> {
            {
                std::vector<corio::task<int>> jobs;
                jobs.push_back([]() -> corio::task<int> {
                    co_await corio::sleep(1ms);
                    throw std::runtime_error("nobody looked");
                }());
                jobs.push_back(after(2ms, 2));
                auto pending = corio::as_completed(std::move(jobs));
                co_await corio::sleep(20ms);
                CHECK(r.items.empty());  // still in the set: someone may take it yet
            }
            co_await corio::sleep(5ms);
        }(),
        r.options());
    REQUIRE(r.items.size() == 1);
    CHECK(r.items[0].kind == corio::report_kind::unretrieved_exception);
    CHECK(message_of(r.items[0].exception) == "nobody looked");
}

TEST_CASE("a child abandoned by as_completed that fails after its cancel is reported exactly once") {
    const bool via_close = GENERATE(false, true);
    CAPTURE(via_close);
    reports r;
    std::size_t reports_when_closed = 0;
    corio::run(
        [&]() -> corio::task<> {
            auto stubborn = [&]() -> corio::task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const corio::cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) {
                    co_await corio::sleep(5ms);
                    throw std::runtime_error("cleanup failed");
                }
                co_return 0;
            };
            {
                std::vector<corio::task<int>> jobs;
                jobs.push_back(stubborn());
                jobs.push_back(after(1ms, 1));
                auto pending = corio::as_completed(std::move(jobs));
                auto first = co_await pending.next();
                CHECK(first.index == 1);
                if (via_close) {
                    co_await pending.close();  // throws nothing of the child's
                    reports_when_closed = r.items.size();
                }
            }
            co_await corio::sleep(30ms);
        }(),
        r.options());
    REQUIRE(r.items.size() == 1);
    CHECK(r.items[0].kind == corio::report_kind::unretrieved_exception);
    CHECK(message_of(r.items[0].exception) == "cleanup failed");
    if (via_close) CHECK(reports_when_closed == 1);  // already reported when close() returns
}
