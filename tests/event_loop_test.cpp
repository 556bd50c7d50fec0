#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "test_util.hpp"

using namespace test;

namespace {

// Sets an environment variable for one test, and puts the old value back.
struct scoped_env {
    std::string name;
    std::string old;
    bool had;
    scoped_env(const char* n, const char* value) : name(n) {
        const char* o = std::getenv(n);
        had = o != nullptr;
        if (had) old = o;
        ::setenv(n, value, 1);
    }
    ~scoped_env() {
        if (had)
            ::setenv(name.c_str(), old.c_str(), 1);
        else
            ::unsetenv(name.c_str());
    }
};

// Catches what is written to fd 2 (the default exception handler's stderr) until
// text() is called, then puts the real stderr back.
struct stderr_capture {
    std::FILE* file = std::tmpfile();
    int saved = -1;
    stderr_capture() {
        REQUIRE(file != nullptr);
        std::fflush(stderr);
        saved = ::dup(2);
        REQUIRE(saved >= 0);
        REQUIRE(::dup2(::fileno(file), 2) == 2);
    }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;
    std::string text() {
        restore();
        std::string out;
        std::rewind(file);
        char buf[512];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file)) > 0;) out.append(buf, n);
        return out;
    }
    void restore() {
        if (saved < 0) return;
        std::fflush(stderr);
        ::dup2(saved, 2);
        ::close(saved);
        saved = -1;
    }
    ~stderr_capture() {
        restore();
        std::fclose(file);
    }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// A pipe whose ends are closed at the end of the test; both ends non-blocking. It may be
/// made on another thread, where Catch's assertions must not be used: it throws instead.
struct test_pipe {
    int fds[2] = {-1, -1};
    test_pipe() {
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
    }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
    ~test_pipe() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
};

/// What a loop must still do on whichever backend setup it got: a timer fires (not
/// early), and a read through the backend gets bytes that a timer callback writes.
corio::task<std::string> sleep_and_read_a_pipe() {
    const auto t0 = clock::now();
    co_await corio::sleep(2ms);
    const bool slept = clock::now() - t0 >= 2ms;
    test_pipe p;
    const int wfd = p.fds[1];
    corio::event_loop::current().call_later(1ms, [wfd] { (void)::write(wfd, "pipe!", 5); });
    char buf[16] = {};
    corio::detail::transfer_awaiter op(corio::detail::io_kind::read, p.fds[0], buf, sizeof buf, "pipe read");
    const std::size_t n = co_await op;
    co_return std::string(slept ? "slept, " : "woke early, ") + std::string(buf, n);
}

/// The CPU time this thread has used (user and kernel).
std::chrono::nanoseconds thread_cpu_time() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

struct sleep_stats {
    int early = 0;                      // sleeps that returned before their deadline
    std::chrono::nanoseconds asked{0};  // the total asked for
    std::chrono::nanoseconds cpu{0};    // the loop thread's CPU time meanwhile
};

/// Many short sleeps, most of them under a millisecond, each checked against its own
/// deadline on the steady clock. A busy neighbour (a task that only yields) makes the
/// loop look at its timers on every turn instead of only when the backend wakes it.
corio::task<sleep_stats> many_short_sleeps(bool busy_neighbour = false) {
    const std::chrono::microseconds lengths[] = {200us, 500us, 800us, 1500us};
    bool done = false;
    corio::future<void> neighbour;
    if (busy_neighbour)
        neighbour = corio::spawn([&done]() -> corio::task<> {
            while (!done) co_await corio::yield();
        });
    sleep_stats st;
    const auto cpu0 = thread_cpu_time();
    for (int i = 0; i < 200; ++i) {
        const auto d = lengths[i % 4];
        const auto deadline = clock::now() + d;
        co_await corio::sleep(d);
        if (clock::now() < deadline) ++st.early;
        st.asked += d;
    }
    st.cpu = thread_cpu_time() - cpu0;
    done = true;
    if (busy_neighbour) co_await neighbour;
    co_return st;
}

