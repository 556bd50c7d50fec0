#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "test_util.hpp"

using namespace test;
using namespace corio;

namespace {

// Spawns `n` tasks that each run body(i), letting each reach its first suspension before
// the next starts (so they queue in index order).
template <class Body>
task<std::vector<future<void>>> start_in_order(int n, Body body) {
    std::vector<future<void>> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(spawn([body, i]() -> task<> { co_await body(i); }));
        co_await yield();
    }
    co_return out;
}

}  // namespace

TEST_CASE("event: set wakes every waiter in order, and a set event does not wait") {
    run([]() -> task<> {
        event e;
        std::vector<int> order;
        auto waiters = co_await start_in_order(3, [&](int i) -> task<> {
            co_await e.wait();
            order.push_back(i);
        });
        CHECK(order.empty());
        e.set();
        CHECK(e.is_set());
        for (auto& w : waiters) co_await w;
        CHECK(order == std::vector<int>{0, 1, 2});
        co_await e.wait();  // already set
        e.clear();
        CHECK_FALSE(e.is_set());
        bool timed_out = false;
        try {
            co_await wait_for(e.wait(), 10ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
    }());
}

TEST_CASE("event: a cancelled waiter leaves the queue and the others still wake") {
    run([]() -> task<> {
        event e;
        std::vector<int> order;
        auto waiters = co_await start_in_order(3, [&](int i) -> task<> {
            co_await e.wait();
            order.push_back(i);
        });
        waiters[1].cancel();
        const auto second_cancelled = co_await ends_cancelled(waiters[1]);
        CHECK(second_cancelled);
        e.set();
        co_await waiters[0];
        co_await waiters[2];
        CHECK(order == std::vector<int>{0, 2});
    }());
}

TEST_CASE("mutex: one owner at a time, handed over in FIFO order") {
    run([]() -> task<> {
        mutex m;
        std::vector<std::string> log;
        int inside = 0;
        int most = 0;
        auto holder = co_await m.lock();
        auto tasks = co_await start_in_order(4, [&](int i) -> task<> {
            auto g = co_await m.lock();
            ++inside;
            most = std::max(most, inside);
            log.push_back("in " + std::to_string(i));
            co_await sleep(1ms);
            log.push_back("out " + std::to_string(i));
            --inside;
        });
        CHECK(log.empty());
        CHECK_FALSE(m.try_lock());
        holder.unlock();
        for (auto& t : tasks) co_await t;
        CHECK(most == 1);
        CHECK(log == std::vector<std::string>{"in 0", "out 0", "in 1", "out 1", "in 2", "out 2", "in 3", "out 3"});
        CHECK_FALSE(m.locked());
    }());
}

TEST_CASE("mutex: a cancelled waiter never gets the lock and never loses it") {
    run([]() -> task<> {
        mutex m;
        std::vector<int> got;
        auto holder = co_await m.lock();
        auto tasks = co_await start_in_order(3, [&](int i) -> task<> {
            auto g = co_await m.lock();
            got.push_back(i);
        });
        tasks[0].cancel();
        const auto first_cancelled = co_await ends_cancelled(tasks[0]);
        CHECK(first_cancelled);
        holder.unlock();
        co_await tasks[1];
        co_await tasks[2];
        CHECK(got == std::vector<int>{1, 2});
        CHECK_FALSE(m.locked());
        // A waiter cancelled after the lock was handed to it, before it resumed, gives it
        // on to the next waiter and ends cancelled without entering the section.
        auto h2 = co_await m.lock();
        auto late = spawn([&]() -> task<> {
            auto g = co_await m.lock();
            got.push_back(99);
        });
        auto next = spawn([&]() -> task<> {
            auto g = co_await m.lock();
            got.push_back(100);
        });
        co_await yield();
        h2.unlock();  // ownership passes to `late`
        late.cancel();
        const auto late_cancelled = co_await ends_cancelled(late);
        CHECK(late_cancelled);
        co_await next;
        CHECK(got == std::vector<int>{1, 2, 100});
        CHECK_FALSE(m.locked());
    }());
}

TEST_CASE("mutex and semaphore: no barging, a released unit belongs to the oldest waiter") {
    // The releasing task, and a task that was not waiting, both try again before the woken
    // waiter has run: neither may get ahead of it (asyncio.Lock's fairness, trio's too).
    run([]() -> task<> {
        mutex m;
        std::vector<std::string> order;
        auto holder = co_await m.lock();
        auto waiter = spawn([&]() -> task<> {
            auto g = co_await m.lock();
            order.push_back("waiter");
        });
        co_await yield();                        // the waiter is queued
        auto newcomer = spawn([&]() -> task<> {  // its first step runs before the waiter resumes
            auto g = co_await m.lock();
            order.push_back("newcomer");
        });
        holder.unlock();
        CHECK(m.locked());          // handed over, not free
        CHECK_FALSE(m.try_lock());  // the releaser cannot take it back
        auto again = co_await m.lock();
        order.push_back("releaser");
        again.unlock();
        co_await waiter;
        co_await newcomer;
        CHECK(order == std::vector<std::string>{"waiter", "releaser", "newcomer"});  // queued in that order

        semaphore sem(1);
        std::vector<std::string> sem_order;
        auto unit = co_await sem.acquire();
        auto sem_waiter = spawn([&]() -> task<> {
            auto p = co_await sem.acquire();
            sem_order.push_back("waiter");
        });
        co_await yield();
        unit.release();
        CHECK(sem.available() == 0);
        auto barged = sem.try_acquire();
        CHECK_FALSE(barged.owns());
        auto mine = co_await sem.acquire();
        sem_order.push_back("releaser");
        mine.release();
        co_await sem_waiter;
        CHECK(sem_order == std::vector<std::string>{"waiter", "releaser"});
        CHECK(sem.available() == 1);
    }());
}

TEST_CASE("semaphore: limits concurrency, FIFO, and a cancelled waiter takes no unit") {
    run([]() -> task<> {
        semaphore sem(2);
        int inside = 0;
        int most = 0;
        std::vector<int> order;
        auto tasks = co_await start_in_order(6, [&](int i) -> task<> {
            auto permit = co_await sem.acquire();
            order.push_back(i);
            ++inside;
            most = std::max(most, inside);
            co_await sleep(2ms);
            --inside;
        });
        tasks[4].cancel();
        const auto fifth_cancelled = co_await ends_cancelled(tasks[4]);
        CHECK(fifth_cancelled);
        for (std::size_t i = 0; i < tasks.size(); ++i)
            if (i != 4) co_await tasks[i];
        CHECK(most == 2);
        CHECK(order == std::vector<int>{0, 1, 2, 3, 5});
        CHECK(sem.available() == 2);
        auto p = sem.try_acquire();
        CHECK(p.owns());
        CHECK(sem.available() == 1);
        p.release();
        CHECK(sem.available() == 2);
    }());
}

TEST_CASE("condition_variable: notify_one wakes the oldest, notify_all the rest, with the mutex held") {
    run([]() -> task<> {
        mutex m;
        condition_variable cv;
        int ready = 0;
        std::vector<int> woke;
        // wakeups[i]: how many times waiter i came back from a wait (the predicate runs once
        // before the first wait, then once after each wake-up). A notify_one that woke more
        // than one waiter shows here even when the predicate sends the others back to sleep.
        std::vector<int> wakeups(4, 0);
        std::vector<int> checks(4, 0);
        auto tasks = co_await start_in_order(4, [&](int i) -> task<> {
            auto g = co_await m.lock();
            co_await cv.wait(g, [&] {
                CHECK(m.locked());
                if (checks[i]++ > 0) ++wakeups[i];
                return ready > 0;
            });
            CHECK(m.locked());
            --ready;
            woke.push_back(i);
        });
        // Every waiter has had the time to come back (and wait again) if it was woken.
        auto settle = []() -> task<> {
            for (int i = 0; i < 20; ++i) co_await yield();
        };
        co_await settle();
        CHECK(checks == std::vector<int>{1, 1, 1, 1});
        CHECK(wakeups == std::vector<int>{0, 0, 0, 0});
        {
            auto g = co_await m.lock();
            ready = 1;
            cv.notify_one();
        }
        co_await tasks[0];
        co_await settle();
        CHECK(woke == std::vector<int>{0});
        CHECK(wakeups == std::vector<int>{1, 0, 0, 0});
        {
            auto g = co_await m.lock();
            ready = 1;
            cv.notify_one();
        }
        co_await tasks[1];
        co_await settle();
        CHECK(woke == std::vector<int>{0, 1});
        CHECK(wakeups == std::vector<int>{1, 1, 0, 0});
        CHECK_FALSE(tasks[2].done());
        CHECK_FALSE(tasks[3].done());
        {
            auto g = co_await m.lock();
            ready = 2;
            cv.notify_all();
        }
        co_await tasks[2];
        co_await tasks[3];
        CHECK(woke == std::vector<int>{0, 1, 2, 3});
        CHECK(wakeups == std::vector<int>{1, 1, 1, 1});
        CHECK(ready == 0);
        CHECK_FALSE(m.locked());
    }());
}

TEST_CASE("condition_variable: a cancelled wait takes the mutex back before it throws") {
    run([]() -> task<> {
        mutex m;
        condition_variable cv;
        bool held_when_cancelled = false;
        auto waiter = spawn([&]() -> task<> {
            auto g = co_await m.lock();
            try {
                co_await cv.wait(g);
            } catch (const cancelled_error&) {
                held_when_cancelled = g.owns_lock() && m.locked();
                throw;
            }
        });
        co_await yield();
        auto g = co_await m.lock();  // the waiter released it inside wait()
        waiter.cancel();
        co_await yield();
        CHECK_FALSE(waiter.done());  // it needs the mutex we hold
        g.unlock();
        bool cancelled = co_await ends_cancelled(waiter);
        CHECK(cancelled);
        CHECK(held_when_cancelled);
        CHECK_FALSE(m.locked());
    }());
}

TEST_CASE("queue: bounded push waits, pop waits, items keep their order") {
    run([]() -> task<> {
        queue<int> q(2);
        std::vector<int> popped;
        auto producer = spawn([&]() -> task<> {
            for (int i = 0; i < 10; ++i) co_await q.push(i);
            q.close();
        });
        co_await yield();
        CHECK(q.size() == 2);  // the producer waits on a full queue
        CHECK(q.full());
        auto consumer = spawn([&]() -> task<> {
            while (std::optional<int> v = co_await q.pop()) {
                popped.push_back(*v);
                CHECK(q.size() <= 2);
            }
        });
        co_await producer;
        co_await consumer;
        CHECK(popped == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    }());
}

TEST_CASE("queue: close wakes both sides, and a waiting push learns its value was not taken") {
    run([]() -> task<> {
        queue<std::string> q(1);
        co_await q.push("kept");
        auto pusher = spawn([&]() -> task<> { co_await q.push("refused"); });
        co_await yield();
        q.close();
        std::error_code code;
        try {
            co_await pusher;
        } catch (const std::system_error& e) {
            code = e.code();
        }
        CHECK(code == io_errc::closed);
        std::optional<std::string> first = co_await q.pop();
        std::optional<std::string> second = co_await q.pop();
        CHECK(first == std::optional<std::string>("kept"));
        CHECK_FALSE(second.has_value());
        bool refused = false;
        try {
            co_await q.push("late");
        } catch (const std::system_error&) {
            refused = true;
        }
        CHECK(refused);

        queue<int> empty(4);
        auto popper = spawn([&]() -> task<std::optional<int>> { co_return co_await empty.pop(); });
        co_await yield();
        empty.close();
        const auto popped = co_await popper;
        CHECK_FALSE(popped.has_value());
    }());
}

TEST_CASE("queue: cancelled waiters leave cleanly on both sides") {
    run([]() -> task<> {
        queue<int> q(1);
        co_await q.push(1);
        auto pushers = co_await start_in_order(3, [&](int i) -> task<> { co_await q.push(10 + i); });
        pushers[1].cancel();
        const auto pusher_cancelled = co_await ends_cancelled(pushers[1]);
        CHECK(pusher_cancelled);
        std::vector<int> got;
        for (int i = 0; i < 3; ++i) got.push_back(*co_await q.pop());
        co_await pushers[0];
        co_await pushers[2];
        CHECK(got == std::vector<int>{1, 10, 12});  // 11 was never queued
        CHECK(q.empty());

        auto poppers = co_await start_in_order(3, [&](int i) -> task<> {
            auto v = co_await q.pop();
            CHECK(v == std::optional<int>(100 + (i == 0 ? 0 : 1)));
        });
        poppers[1].cancel();
        const auto popper_cancelled = co_await ends_cancelled(poppers[1]);
        CHECK(popper_cancelled);
        co_await q.push(100);
        co_await q.push(101);
        co_await poppers[0];
        co_await poppers[2];
        CHECK(q.empty());
    }());
}

TEST_CASE("primitives destroyed with tasks still waiting do not crash the shutdown") {
    test::reports seen;
    int started = 0;
    int resumed = 0;    // a wait that returned as if the primitive had delivered
    int cancelled = 0;  // a wait that ended with cancelled_error
    int destroyed = 0;  // frames destroyed
    struct on_destroy {
        int* count;
        ~on_destroy() { ++*count; }
    };
    run(
        [&]() -> task<> {
            auto e = std::make_unique<event>();
            auto q = std::make_unique<queue<int>>(1);
            spawn([&e, &started, &resumed, &cancelled, &destroyed]() -> task<> {
                on_destroy d{&destroyed};
                ++started;
                try {
                    co_await e->wait();
                    ++resumed;
                } catch (const cancelled_error&) {
                    ++cancelled;
                    throw;
                }
            });
            spawn([&q, &started, &resumed, &cancelled, &destroyed]() -> task<> {
                on_destroy d{&destroyed};
                ++started;
                try {
                    auto v = co_await q->pop();
                    ++resumed;
                    (void)v;
                } catch (const cancelled_error&) {
                    ++cancelled;
                    throw;
                }
            });
            co_await yield();
            CHECK(started == 2);
            e.reset();
            q.reset();
            co_await yield();
            CHECK(resumed == 0);  // destroying a primitive wakes nobody
            CHECK(cancelled == 0);
            // run() ends with both tasks still suspended: the loop cancels them.
        }(),
        seen.options());
    CHECK(started == 2);
    CHECK(resumed == 0);
    CHECK(cancelled == 2);      // each left its wait by cancellation, touching no freed list
    CHECK(destroyed == 2);      // and its frame was destroyed
    CHECK(seen.items.empty());  // a cancellation is not an error to report
}
