// Issue: the runtime under faults.
//
// The limits of the loop's bookkeeping: a foreign fd number the kernel hands out again
// (epoll backend), durations and time points at the ends of their range (timers, wait_for,
// cancel scopes), and withdrawing queued thread pool jobs.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <corio/corio.hpp>
#include <corio/detail/intrusive_fifo.hpp>

#include "test_util.hpp"

using namespace test;
using corio::task;

namespace {

// ---- helpers ----

/// Pokes the loop from another thread, every 100 ms once `after` has passed, until the
/// test ends: a loop that computed a wrong (overflowed) timeout would otherwise sleep in
/// the kernel forever, where no timer of the test could end it. Each poke makes the loop
/// look at its timers again, so the test's own bounds (wait_for 5 s) end a hang.
class watchdog {
public:
    explicit watchdog(corio::loop_handle loop, std::chrono::milliseconds after = 5s)
        : thread_([this, loop = std::move(loop), after] {
              std::unique_lock lock(mutex_);
              if (cv_.wait_for(lock, after, [this] { return done_; })) return;
              fired_ = true;
              do {
                  try {
                      loop.call_soon_threadsafe([] {});
                  } catch (const corio::usage_error&) {
                      return;  // the loop has ended meanwhile: nothing to wake
                  }
              } while (!cv_.wait_for(lock, 100ms, [this] { return done_; }));
          }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    [[nodiscard]] bool fired() {
        std::lock_guard lock(mutex_);
        return fired_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    bool fired_ = false;
    std::thread thread_;  // last: starts once the rest is made
};

double cpu_ms_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

template <class Duration>
task<> sleep_for(Duration d) {
    co_await corio::sleep(d);
}

template <class TimePoint>
task<> sleep_until(TimePoint tp) {
    co_await corio::sleep_until(tp);
}

/// Suspends once, then gives 42.
task<int> answer_after_a_yield() {
    co_await corio::yield();
    co_return 42;
}

/// Gives 7 without ever suspending.
task<int> answer_at_once() { co_return 7; }

template <class Duration>
task<int> answer_within(Duration d) {
    auto w = corio::wait_for(answer_after_a_yield(), d);
    co_return co_await std::move(w);
}

template <class Duration>
task<int> answer_within_scope(Duration d) {
    auto w = corio::fail_after(d, answer_after_a_yield());
    co_return co_await std::move(w);
}

/// Never ends unless cancelled.
task<int> never() {
    corio::event e;
    co_await e.wait();
    co_return 0;
}

template <class T>
bool failed_with_timeout(const corio::future<T>& f) {
    try {
        std::rethrow_exception(f.exception());
    } catch (const corio::timeout_error&) {
        return true;
    } catch (...) {
    }
    return false;
}

// Spawns a task per duration, checks that none of them has ended once a short sleep
// (the only other timer) has, then cancels them: each must end cancelled.
template <class Make>
task<> expect_pending_until_cancelled(std::vector<std::string> names, Make make) {
    std::vector<corio::future<void>> sleepers;
    for (std::size_t i = 0; i < names.size(); ++i) sleepers.push_back(corio::spawn(make(i)));
    co_await corio::sleep(20ms);
    for (std::size_t i = 0; i < names.size(); ++i) {
        INFO(names[i]);
        CHECK_FALSE(sleepers[i].done());
        sleepers[i].cancel();
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
        INFO(names[i]);
        auto settled = corio::wait_for(corio::gather_settled(sleepers[i]), 5s);
        co_await std::move(settled);
        CHECK(sleepers[i].cancelled());
    }
}

// ---- the epoll backend's fd bookkeeping ----

struct ctl_count {
    int add = 0;
    int mod = 0;
    int del = 0;
};
ctl_count ctl_calls;

int count_ctl(int op, int /*fd*/) {
    if (op == EPOLL_CTL_ADD) ++ctl_calls.add;
    if (op == EPOLL_CTL_MOD) ++ctl_calls.mod;
    if (op == EPOLL_CTL_DEL) ++ctl_calls.del;
    return 0;  // let the call through
}

// ---- intrusive_fifo with links that count how often they are followed ----

struct counted_node;

struct counted_link {
    static inline std::size_t reads = 0;
    counted_node* to = nullptr;

    counted_link& operator=(counted_node* n) noexcept {
        to = n;
        return *this;
    }
    operator counted_node*() const noexcept {  // NOLINT(google-explicit-constructor): a link reads as a pointer
        ++reads;
        return to;
    }
    counted_node* operator->() const noexcept {
        ++reads;
        return to;
    }
};

struct counted_node {
    counted_link prev;
    counted_link next;
};

}  // namespace

// ===== item 6: a reused fd number on epoll =====

TEST_CASE("limits: a foreign fd closed during a wait gives its number to a new fd whose waits work") {
    corio::run([]() -> task<> {
        pipe_pair old_pipe;
        const int number = old_pipe.rd;
        auto stale = corio::spawn(corio::wait_readable(number));
        // An idle turn of the loop: the wait is in the kernel (io_uring submits its SQEs
        // when the loop goes to wait).
        co_await corio::sleep(1ms);
        REQUIRE_FALSE(stale.done());
        // Closed behind the loop's back, while the wait is pending; the next fd takes the number.
        ::close(old_pipe.rd);
        old_pipe.rd = -1;
        pipe_pair fresh;
        fresh.move_read_end_to(number);
        REQUIRE(::write(fresh.wr, "z", 1) == 1);
        unsigned events = 0;
        try {
            auto w = corio::wait_for(corio::wait_readable(number), 5s);
            events = co_await std::move(w);
        } catch (const corio::timeout_error&) {
            FAIL("the fd that took a closed fd's number is never woken");
        }
        CHECK((events & POLLIN) != 0U);
        if (expected_backend() == corio::backend_kind::epoll) {
            // epoll dropped the old registration with the file: nothing can wake that wait
            // any more. It ends, with EBADF, as soon as the number is found to name another file.
            REQUIRE(stale.done());
            REQUIRE(stale.exception() != nullptr);
            const std::string what = message_of(stale.exception());
            CHECK(what.find("wait_readable") != std::string::npos);
            try {
                std::rethrow_exception(stale.exception());
            } catch (const std::system_error& e) {
                CHECK(e.code().value() == EBADF);
            } catch (...) {
                FAIL("not a system_error: " + what);
            }
        } else {
            // io_uring's poll holds the file it started on: the wait goes on watching it,
            // and wakes with its hang-up once the pipe's other end closes.
            CHECK_FALSE(stale.done());
            ::close(old_pipe.wr);
            old_pipe.wr = -1;
            auto settled = corio::wait_for(corio::gather_settled(stale), 5s);
            co_await std::move(settled);
            const unsigned hup = stale.result();
            CHECK((hup & POLLHUP) != 0U);
        }
        // The number goes on working, with or without data.
        char c = 0;
        CHECK(::read(number, &c, 1) == 1);
        auto silent = corio::wait_for(corio::wait_readable(number), 20ms);
        bool timed_out = false;
        try {
            (void)co_await std::move(silent);
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        REQUIRE(::write(fresh.wr, "y", 1) == 1);
        auto again = corio::wait_for(corio::wait_readable(number), 5s);
        const unsigned in = co_await std::move(again);
        CHECK((in & POLLIN) != 0U);
        CHECK(corio::event_loop::current().io().in_flight() == 0);
    }());
}

TEST_CASE("limits: a foreign fd closed between waits gives its number to a new fd whose waits work") {
    corio::run([]() -> task<> {
        for (int round = 0; round < 3; ++round) {
            INFO("round " << round);
            pipe_pair p;
            REQUIRE(::write(p.wr, "a", 1) == 1);
            auto first = corio::wait_for(corio::wait_readable(p.rd), 5s);
            const unsigned ev = co_await std::move(first);
            CHECK((ev & POLLIN) != 0U);
            const int number = p.rd;
            ::close(p.rd);
            p.rd = -1;
            pipe_pair next;
            next.move_read_end_to(number);
            auto fill = [fd = next.wr] { CHECK(::write(fd, "b", 1) == 1); };
            corio::event_loop::current().call_later(5ms, fill);
            auto second = corio::wait_for(corio::wait_readable(number), 5s);
            const unsigned ev2 = co_await std::move(second);
            CHECK((ev2 & POLLIN) != 0U);
        }
    }());
}

TEST_CASE("limits: the file of a closed foreign fd cannot wake a wait on the fd that took its number") {
    corio::run([]() -> task<> {
        pipe_pair a;
        const int number = a.rd;
        // Another fd keeps a's read end open after `number` is closed: epoll then keeps
        // any registration it had for it, and reports it under the old number.
        const int keep = ::fcntl(a.rd, F_DUPFD_CLOEXEC, 0);
        REQUIRE(keep >= 0);
        auto timed = corio::wait_for(corio::wait_readable(number), 10ms);  // registers a, then gives up
        bool timed_out = false;
        try {
            (void)co_await std::move(timed);
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        ::close(a.rd);
        a.rd = -1;
        pipe_pair b;
        b.move_read_end_to(number);
        auto w = corio::spawn(corio::wait_readable(number));
        co_await corio::sleep(1ms);  // an idle turn: the wait is in the kernel
        REQUIRE_FALSE(w.done());
        // a becomes readable: seen through `keep`, and never as `number`.
        REQUIRE(::write(a.wr, "x", 1) == 1);
        auto through_keep = corio::wait_for(corio::wait_readable(keep), 5s);
        const unsigned ev = co_await std::move(through_keep);
        CHECK((ev & POLLIN) != 0U);
        co_await corio::yield();
        co_await corio::yield();
        CHECK_FALSE(w.done());
        REQUIRE(::write(b.wr, "y", 1) == 1);
        auto settled = corio::wait_for(corio::gather_settled(w), 5s);
        co_await std::move(settled);
        REQUIRE(w.done());
        const unsigned in = w.result();
        CHECK((in & POLLIN) != 0U);
        ::close(keep);
    }());
}

TEST_CASE("limits: back-to-back waits on a foreign fd cost one epoll_ctl each, not an ADD and a DEL") {
    pipe_pair p;
    REQUIRE(::write(p.wr, "x", 1) == 1);  // readable throughout
    constexpr int waits = 100;
    ctl_calls = {};
    corio::run([&]() -> task<> {
        corio::detail::epoll_ctl_hook = &count_ctl;
        for (int i = 0; i < waits; ++i) {
            const unsigned ev = co_await corio::wait_readable(p.rd);
            CHECK((ev & POLLIN) != 0U);
        }
        corio::detail::epoll_ctl_hook = nullptr;
    }());
    corio::detail::epoll_ctl_hook = nullptr;
    INFO("ADD " << ctl_calls.add << ", MOD " << ctl_calls.mod << ", DEL " << ctl_calls.del);
    if (expected_backend() == corio::backend_kind::epoll) {
        // Registered once; each later wait re-arms the registration (and so finds out
        // whether the number still names the same file).
        CHECK(ctl_calls.add == 1);
        CHECK(ctl_calls.mod == waits - 1);
        CHECK(ctl_calls.del == 0);
    } else {
        CHECK(ctl_calls.add + ctl_calls.mod + ctl_calls.del == 0);
    }
}

TEST_CASE("limits: a reader and a writer waiting on one foreign fd are each woken by their own event") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    corio::run([&]() -> task<> {
        auto reader = corio::spawn(corio::wait_readable(sv[0]));
        co_await corio::yield();
        auto writable = corio::wait_for(corio::wait_writable(sv[0]), 5s);
        const unsigned out = co_await std::move(writable);
        CHECK((out & POLLOUT) != 0U);
        co_await corio::yield();
        CHECK_FALSE(reader.done());  // still registered for input after the output event
        REQUIRE(::write(sv[1], "r", 1) == 1);
        auto settled = corio::wait_for(corio::gather_settled(reader), 5s);
        co_await std::move(settled);
        REQUIRE(reader.done());
        const unsigned in = reader.result();
        CHECK((in & POLLIN) != 0U);
    }());
    ::close(sv[0]);
    ::close(sv[1]);
}

// ===== item 8: overflow and truncation of durations and time points =====

TEST_CASE("limits: a sleep of the longest duration of every unit sleeps until it is cancelled") {
    using namespace std::chrono;
    corio::run([]() -> task<> {
        watchdog dog(corio::event_loop::current().handle());  // a hang becomes a failure
        const std::vector<std::string> names{"nanoseconds", "microseconds",   "milliseconds", "seconds",
                                             "minutes",     "hours",          "days",         "weeks",
                                             "years",       "double s 1e300", "float s inf",  "long long hours"};
        co_await expect_pending_until_cancelled(names, [](std::size_t i) -> task<> {
            switch (i) {
                case 0:
                    return sleep_for(nanoseconds::max());
                case 1:
                    return sleep_for(microseconds::max());
                case 2:
                    return sleep_for(milliseconds::max());
                case 3:
                    return sleep_for(seconds::max());
                case 4:
                    return sleep_for(minutes::max());
                case 5:
                    return sleep_for(hours::max());
                case 6:
                    return sleep_for(days::max());
                case 7:
                    return sleep_for(weeks::max());
                case 8:
                    return sleep_for(years::max());
                case 9:
                    return sleep_for(duration<double>(1e300));
                case 10:
                    return sleep_for(duration<float>(std::numeric_limits<float>::infinity()));
                default:
                    return sleep_for(duration<long long, std::ratio<3600>>(std::numeric_limits<long long>::max() / 2));
            }
        });
    }());
}

TEST_CASE("limits: a loop whose only timer is a huge sleep waits in the kernel without spinning") {
    double cpu_ms = -1;
    bool cancelled = false;
    corio::run([&]() -> task<> {
        co_await corio::sleep(1ms);  // the loop is warm
        auto huge = corio::spawn(sleep_for(std::chrono::nanoseconds::max()));
        co_await corio::yield();
        // Cancelled from another thread after 200 ms: until then the loop has nothing
        // to do but wait for that one timer.
        const double c0 = cpu_ms_now();
        // The future stays on the loop's thread: the other thread only posts the cancel.
        std::thread poke([h = corio::event_loop::current().handle(), f = &huge] {
            std::this_thread::sleep_for(200ms);
            h.call_soon_threadsafe([f] { f->cancel(); });
        });
        auto settled = corio::wait_for(corio::gather_settled(huge), 10s);
        co_await std::move(settled);
        cpu_ms = cpu_ms_now() - c0;
        poke.join();
        cancelled = huge.cancelled();
    }());
    CHECK(cancelled);
    CHECK(cpu_ms >= 0);
    CHECK(cpu_ms < 60.0);  // a loop spinning on an expired kernel timeout burns ~200 ms
}

TEST_CASE("limits: wait_for with the longest timeout of every unit gives the value, and waits until cancelled") {
    using namespace std::chrono;
    corio::run([]() -> task<> {
        const std::vector<std::string> names{"nanoseconds", "microseconds",  "milliseconds", "seconds",
                                             "minutes",     "hours",         "days",         "weeks",
                                             "years",       "double s 1e300"};
        watchdog dog(corio::event_loop::current().handle());  // a hang becomes a failure
        auto timed = [](std::size_t i, auto work) {
            switch (i) {
                case 0:
                    return corio::wait_for(std::move(work), nanoseconds::max());
                case 1:
                    return corio::wait_for(std::move(work), microseconds::max());
                case 2:
                    return corio::wait_for(std::move(work), milliseconds::max());
                case 3:
                    return corio::wait_for(std::move(work), seconds::max());
                case 4:
                    return corio::wait_for(std::move(work), minutes::max());
                case 5:
                    return corio::wait_for(std::move(work), hours::max());
                case 6:
                    return corio::wait_for(std::move(work), days::max());
                case 7:
                    return corio::wait_for(std::move(work), weeks::max());
                case 8:
                    return corio::wait_for(std::move(work), years::max());
                default:
                    return corio::wait_for(std::move(work), duration<double>(1e300));
            }
        };
        for (std::size_t i = 0; i < names.size(); ++i) {
            INFO(names[i]);
            int v = 0;
            try {
                auto w = timed(i, answer_after_a_yield());
                v = co_await std::move(w);
            } catch (const corio::timeout_error&) {
                FAIL("timed out at once");
            }
            CHECK(v == 42);
        }
        co_await expect_pending_until_cancelled(names, [&](std::size_t i) -> task<> {
            auto w = timed(i, never());
            (void)co_await std::move(w);
        });
    }());
}

TEST_CASE("limits: sleep_until the end of time sleeps until cancelled, sleep_until its start does not") {
    using namespace std::chrono;
    using corio::detail::clock;
    corio::run([]() -> task<> {
        watchdog dog(corio::event_loop::current().handle());  // a hang becomes a failure
        const std::vector<std::string> names{"time_point::max", "hours time_point::max", "double seconds 1e300"};
        co_await expect_pending_until_cancelled(names, [](std::size_t i) -> task<> {
            switch (i) {
                case 0:
                    return sleep_until(clock::time_point::max());
                case 1:
                    return sleep_until(time_point<clock, hours>::max());
                default:
                    return sleep_until(time_point<clock, duration<double>>(duration<double>(1e300)));
            }
        });

        // The past: each wakes at the next turn of the loop.
        const auto t0 = test::clock::now();
        auto a = sleep_until(clock::time_point::min());
        co_await std::move(a);
        auto b = sleep_until(time_point<clock, hours>::min());
        co_await std::move(b);
        auto c = sleep_until(time_point<clock, duration<double>>(duration<double>(-1e300)));
        co_await std::move(c);
        auto d = sleep_until(clock::time_point{});
        co_await std::move(d);
        auto e = sleep_until(clock::now() - 1h);
        co_await std::move(e);
        CHECK_FALSE(dog.fired());
        CHECK(ms_since(t0) < 4000.0);
    }());
}

TEST_CASE("limits: a zero or negative duration is expired, the same way for every unit and every kind of wait") {
    using namespace std::chrono;
    corio::run([]() -> task<> {
        watchdog dog(corio::event_loop::current().handle());
        const auto t0 = test::clock::now();
        const std::vector<std::string> names{"0ns",        "-1ns",          "-1s", "hours::min", "nanoseconds::min",
                                             "years::min", "double -1e300", "-inf"};
        auto expired = [](std::size_t i, auto&& use) {
            switch (i) {
                case 0:
                    return use(nanoseconds(0));
                case 1:
                    return use(nanoseconds(-1));
                case 2:
                    return use(seconds(-1));
                case 3:
                    return use(hours::min());
                case 4:
                    return use(nanoseconds::min());
                case 5:
                    return use(years::min());
                case 6:
                    return use(duration<double>(-1e300));
                default:
                    return use(duration<double>(-std::numeric_limits<double>::infinity()));
            }
        };
        for (std::size_t i = 0; i < names.size(); ++i) {
            INFO(names[i]);
            // sleep: ends at the next turn.
            auto s = corio::wait_for(expired(i, [](auto d) { return sleep_for(d); }), 5s);
            co_await std::move(s);

            // wait_for: work that suspends times out; work that never suspends gives its value.
            auto suspending = corio::spawn(expired(i, [](auto d) { return answer_within(d); }));
            auto settled = corio::wait_for(corio::gather_settled(suspending), 5s);
            co_await std::move(settled);
            CHECK(failed_with_timeout(suspending));
            auto at_once = expired(i, [](auto d) { return corio::wait_for(answer_at_once(), d); });
            const int v = co_await std::move(at_once);
            CHECK(v == 7);

            // Cancel scopes: the block starts cancelled.
            auto moved_on = expired(i, [](auto d) { return corio::move_on_after(d, answer_after_a_yield()); });
            const std::optional<int> m = co_await std::move(moved_on);
            CHECK_FALSE(m.has_value());
            auto moved_at_once = expired(i, [](auto d) { return corio::move_on_after(d, answer_at_once()); });
            const std::optional<int> m2 = co_await std::move(moved_at_once);
            CHECK(m2 == std::optional<int>(7));
            auto failing = corio::spawn(expired(i, [](auto d) { return answer_within_scope(d); }));
            auto settled2 = corio::wait_for(corio::gather_settled(failing), 5s);
            co_await std::move(settled2);
            CHECK(failed_with_timeout(failing));
        }
        CHECK_FALSE(dog.fired());
        CHECK(ms_since(t0) < 4000.0);
    }());
}

TEST_CASE("limits: cancel scopes with the longest deadline of every unit never expire") {
    using namespace std::chrono;
    corio::run([]() -> task<> {
        watchdog dog(corio::event_loop::current().handle());  // a hang becomes a failure
        const std::vector<std::string> names{"nanoseconds", "microseconds",  "milliseconds", "seconds",
                                             "minutes",     "hours",         "days",         "weeks",
                                             "years",       "double s 1e300"};
        auto longest = [](std::size_t i, auto&& use) {
            switch (i) {
                case 0:
                    return use(nanoseconds::max());
                case 1:
                    return use(microseconds::max());
                case 2:
                    return use(milliseconds::max());
                case 3:
                    return use(seconds::max());
                case 4:
                    return use(minutes::max());
                case 5:
                    return use(hours::max());
                case 6:
                    return use(days::max());
                case 7:
                    return use(weeks::max());
                case 8:
                    return use(years::max());
                default:
                    return use(duration<double>(1e300));
            }
        };
        for (std::size_t i = 0; i < names.size(); ++i) {
            INFO(names[i]);
            auto moved_on = longest(i, [](auto d) { return corio::move_on_after(d, answer_after_a_yield()); });
            const std::optional<int> m = co_await std::move(moved_on);
            CHECK(m == std::optional<int>(42));
            int v = 0;
            try {
                auto failing = longest(i, [](auto d) { return corio::fail_after(d, answer_after_a_yield()); });
                v = co_await std::move(failing);
            } catch (const corio::timeout_error&) {
                FAIL("fail_after timed out at once");
            }
            CHECK(v == 42);
        }
        co_await expect_pending_until_cancelled(names, [&](std::size_t i) -> task<> {
            auto scoped = longest(i, [](auto d) { return corio::fail_after(d, never()); });
            (void)co_await std::move(scoped);
        });
    }());
}

// ===== item 12: withdrawing queued thread pool jobs =====

TEST_CASE("limits: pool jobs withdrawn from the head, middle and tail leave the rest in FIFO order, each run once") {
    corio::thread_pool pool(1);
    std::atomic<bool> busy_started{false};
    std::atomic<bool> release{false};
    std::mutex m;
    std::vector<int> ran;
    corio::run([&]() -> task<> {
        // The pool's one thread is held until the jobs behind it have been withdrawn (at
        // most 10 s, so that a broken withdraw fails instead of hanging).
        auto busy = corio::spawn(corio::run_in(pool, [&] {
            busy_started = true;
            const auto until = clock::now() + 10s;
            while (!release && clock::now() < until) std::this_thread::sleep_for(1ms);
        }));
        std::vector<corio::future<void>> jobs;
        for (int i = 0; i < 10; ++i) {
            jobs.push_back(corio::spawn(corio::run_in(pool, [&m, &ran, i] {
                std::lock_guard lock(m);
                ran.push_back(i);
            })));
        }
        while (!busy_started) co_await corio::sleep(1ms);
        // Every job is queued now (each task submitted its job at its first step). Head,
        // middle, tail, then the new head and tail.
        for (int k : {0, 5, 9, 1, 8}) {
            INFO("job " << k);
            CHECK(jobs[static_cast<std::size_t>(k)].cancel());
            const bool cancelled = co_await ends_cancelled(jobs[static_cast<std::size_t>(k)]);
            CHECK(cancelled);
        }
        CHECK_FALSE(busy.done());  // withdrawn from the queue, not run or waited for
        release = true;
        co_await busy;
        for (int k : {2, 3, 4, 6, 7}) co_await jobs[static_cast<std::size_t>(k)];
        // A job that has run cannot be withdrawn.
        CHECK_FALSE(jobs[2].cancel());
        // The queue still works, from empty.
        co_await corio::run_in(pool, [&] {
            std::lock_guard lock(m);
            ran.push_back(100);
        });
    }());
    std::lock_guard lock(m);
    CHECK(ran == std::vector<int>{2, 3, 4, 6, 7, 100});
}

TEST_CASE("limits: intrusive_fifo tells whether a node is queued without walking the list") {
    constexpr std::size_t n = 1000;
    std::vector<counted_node> nodes(n + 1);  // the last is never queued
    corio::detail::intrusive_fifo<counted_node> fifo;
    for (std::size_t i = 0; i < n; ++i) fifo.push_back(&nodes[i]);
    auto reads_for = [&](std::size_t i) {
        counted_link::reads = 0;
        const bool in = fifo.contains(&nodes[i]);
        return std::make_pair(in, counted_link::reads);
    };
    for (std::size_t i : {std::size_t{0}, n / 2, n - 1, n}) {
        INFO("node " << i);
        const auto [in, reads] = reads_for(i);
        CHECK(in == (i < n));
        CHECK(reads <= 2);  // a walk from the head follows up to n links
    }
    fifo.remove(&nodes[n / 2]);
    fifo.remove(&nodes[0]);
    fifo.remove(&nodes[n - 1]);
    for (std::size_t i : {std::size_t{0}, n / 2, n - 1}) {
        INFO("removed node " << i);
        const auto [in, reads] = reads_for(i);
        CHECK_FALSE(in);
        CHECK(reads <= 2);
    }
    CHECK(fifo.contains(&nodes[1]));      // the new head
    CHECK(fifo.contains(&nodes[n - 2]));  // the new tail
    std::size_t count = 0;
    std::size_t expect = 1;
    while (counted_node* x = fifo.pop_front()) {
        if (expect == n / 2) ++expect;
        CHECK(x == &nodes[expect]);
        ++expect;
        ++count;
    }
    CHECK(count == n - 3);
    CHECK_FALSE(fifo.contains(&nodes[1]));
}

// call_later computed now + delay: nanoseconds::max() overflowed and ran the callback at
// once, and hours::max() overflowed already in the conversion to nanoseconds.
TEST_CASE("limits: call_later with the longest delay never runs, one with a negative delay runs next") {
    bool longest_ran = false;
    bool negative_ran = false;
    corio::run([&]() -> task<> {
        watchdog dog(corio::event_loop::current().handle());  // a hang becomes a failure
        auto& loop = corio::event_loop::current();
        corio::timer_handle longest = loop.call_later(std::chrono::nanoseconds::max(), [&] { longest_ran = true; });
        corio::timer_handle negative = loop.call_later(std::chrono::nanoseconds::min(), [&] { negative_ran = true; });
        corio::timer_handle hours = loop.call_later(std::chrono::hours::max(), [&] { longest_ran = true; });
        co_await corio::sleep(20ms);
        CHECK(negative_ran);
        CHECK_FALSE(longest_ran);
        CHECK(longest.cancel());
        CHECK(hours.cancel());
        CHECK_FALSE(dog.fired());
    }());
    CHECK_FALSE(longest_ran);
}