#if CORIO_HAS_IO_URING
// The flag sets the io_uring backend tries, newest first.
constexpr unsigned single_issuer = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
constexpr unsigned coop_taskrun = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;

// The setup hook's state: it records each attempt and refuses, with refusal_errno, the
// flag sets that contain a refused flag (and the plain set if refuse_plain).
std::vector<unsigned> setup_attempts;
unsigned refused_flags = 0;
bool refuse_plain = false;
int refusal_errno = EINVAL;

int refuse_setup(unsigned flags) {
    setup_attempts.push_back(flags);
    const bool refused = flags == 0U ? refuse_plain : (flags & refused_flags) != 0U;
    return refused ? refusal_errno : 0;
}

struct setup_hook {
    setup_hook(unsigned refuse, bool plain_too = false, int e = EINVAL) {
        setup_attempts.clear();
        refused_flags = refuse;
        refuse_plain = plain_too;
        refusal_errno = e;
        corio::detail::uring_setup_fault = &refuse_setup;
    }
    setup_hook(const setup_hook&) = delete;
    setup_hook& operator=(const setup_hook&) = delete;
    ~setup_hook() { corio::detail::uring_setup_fault = nullptr; }
};

corio::loop_options forced_io_uring(reports& r) {
    corio::loop_options o = r.options(/*debug=*/true);
    o.backend = corio::backend_kind::io_uring;
    return o;
}

unsigned setup_flags_of(corio::event_loop& loop) {
    return static_cast<corio::detail::uring_backend&>(loop.io()).setup_flags();
}
#endif

// The errno the epoll_pwait2 hook fails with.
int pwait2_errno = ENOSYS;

}  // namespace

TEST_CASE("the loop runs on the backend CORIO_BACKEND names") {
    corio::event_loop loop;
    CHECK(loop.backend() == expected_backend());
}

TEST_CASE("a CORIO_BACKEND that names no backend is a clear error") {
    scoped_env env("CORIO_BACKEND", "bogus");
    try {
        corio::event_loop loop;
        FAIL("constructing the loop should have thrown");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EINVAL);
        CHECK(std::string(e.what()).find("CORIO_BACKEND='bogus'") != std::string::npos);
    }
}

TEST_CASE("an explicitly requested backend is used whatever CORIO_BACKEND says") {
    scoped_env env("CORIO_BACKEND", "io_uring");
    corio::loop_options o;
    o.backend = corio::backend_kind::epoll;
    corio::event_loop loop(o);
    CHECK(loop.backend() == corio::backend_kind::epoll);
}

#if CORIO_HAS_IO_URING
TEST_CASE("when io_uring setup fails, a forced io_uring is a clear error and automatic falls back to epoll") {
    corio::detail::uring_setup_fault = [](unsigned) { return EPERM; };
    struct restore {
        ~restore() { corio::detail::uring_setup_fault = nullptr; }
    } guard;

    corio::loop_options forced;
    forced.backend = corio::backend_kind::io_uring;
    try {
        corio::event_loop loop(forced);
        FAIL("a forced io_uring backend that cannot start must throw");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EPERM);
        CHECK(std::string(e.what()).find("io_uring") != std::string::npos);
        CHECK(std::string(e.what()).find("forbidden") != std::string::npos);
    }

    scoped_env env("CORIO_BACKEND", "automatic");
    reports r;
    corio::event_loop loop(r.options(/*debug=*/true));
    CHECK(loop.backend() == corio::backend_kind::epoll);
    REQUIRE(r.count(corio::report_kind::backend_info) == 1);
    CHECK(r.items[0].message.find("falling back to epoll") != std::string::npos);
    // And the fallback loop works.
    CHECK(loop.run([]() -> corio::task<int> {
        co_await corio::sleep(1ms);
        co_return 3;
    }()) == 3);
}

