// Regression tests for corio's cancellation promises: a cancel is never lost, an error is
// never dropped. Each case is named after the behaviour; the comment gives the asyncio
// test it mirrors where there is one.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

using namespace test;
using corio::cancelled_error;
using corio::future;
using corio::task;

namespace {

// Sleeps for long; records whether the sleep was cancelled.
task<> long_sleep(bool& cancelled) {
    try {
        co_await corio::sleep(10s);
    } catch (const cancelled_error&) {
        cancelled = true;
        throw;
    }
}

task<int> yields_then_returns(int n) {
    for (int i = 0; i < n; ++i) co_await corio::yield();
    co_return n;
}

}  // namespace

// asyncio test_tasks.test_cancel_at_end
TEST_CASE("cancel at the end: a task that cancels itself and returns at once ends cancelled") {
    corio::run([]() -> task<> {
        future<int> self;
        bool cancel_accepted = false;
        self = corio::spawn([&]() -> task<int> {
            cancel_accepted = self.cancel();
            co_return 12;
        });
        const bool cancelled = co_await ends_cancelled(self);
        CHECK(cancel_accepted);
        CHECK(cancelled);
        CHECK(self.cancelled());
    }());
}

TEST_CASE("cancel at the end: a queue item handed to a popper cancelled before it resumed goes on") {
    corio::run([]() -> task<> {
        corio::queue<int> q(0);
        auto popper = corio::spawn([&]() -> task<int> {
            auto v = co_await q.pop();
            co_return *v;
        });
        co_await corio::yield();  // the popper waits
        co_await q.push(7);       // handed straight to it
        popper.cancel();          // before it resumed
        const bool cancelled = co_await ends_cancelled(popper);
        CHECK(cancelled);
        auto again = q.try_pop();
        REQUIRE(again.has_value());
        CHECK(*again == 7);  // nothing lost: the item is back at the front

        // With another popper waiting, the item goes on to it.
        auto first = corio::spawn([&]() -> task<int> { co_return *(co_await q.pop()); });
        auto second = corio::spawn([&]() -> task<int> { co_return *(co_await q.pop()); });
        co_await corio::yield();
        co_await q.push(8);
        first.cancel();
        const int got = co_await second;
        CHECK(got == 8);
        const bool first_cancelled = co_await ends_cancelled(first);
        CHECK(first_cancelled);
        CHECK(q.empty());
    }());
}

TEST_CASE("cancel at the end: a semaphore unit handed to a waiter cancelled before it resumed goes on") {
    corio::run([]() -> task<> {
        corio::semaphore sem(0);
        bool entered = false;
        auto waiter = corio::spawn([&]() -> task<> {
            auto permit = co_await sem.acquire();
            entered = true;
        });
        co_await corio::yield();
        sem.release();  // handed to the waiter
        waiter.cancel();
        const bool cancelled = co_await ends_cancelled(waiter);
        CHECK(cancelled);
        CHECK_FALSE(entered);
        CHECK(sem.available() == 1);  // the unit came back
    }());
}

TEST_CASE("cancel at the end: a condition variable notification for a cancelled waiter goes to the next") {
    corio::run([]() -> task<> {
        corio::mutex m;
        corio::condition_variable cv;
        std::vector<int> woke;
        auto waiter = [&](int id) -> task<> {
            auto g = co_await m.lock();
            co_await cv.wait(g);
            woke.push_back(id);
        };
        auto a = corio::spawn(waiter(1));
        auto b = corio::spawn(waiter(2));
        co_await corio::yield();
        co_await corio::yield();
        {
            auto g = co_await m.lock();
            cv.notify_one();  // for a
        }
        a.cancel();  // before a resumed: the notification must reach b
        const bool a_cancelled = co_await ends_cancelled(a);
        CHECK(a_cancelled);
        co_await corio::wait_for(b, 5s);
        CHECK(woke == std::vector<int>{2});
        CHECK_FALSE(m.locked());
    }());
}