TEST_CASE("io_uring setup tries SINGLE_ISSUER first and uses the first flag set the kernel accepts") {
    setup_hook hook(0);
    reports r;
    corio::event_loop loop(forced_io_uring(r));
    REQUIRE(!setup_attempts.empty());
    CHECK(setup_attempts.front() == single_issuer);
    CHECK(setup_flags_of(loop) == setup_attempts.back());  // the last attempt is the one that worked
    REQUIRE(r.count(corio::report_kind::backend_info) == 1);
    CHECK(contains(r.items[0].message, "io_uring"));
    CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
}

TEST_CASE("a kernel that refuses SINGLE_ISSUER gets a COOP_TASKRUN ring, and debug mode says so") {
    setup_hook hook(IORING_SETUP_SINGLE_ISSUER);
    reports r;
    corio::event_loop loop(forced_io_uring(r));
    CHECK(setup_attempts == std::vector<unsigned>{single_issuer, coop_taskrun});
    CHECK(loop.backend() == corio::backend_kind::io_uring);
    CHECK(setup_flags_of(loop) == coop_taskrun);
    REQUIRE(r.count(corio::report_kind::backend_info) == 1);
    CHECK(contains(r.items[0].message, "io_uring (COOP_TASKRUN)"));
    CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
}

TEST_CASE("a kernel that refuses SINGLE_ISSUER and COOP_TASKRUN gets a plain ring that works") {
    setup_hook hook(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN);
    reports r;
    corio::event_loop loop(forced_io_uring(r));
    CHECK(setup_attempts == std::vector<unsigned>{single_issuer, coop_taskrun, 0U});
    CHECK(loop.backend() == corio::backend_kind::io_uring);
    CHECK(setup_flags_of(loop) == 0U);
    REQUIRE(r.count(corio::report_kind::backend_info) == 1);
    CHECK(contains(r.items[0].message, "uses the io_uring backend"));
    CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
}

TEST_CASE("a kernel that refuses every io_uring flag set is an error when forced and epoll when automatic") {
    setup_hook hook(~0U, /*plain_too=*/true);
    reports r;
    try {
        corio::event_loop loop(forced_io_uring(r));
        FAIL("a forced io_uring that the kernel refuses must throw");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EINVAL);
        CHECK(contains(e.what(), "refused every set of setup flags"));
    }
    CHECK(setup_attempts == std::vector<unsigned>{single_issuer, coop_taskrun, 0U});

    scoped_env env("CORIO_BACKEND", "automatic");
    corio::event_loop loop(r.options(/*debug=*/true));
    CHECK(loop.backend() == corio::backend_kind::epoll);
    CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
}

TEST_CASE("an io_uring setup failure other than EINVAL tries no other flag set") {
    setup_hook hook(~0U, /*plain_too=*/true, ENOMEM);
    reports r;
    CHECK_THROWS_AS(corio::event_loop(forced_io_uring(r)), std::system_error);
    CHECK(setup_attempts == std::vector<unsigned>{single_issuer});
}

TEST_CASE("a queue_depth above the kernel's limit is an error that names it") {
    reports r;
    corio::loop_options o = forced_io_uring(r);
    o.queue_depth = 2 * corio::detail::uring_backend::max_queue_depth;
    try {
        corio::event_loop loop(o);
        FAIL("the kernel takes at most 32768 entries");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EINVAL);
        CHECK(contains(e.what(), "queue_depth 65536 is above the kernel's limit"));
    }
}
#endif

TEST_CASE("without epoll_pwait2 the epoll backend rounds timeouts up: no sleep ends early, the loop does not spin") {
    for (const int e : {ENOSYS, EPERM}) {
        INFO("epoll_pwait2 fails with errno " << e);
        pwait2_errno = e;
        corio::detail::epoll_pwait2_fault = [] { return pwait2_errno; };
        struct restore {
            ~restore() { corio::detail::epoll_pwait2_fault = nullptr; }
        } guard;
        corio::loop_options o;
        o.backend = corio::backend_kind::epoll;
        corio::event_loop loop(o);
        auto& ep = static_cast<corio::detail::epoll_backend&>(loop.io());
        CHECK(ep.precise_timeouts());  // not known to be missing before the first timed wait
        const sleep_stats st = loop.run(many_short_sleeps());
        CHECK_FALSE(ep.precise_timeouts());
        CHECK(st.early == 0);
        // Rounded down, a sleep under 1 ms would busy-wait all through, a longer one for
        // its last fraction of a millisecond: over half of the time asked for.
        CHECK(st.cpu < st.asked / 4);
        const sleep_stats busy = loop.run(many_short_sleeps(/*busy_neighbour=*/true));
        CHECK(busy.early == 0);
        CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
    }
}

TEST_CASE("epoll_wait's millisecond timeout does not wrap around for a wait of 2 to the 32 ms") {
    corio::detail::epoll_pwait2_fault = [] { return ENOSYS; };
    struct restore {
        ~restore() { corio::detail::epoll_pwait2_fault = nullptr; }
    } guard;
    const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(wake >= 0);
    bool woke = false;
    {
        corio::detail::epoll_backend b(wake);
        // Cast to int, 2^32 + 1 ms would become a 1 ms wait: only the wakeup may end it.
        std::thread waker([wake] {
            std::this_thread::sleep_for(50ms);
            const std::uint64_t one = 1;
            (void)::write(wake, &one, sizeof one);
        });
        woke = b.wait(std::chrono::milliseconds((std::int64_t{1} << 32) + 1));
        waker.join();
        CHECK_FALSE(b.precise_timeouts());
    }
    ::close(wake);
    CHECK(woke);
}

TEST_CASE("short sleeps never end early and the loop sleeps in the kernel between them") {
    corio::event_loop loop;
    const sleep_stats st = loop.run(many_short_sleeps());
    CHECK(st.early == 0);
    CHECK(st.cpu < st.asked / 4);
    const sleep_stats busy = loop.run(many_short_sleeps(/*busy_neighbour=*/true));
    CHECK(busy.early == 0);
    if (loop.backend() == corio::backend_kind::epoll)
        CHECK(static_cast<corio::detail::epoll_backend&>(loop.io()).precise_timeouts());  // this kernel has it
}

TEST_CASE("a loop refuses to run on a thread other than the one that created it") {
    corio::event_loop loop;
    std::string refusal;
    std::thread other([&] {
        try {
            loop.run(sleep_and_read_a_pipe());
            refusal = "it ran";
        } catch (const corio::usage_error& e) {
            refusal = e.what();
        } catch (const std::exception& e) {
            refusal = std::string("another error: ") + e.what();
        }
    });
    other.join();
    CHECK(refusal == "corio: an event loop must run on the thread that created it");
    // The refused attempt left the loop untouched: on its own thread it runs.
    CHECK(loop.run(sleep_and_read_a_pipe()) == "slept, pipe!");
}

TEST_CASE("a loop created on another thread runs there and nowhere else, beside this thread's loop") {
    std::promise<corio::event_loop*> created;
    std::promise<void> tried_here;
    std::string result_there;
    std::thread other([&] {
        corio::event_loop loop;
        created.set_value(&loop);
        tried_here.get_future().wait();
        try {
            result_there = loop.run(sleep_and_read_a_pipe());
        } catch (const std::exception& e) {
            result_there = std::string("error: ") + e.what();
        }
    });
    corio::event_loop* theirs = created.get_future().get();
    CHECK_THROWS_AS(theirs->run(corio::sleep(1ms)), corio::usage_error);
    tried_here.set_value();
    // Both loops run at once, each on its own thread.
    const std::string result_here = corio::run(sleep_and_read_a_pipe());
    other.join();
    CHECK(result_here == "slept, pipe!");
    CHECK(result_there == "slept, pipe!");
}

TEST_CASE("call_soon runs callbacks in order on the next turns") {
    std::vector<int> order;
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        for (int i = 0; i < 5; ++i) loop.call_soon([&order, i] { order.push_back(i); });
        CHECK(order.empty());
        co_await corio::sleep(1ms);
    }());
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("call_soon_threadsafe from another thread runs on the loop's thread") {
    std::thread::id ran_on;
    const auto loop_thread = std::this_thread::get_id();
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        corio::promise<void> done;
        auto f = done.get_future();
        std::thread t([&] {
            loop.call_soon_threadsafe([&] {
                ran_on = std::this_thread::get_id();
                done.set_value();
            });
        });
        co_await f;
        t.join();
    }());
    CHECK(ran_on == loop_thread);
}