TEST_CASE("a pending cancel reaches the awaited future: the work behind it is cancelled and awaited") {
    corio::run([]() -> task<> {
        bool inner_cancelled = false;
        auto inner = corio::spawn(long_sleep(inner_cancelled));
        co_await corio::yield();  // inner is asleep
        future<void> outer;
        outer = corio::spawn([&]() -> task<> {
            outer.cancel();  // pending when the await starts
            co_await inner;
        });
        const bool cancelled = co_await ends_cancelled(outer);
        CHECK(cancelled);
        CHECK(inner.done());  // ended before outer did
        CHECK(inner.cancelled());
        CHECK(inner_cancelled);
    }());
}

TEST_CASE("a pending cancel reaches a promise's future: it ends cancelled") {
    corio::run([]() -> task<> {
        corio::promise<int> p;
        auto f = p.get_future();
        future<int> outer;
        outer = corio::spawn([&]() -> task<int> {
            outer.cancel();
            co_return co_await f;
        });
        const bool cancelled = co_await ends_cancelled(outer);
        CHECK(cancelled);
        CHECK(f.cancelled());
    }());
}

TEST_CASE("gather cancels every sibling when a child fails while gather is starting them") {
    corio::run([]() -> task<> {
        for (int round = 0; round < 20; ++round) {
            bool bg_cancelled = false;
            auto bg = corio::spawn(long_sleep(bg_cancelled));
            co_await corio::yield();
            auto fails_now = []() -> task<> {
                throw std::runtime_error("boom");
                co_return;
            };
            bool threw = false;
            try {
                co_await corio::gather(fails_now(), bg);
            } catch (const std::runtime_error&) {
                threw = true;
            }
            CHECK(threw);
            CHECK(bg.done());  // every time, as gather returns
            CHECK(bg_cancelled);
        }
    }());
}

// CPython gh-116720: a task group keeps the cancel request that came from outside.
TEST_CASE("with_task_group keeps an outside cancel that comes as a child fails") {
    corio::run([]() -> task<> {
        bool saw_error = false;
        bool slept = false;
        future<void> t;
        t = corio::spawn([&]() -> task<> {
            try {
                co_await corio::with_task_group([&](corio::task_group& g) -> task<> {
                    g.spawn([&]() -> task<> {
                        co_await corio::yield();
                        t.cancel();  // from outside the group, just before the child fails
                        throw std::runtime_error("child");
                    });
                    co_await corio::sleep(10s);
                });
            } catch (const std::runtime_error&) {
                saw_error = true;
            }
            co_await corio::sleep(1s);  // the outside cancel fires here
            slept = true;
        });
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(saw_error);
        CHECK(cancelled);
        CHECK_FALSE(slept);
    }());
}

TEST_CASE("with_task_group keeps an outside cancel that comes while it cancels its children") {
    corio::run([]() -> task<> {
        bool saw_error = false;
        bool slept = false;
        future<void> t;
        t = corio::spawn([&]() -> task<> {
            try {
                co_await corio::with_task_group([&](corio::task_group& g) -> task<> {
                    g.spawn([&]() -> task<> {
                        co_await corio::yield();
                        throw std::runtime_error("child");
                    });
                    g.spawn([&]() -> task<> {
                        bool cancelled = false;
                        try {
                            co_await corio::sleep(10s);
                        } catch (const cancelled_error&) {
                            cancelled = true;
                        }
                        if (cancelled) t.cancel();  // the outside cancel, during the group's cleanup
                    });
                    co_await corio::sleep(10s);
                });
            } catch (const std::runtime_error&) {
                saw_error = true;
            }
            co_await corio::sleep(1s);
            slept = true;
        });
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(saw_error);
        CHECK(cancelled);
        CHECK_FALSE(slept);
    }());
}

TEST_CASE("with_task_group withdraws its own cancel: after a child's failure the task awaits freely") {
    corio::run([]() -> task<> {
        bool saw_error = false;
        try {
            co_await corio::with_task_group([&](corio::task_group& g) -> task<> {
                g.spawn([]() -> task<> {
                    co_await corio::yield();
                    throw std::runtime_error("child");
                });
                co_await corio::shield(corio::sleep(5ms));  // the injected cancel is not delivered here
            });
        } catch (const std::runtime_error&) {
            saw_error = true;
        }
        CHECK(saw_error);
        co_await corio::sleep(1ms);  // must not throw
    }());
}

TEST_CASE("with_task_group reports the body's error when the body fails while it is cancelled") {
    reports r;
    std::string rethrown;
    corio::run(
        [&]() -> task<> {
            try {
                co_await corio::with_task_group([&](corio::task_group& g) -> task<> {
                    g.spawn([]() -> task<> {
                        co_await corio::yield();
                        throw std::runtime_error("child failed");
                    });
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) throw std::logic_error("body failed in its cleanup");
                });
            } catch (const std::runtime_error& e) {
                rethrown = e.what();
            }
        }(),
        r.options());
    CHECK(rethrown == "child failed");
    REQUIRE(r.count(corio::report_kind::unretrieved_exception) == 1);
    std::string reported;
    try {
        std::rethrow_exception(r.items.at(0).exception);
    } catch (const std::logic_error& e) {
        reported = e.what();
    }
    CHECK(reported == "body failed in its cleanup");
}

TEST_CASE("with_task_group and group_errors::all: every failure in one exception_group, in order") {
    reports r;
    std::vector<std::string> messages;
    std::string what;
    corio::run(
        [&]() -> task<> {
            try {
                co_await corio::with_task_group(
                    [&](corio::task_group& g) -> task<> {
                        g.spawn([]() -> task<> {
                            co_await corio::yield();
                            throw std::runtime_error("first");
                        });
                        g.spawn([]() -> task<> {
                            bool cancelled = false;
                            try {
                                co_await corio::sleep(10s);
                            } catch (const cancelled_error&) {
                                cancelled = true;
                            }
                            if (cancelled) throw std::runtime_error("second, in cleanup");
                        });
                        bool cancelled = false;
                        try {
                            co_await corio::sleep(10s);
                        } catch (const cancelled_error&) {
                            cancelled = true;
                        }
                        if (cancelled) throw std::logic_error("body");
                    },
                    corio::group_errors::all);
            } catch (const corio::exception_group& eg) {
                what = eg.what();
                for (const auto& e : eg.exceptions()) messages.push_back(message_of(e));
            }
        }(),
        r.options());
    CHECK(messages.size() == 3);
    CHECK(messages.at(0) == "first");
    CHECK(std::find(messages.begin(), messages.end(), "second, in cleanup") != messages.end());
    CHECK(std::find(messages.begin(), messages.end(), "body") != messages.end());
    CHECK(what.find("3 errors in a task group") != std::string::npos);
    CHECK(r.items.empty());  // all of them were thrown: nothing to report
}

TEST_CASE("wait_for after its timeout fired: the inner value is returned and an outside cancel still ends the task") {
    corio::run([]() -> task<> {
        int got = 0;
        future<int> t;
        t = corio::spawn([&]() -> task<int> {
            const int v = co_await corio::wait_for(
                [&]() -> task<int> {
                    bool timed_out = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        timed_out = true;
                    }
                    if (timed_out) t.cancel();  // meanwhile, from outside
                    co_return 5;
                },
                10ms);
            got = v;
            co_return v;
        });
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(got == 5);   // the inner work finished anyway: its value
        CHECK(cancelled);  // and the outside cancel was not lost
    }());
}

// asyncio test_tasks: a task cancelled before its first step never runs.
TEST_CASE("a task cancelled before its first step never runs its body") {
    corio::run([]() -> task<> {
        bool ran = false;
        auto f = corio::spawn([&]() -> task<int> {
            ran = true;
            co_return 1;
        });
        CHECK(f.cancel());
        const bool cancelled = co_await ends_cancelled(f);
        CHECK(cancelled);
        CHECK_FALSE(ran);
    }());
}