TEST_CASE("run cancels and drains the tasks still alive when the main task ends") {
    std::vector<std::string> trace;
    corio::run([&]() -> corio::task<> {
        corio::spawn([&]() -> corio::task<> {
            bool cancelled = false;
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                cancelled = true;
            }
            if (cancelled) {
                co_await corio::sleep(5ms);  // cleanup that awaits still runs
                trace.push_back("background cleaned up");
                throw corio::cancelled_error();
            }
        });
        co_await corio::sleep(1ms);
        trace.push_back("main done");
    }());
    CHECK(trace == std::vector<std::string>{"main done", "background cleaned up"});
}

TEST_CASE("run rethrows the main task's exception") {
    CHECK_THROWS_WITH(corio::run([]() -> corio::task<> {
                          co_await corio::sleep(1ms);
                          throw std::invalid_argument("main failed");
                      }()),
                      "main failed");
}

TEST_CASE("stop ends run with the main task cancelled") {
    bool main_cancelled = false;
    CHECK_THROWS_AS(corio::run([&]() -> corio::task<> {
                        corio::event_loop::current().call_soon([] { corio::event_loop::current().stop(); });
                        try {
                            co_await corio::sleep(10s);
                        } catch (const corio::cancelled_error&) {
                            main_cancelled = true;
                            throw;
                        }
                    }()),
                    corio::cancelled_error);
    CHECK(main_cancelled);
}

TEST_CASE("debug mode reports a step that blocks the loop, naming the task") {
    reports r;
    corio::loop_options o = r.options(/*debug=*/true);
    o.slow_step = std::chrono::milliseconds(20);
    corio::run(
        []() -> corio::task<> {
            auto f = corio::spawn(
                []() -> corio::task<> {
                    std::this_thread::sleep_for(60ms);  // blocking call inside a coroutine
                    co_return;
                }(),
                {.name = "blocker"});
            co_await f;
        }(),
        std::move(o));
    REQUIRE(r.count(corio::report_kind::slow_step) >= 1);
    bool named = false;
    for (auto& c : r.items)
        if (c.kind == corio::report_kind::slow_step && c.task_name == "blocker") named = true;
    CHECK(named);
}

TEST_CASE("tasks() lists live tasks with their names and states") {
    corio::run([]() -> corio::task<> {
        auto f = corio::spawn(corio::sleep(1s), {.name = "sleeper"});
        auto before = corio::event_loop::current().tasks();
        co_await corio::sleep(1ms);
        auto after = corio::event_loop::current().tasks();
        auto find = [](const std::vector<corio::task_info>& v, const std::string& n) -> const corio::task_info* {
            for (auto& t : v)
                if (t.name == n) return &t;
            return nullptr;
        };
        REQUIRE(find(before, "sleeper") != nullptr);
        CHECK(find(before, "sleeper")->state == "pending");
        REQUIRE(find(after, "sleeper") != nullptr);
        CHECK(find(after, "sleeper")->state == "waiting");
        REQUIRE(find(after, "main") != nullptr);
        CHECK(find(after, "main")->state == "running");
        f.cancel();
    }());
}

TEST_CASE("an exception thrown by a callback is reported, not lost") {
    reports r;
    corio::run(
        []() -> corio::task<> {
            corio::event_loop::current().call_soon([] { throw std::runtime_error("callback failed"); });
            co_await corio::sleep(1ms);
        }(),
        r.options());
    REQUIRE(r.count(corio::report_kind::callback_exception) == 1);
    CHECK_THROWS_WITH(std::rethrow_exception(r.items[0].exception), "callback failed");
}