TEST_CASE("a task spawned into a failing group never runs") {
    corio::run([]() -> task<> {
        bool late_ran = false;
        bool threw = false;
        try {
            co_await corio::with_task_group([&](corio::task_group& g) -> task<> {
                g.spawn([]() -> task<> {
                    throw std::runtime_error("x");
                    co_return;
                });
                co_await corio::shield(corio::yield());  // the child fails meanwhile
                g.spawn([&]() -> task<> {
                    late_ran = true;
                    co_return;
                });
            });
        } catch (const std::runtime_error&) {
            threw = true;
        }
        CHECK(threw);
        CHECK_FALSE(late_ran);
    }());
}

TEST_CASE("spawn(shield(inner)) cancelled while it waits: inner finishes, the task ends cancelled") {
    corio::run([]() -> task<> {
        bool inner_done = false;
        auto f = corio::spawn(corio::shield([&]() -> task<int> {
            co_await corio::sleep(20ms);
            inner_done = true;
            co_return 3;
        }));
        co_await corio::sleep(2ms);
        f.cancel();
        const bool cancelled = co_await ends_cancelled(f);
        CHECK(inner_done);
        CHECK(cancelled);
    }());
}

TEST_CASE("a task with a pending cancel that awaits gather, when_any or wait_for cancels the work it was given") {
    corio::run([]() -> task<> {
        for (int which = 0; which < 3; ++which) {
            bool work_cancelled = false;
            auto work = corio::spawn(long_sleep(work_cancelled));
            co_await corio::yield();
            future<void> t;
            t = corio::spawn([&]() -> task<> {
                t.cancel();
                if (which == 0)
                    co_await corio::gather(work);
                else if (which == 1)
                    co_await corio::when_any(work);
                else
                    co_await corio::wait_for(work, 10s);
            });
            const bool cancelled = co_await ends_cancelled(t);
            INFO("combinator " << which);
            CHECK(cancelled);
            CHECK(work.done());
            CHECK(work_cancelled);
        }
    }());
}

TEST_CASE("wait_for with a deadline of zero or in the past gives the same answer every time") {
    corio::run([]() -> task<> {
        for (int n = 1; n <= 70; ++n) {
            bool timed_out = false;
            try {
                (void)co_await corio::wait_for(yields_then_returns(n), n % 2 == 0 ? 0ms : -5ms);
            } catch (const corio::timeout_error&) {
                timed_out = true;
            }
            INFO("yields: " << n);
            CHECK(timed_out);
        }
        // A body that never suspends returns its value even so.
        const int v = co_await corio::wait_for(yields_then_returns(0), 0ms);
        CHECK(v == 0);
    }());
}

// bpo-32528: CancelledError is a BaseException so that `except Exception` lets it through.
TEST_CASE("cancelled_error is not a std::exception: catch (const std::exception&) does not swallow it") {
    STATIC_REQUIRE_FALSE(std::is_base_of_v<std::exception, corio::cancelled_error>);
    corio::run([]() -> task<> {
        bool inner_caught = false;
        bool timed_out = false;
        const auto t0 = clock::now();
        try {
            (void)co_await corio::wait_for(
                [&]() -> task<int> {
                    try {
                        co_await corio::sleep(1s);
                    } catch (const std::exception&) {  // ordinary error handling
                        inner_caught = true;
                    }
                    co_return 1;
                },
                10ms);
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        CHECK_FALSE(inner_caught);
        CHECK(ms_since(t0) < 900);  // not the inner sleep's full second
    }());
}

TEST_CASE("gather reports a second failure instead of dropping it") {
    reports r;
    std::string rethrown;
    corio::run(
        [&]() -> task<> {
            auto first = []() -> task<> {
                co_await corio::yield();
                throw std::runtime_error("first");
            };
            auto second = []() -> task<> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) throw std::runtime_error("second, in cleanup");
            };
            try {
                co_await corio::gather(first(), second());
            } catch (const std::runtime_error& e) {
                rethrown = e.what();
            }
        }(),
        r.options());
    CHECK(rethrown == "first");
    REQUIRE(r.items.size() == 1);
    CHECK(r.items[0].kind == corio::report_kind::unretrieved_exception);
    std::string reported;
    try {
        std::rethrow_exception(r.items[0].exception);
    } catch (const std::runtime_error& e) {
        reported = e.what();
    }
    CHECK(reported == "second, in cleanup");
}

TEST_CASE("run_coroutine_threadsafe work that the loop never ran reports cancelled_error, not a broken promise") {
    std::future<int> f;
    bool ran = false;
    {
        corio::event_loop loop;
        // Posted from the loop's own task, which then ends: run() returns before the
        // posted work is taken, and the loop is destroyed with it unrun.
        loop.run([&]() -> task<> {
            f = corio::run_coroutine_threadsafe(loop, [&]() -> task<int> {
                ran = true;
                co_return 1;
            });
            co_return;
        }());
    }
    bool cancelled = false;
    try {
        (void)f.get();
    } catch (const cancelled_error&) {
        cancelled = true;
    }
    CHECK_FALSE(ran);
    CHECK(cancelled);
}

TEST_CASE("a read that completed before the cancel reached its task keeps its bytes, and the cancel fires next") {
    corio::run([]() -> task<> {
        auto listener = corio::net::tcp_listener::bind(corio::net::endpoint::loopback(0));
        auto client = co_await corio::net::tcp_stream::connect(listener.local_endpoint());
        auto server = co_await listener.accept();
        std::array<char, 16> buf{};
        bool reader_resumed = false;
        std::size_t got = 0;
        bool cancelled_next = false;
        future<void> reader;
        reader = corio::spawn([&]() -> task<> {
            got = co_await server.read_some(buf);
            reader_resumed = true;
            try {
                co_await corio::yield();
            } catch (const cancelled_error&) {
                cancelled_next = true;
                throw;
            }
        });
        co_await corio::yield();  // the read is in flight
        // A task that stays in the ready queue sees the bytes land in the reader's buffer
        // (the backend completes the read) before the reader itself is resumed.
        bool cancelled_in_between = false;
        auto watcher = corio::spawn([&]() -> task<> {
            while (buf[0] == 0) co_await corio::yield();
            if (!reader_resumed) cancelled_in_between = reader.cancel();
        });
        co_await client.write_all(corio::const_buffer("hello", 5));
        co_await watcher;
        const bool cancelled = co_await ends_cancelled(reader);
        REQUIRE(cancelled_in_between);  // the race this test is about did happen
        CHECK(got == 5);                // the bytes were not dropped
        CHECK(std::string(buf.data(), got) == "hello");
        CHECK(cancelled_next);  // and the cancel was not lost
        CHECK(cancelled);
    }());
}

TEST_CASE("a cancel that comes while a pool job runs waits for its result, then fires at the next suspension") {
    corio::run([]() -> task<> {
        std::atomic<bool> started{false};
        std::atomic<bool> release{false};
        int got = 0;
        bool cancelled_next = false;
        auto t = corio::spawn([&]() -> task<> {
            auto job = [&] {
                started = true;
                while (!release) std::this_thread::sleep_for(1ms);
                return 21;
            };
            got = co_await corio::to_thread(std::move(job));
            try {
                co_await corio::yield();
            } catch (const cancelled_error&) {
                cancelled_next = true;
                throw;
            }
        });
        while (!started) co_await corio::sleep(1ms);
        CHECK(t.cancel());  // the job is running: it cannot be withdrawn
        co_await corio::sleep(5ms);
        CHECK_FALSE(t.done());  // the task waits for the job
        release = true;
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(got == 21);  // its result was kept
        CHECK(cancelled_next);
        CHECK(cancelled);
    }());
}