TEST_CASE("an exception thrown by a call_later callback is reported and the loop goes on") {
    reports r;
    bool later_ran = false;
    const int v = corio::run(
        [&]() -> corio::task<int> {
            auto& loop = corio::event_loop::current();
            auto kept = loop.call_later(1ms, [] { throw std::runtime_error("timer callback failed"); });
            loop.call_later(1ms, [] { throw 42; });  // not a std::exception; the handle is dropped
            loop.call_later(2ms, [&] { later_ran = true; });
            co_await corio::sleep(5ms);
            CHECK_FALSE(kept.pending());
            co_return 7;
        }(),
        r.options());
    CHECK(v == 7);
    CHECK(later_ran);
    REQUIRE(r.count(corio::report_kind::callback_exception) == 2);
    std::vector<std::string> seen;
    for (auto& c : r.items) {
        CHECK(c.kind == corio::report_kind::callback_exception);
        CHECK(c.message == "exception in a call_later callback");
        seen.push_back(message_of(c.exception));
    }
    CHECK(seen == std::vector<std::string>{"timer callback failed", "not a std::exception"});
}

TEST_CASE("without an exception handler a failing callback is one line on stderr naming the callback and the error") {
    stderr_capture err;
    corio::run([]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        loop.call_soon([] { throw std::logic_error("soon callback failed"); });
        loop.call_later(1ms, [] { throw std::runtime_error("timer callback failed"); });
        loop.call_later(2ms, [] { throw 42; });
        std::thread t(
            [&loop] { loop.call_soon_threadsafe([] { throw std::runtime_error("remote callback failed"); }); });
        t.join();
        co_await corio::sleep(5ms);
    }());
    const std::string text = err.text();
    INFO(text);
    CHECK(contains(text, "corio: exception in a call_soon callback: soon callback failed\n"));
    CHECK(contains(text, "corio: exception in a call_later callback: timer callback failed\n"));
    CHECK(contains(text, "corio: exception in a call_later callback: unknown exception\n"));
    CHECK(contains(text, "corio: exception in a call_soon_threadsafe callback: remote callback failed\n"));
}

TEST_CASE("an exception handler that throws loses neither its own error nor the report it failed on") {
    stderr_capture err;
    corio::loop_options o;
    o.exception_handler = [](const corio::exception_context&) { throw std::runtime_error("handler broke"); };
    const int v = corio::run(
        []() -> corio::task<int> {
            corio::event_loop::current().call_later(1ms, [] { throw std::runtime_error("timer callback failed"); });
            co_await corio::sleep(3ms);
            co_return 1;
        }(),
        std::move(o));
    const std::string text = err.text();
    INFO(text);
    CHECK(v == 1);
    CHECK(contains(text, "corio: exception in a call_later callback: timer callback failed\n"));
    CHECK(contains(text, "corio: the exception handler itself threw: handler broke\n"));
}

TEST_CASE("running a loop inside a running loop is a usage error") {
    corio::run([]() -> corio::task<> {
        CHECK_THROWS_AS(corio::run(corio::sleep(1ms)), corio::usage_error);
        co_return;
    }());
    CHECK_THROWS_AS(corio::spawn(corio::sleep(1ms)), corio::usage_error);  // no loop running here
}

TEST_CASE("a loop destroyed without running frees its queued callbacks and never-started tasks") {
    auto counter = std::make_shared<int>(0);
    corio::future<int> f;
    {
        corio::event_loop loop;
        loop.call_soon([counter] { ++*counter; });
        f = loop.spawn([]() -> corio::task<int> { co_return 1; }());
        CHECK(counter.use_count() == 2);
    }
    CHECK(counter.use_count() == 1);  // the callback was destroyed, not run
    CHECK(*counter == 0);
    CHECK(f.cancelled());  // the task never ran: its future ends cancelled
}

TEST_CASE("debug mode says which backend the loop chose") {
    reports r;
    corio::event_loop loop(r.options(/*debug=*/true));
    REQUIRE(r.count(corio::report_kind::backend_info) == 1);
    const std::string& m = r.items[0].message;
    CHECK(m.find(std::string(corio::to_string(loop.backend()))) != std::string::npos);
}
