// The runtime under faults: a loop that ends early (its backend's wait fails), debug mode
// around tasks that end in a step, threads that outlive the loop they post to, and the
// failures that combinators do not rethrow.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.hpp"

using namespace test;
using corio::cancelled_error;
using corio::task;

namespace {

// While fault_shots is non-zero, the backend's waits fail with EIO: that many (> 0), or all (< 0).
std::atomic<int> fault_shots{0};
int fail_next_wait() {
    if (fault_shots.load() == 0) return 0;
    if (fault_shots.load() > 0) fault_shots.fetch_sub(1);
    return EIO;
}
struct wait_fault {
    wait_fault() {
        fault_shots = 0;
        corio::detail::loop_wait_fault = &fail_next_wait;
    }
    ~wait_fault() {
        corio::detail::loop_wait_fault = nullptr;
        fault_shots = 0;
    }
    wait_fault(const wait_fault&) = delete;
    wait_fault& operator=(const wait_fault&) = delete;
};

// What each waiting task saw at the loop's end.
struct ends {
    bool sleeper = false;
    bool future_waiter = false;
    bool reader = false;
    bool pool_waiter = false;
    bool cleanup_slept = false;
    std::atomic<bool> job_started{false};
    std::atomic<bool> job_finished{false};
    bool job_seen_before_cancel = false;
};

task<> sleeper(ends& e) {
    try {
        co_await corio::sleep(std::chrono::hours(1));
    } catch (const cancelled_error&) {
        e.sleeper = true;
    }
    // A cleanup that awaits: the loop's end must run it, not only deliver the cancel.
    co_await corio::sleep(1ms);
    e.cleanup_slept = true;
}

task<> future_waiter(ends& e, corio::future<int> f) {
    try {
        (void)co_await f;
    } catch (const cancelled_error&) {
        e.future_waiter = true;
    }
}

task<> reader(ends& e, int fd) {
    try {
        co_await corio::wait_readable(fd);  // a poll in the kernel on io_uring
    } catch (const cancelled_error&) {
        e.reader = true;
    }
}

task<> pool_waiter(ends& e) {
    try {
        // The job is running when the loop fails: the cancel must wait for its result,
        // which it writes into this frame.
        co_await corio::to_thread([&e] {
            e.job_started = true;
            std::this_thread::sleep_for(100ms);
            e.job_finished = true;
        });
    } catch (const cancelled_error&) {
    }
    e.job_seen_before_cancel = e.job_finished.load();
    e.pool_waiter = true;
}

}  // namespace

TEST_CASE("faults: run() left by a failing backend wait ends every started task before it rethrows") {
    wait_fault fault;
    ends e;
    pipe_pair pipe;
    std::optional<corio::promise<int>> outside;
    std::string error;
    try {
        corio::run([&]() -> task<> {
            outside.emplace();
            auto a = corio::spawn(sleeper(e));
            auto b = corio::spawn(future_waiter(e, outside->get_future()));
            auto c = corio::spawn(reader(e, pipe.rd));
            auto d = corio::spawn(pool_waiter(e));
            // Every task has started, and the pool job runs.
            while (!e.job_started) co_await corio::sleep(1ms);
            fault_shots = 1;  // the loop's next wait in the kernel fails
            co_await corio::sleep(std::chrono::hours(1));
        }());
    } catch (const std::system_error& x) {
        error = x.what();
        CHECK(x.code().value() == EIO);
    }
    CHECK(error.find("backend wait") != std::string::npos);
    CHECK(e.sleeper);
    CHECK(e.cleanup_slept);
    CHECK(e.future_waiter);
    CHECK(e.reader);
    CHECK(e.pool_waiter);
    CHECK(e.job_seen_before_cancel);
    // The promise outlives its loop: completing it now touches nothing that was freed.
    outside->set_value(7);
    outside.reset();
}

TEST_CASE("faults: a loop whose backend keeps failing leaks its started tasks instead of freeing them") {
    // The frames are leaked on purpose, so the case runs in a child, which leaves with _exit
    // (no leak check at exit); the parent checks what the child saw.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        wait_fault fault;
        ends e;
        std::vector<std::string> said;
        corio::loop_options o;
        o.exception_handler = [&](const corio::exception_context& c) { said.push_back(c.message); };
        int code = 0;
        {
            corio::event_loop loop(o);
            try {
                loop.run([&]() -> task<> {
                    auto a = corio::spawn(sleeper(e));
                    co_await corio::yield();
                    fault_shots = -1;  // every wait fails from now on
                    co_await corio::sleep(std::chrono::hours(1));
                }());
                code = 10;  // run() must not return normally
            } catch (const std::system_error&) {
            }
        }  // the destructor cannot run the tasks either: it must leak, not free under the timer heap
        bool leaked_said = false;
        for (auto& m : said) leaked_said = leaked_said || m.find("leaked") != std::string::npos;
        if (!leaked_said) code = 11;
        // The cancel reached the sleeper (no wait needed), but its cleanup's sleep could not end.
        if (!e.sleeper) code = 12;
        if (e.cleanup_slept) code = 13;
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("faults: debug mode names a fire-and-forget task that ends in its step without reading it after") {
    reports r;
    auto o = r.options(true);
    o.slow_step = std::chrono::nanoseconds(0);  // every step is reported
    corio::run(
        []() -> task<> {
            for (int i = 0; i < 20; ++i) {
                // The future is dropped at once: the task's state goes with its only step.
                (void)corio::spawn([]() -> task<> { co_return; }(), corio::spawn_options{"quick"});
            }
            co_await corio::sleep(5ms);
        }(),
        o);
    std::size_t quick = 0;
    for (auto& c : r.items) quick += c.kind == corio::report_kind::slow_step && c.task_name == "quick" ? 1 : 0;
    CHECK(quick == 20);
}

namespace {
std::atomic<int> live_values{0};
struct counted {
    int v = 0;
    explicit counted(int x) : v(x) { ++live_values; }
    counted(counted&& o) noexcept : v(o.v) { ++live_values; }
    counted& operator=(counted&&) = default;
    ~counted() { --live_values; }
};
}  // namespace

TEST_CASE("faults: a promise completed from another thread while its loop shuts down") {
    // The loop's shutdown writes each future state's loop pointer; a promise completed on
    // another thread at the same moment must not read it (ThreadSanitizer sees the race),
    // and whether the value gets in before the door closes or not, the state is freed
    // once, on the loop's thread (LeakSanitizer sees a state left behind).
    for (int round = 0; round < 50; ++round) {
        std::optional<corio::promise<counted>> p;
        std::atomic<bool> go{false};
        std::thread setter;
        corio::run([&]() -> task<> {
            p.emplace();
            auto f = p->get_future();
            setter = std::thread([&] {
                while (!go.load()) std::this_thread::yield();
                p->set_value(round);
            });
            go = true;
            co_return;  // the loop ends while the other thread delivers
        }());
        setter.join();
        p.reset();
    }
    CHECK(live_values == 0);
}

TEST_CASE("faults: a loop_handle held by another thread refuses work once the loop has gone") {
    corio::loop_handle h;
    std::atomic<int> ran{0};
    corio::run([&]() -> task<> {
        h = corio::event_loop::current().handle();
        CHECK_FALSE(h.closed());
        std::thread t([&] { h.call_soon_threadsafe([&] { ++ran; }); });
        t.join();
        while (ran.load() == 0) co_await corio::sleep(1ms);
    }());
    CHECK(ran == 1);
    CHECK(h.closed());
    std::string what;
    std::thread late([&] {
        try {
            h.call_soon_threadsafe([&] { ++ran; });
        } catch (const corio::usage_error& e) {
            what = e.what();
        }
    });
    late.join();
    CHECK(what.find("the event loop has closed") != std::string::npos);
    CHECK(ran == 1);
    CHECK_THROWS_AS(corio::loop_handle{}.call_soon_threadsafe([] {}), corio::usage_error);
}

TEST_CASE("faults: loop_handle::stop from another thread ends run()") {
    std::thread t;
    bool cancelled = false;
    auto body = [&]() -> task<> {
        auto h = corio::event_loop::current().handle();
        t = std::thread([h] { h.stop(); });
        try {
            co_await corio::sleep(std::chrono::hours(1));
        } catch (const cancelled_error&) {
            cancelled = true;
            throw;
        }
    };
    // A stopped run() rethrows the main task's cancel. (The coroutine is made outside the
    // macro: GCC 12 miscompiles a co_await inside a macro argument.)
    auto main_task = body();
    CHECK_THROWS_AS(corio::run(std::move(main_task)), cancelled_error);
    t.join();
    CHECK(cancelled);
}

TEST_CASE("faults: when_any reports a loser that fails in its cleanup instead of dropping it") {
    reports r;
    int winner = -1;
    corio::run(
        [&]() -> task<> {
            auto fast = []() -> task<int> {
                co_await corio::yield();
                co_return 1;
            };
            auto slow = []() -> task<int> {
                bool cancelled = false;
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    cancelled = true;
                }
                if (cancelled) throw std::runtime_error("loser, in cleanup");
                co_return 2;
            };
            auto v = co_await corio::when_any(fast(), slow());
            winner = static_cast<int>(v.index());
        }(),
        r.options());
    CHECK(winner == 0);
    REQUIRE(r.items.size() == 1);
    CHECK(message_of(r.items[0].exception) == "loser, in cleanup");
}

TEST_CASE("faults: gather of a range reports every failure it does not rethrow") {
    reports r;
    std::string rethrown;
    corio::run(
        [&]() -> task<> {
            std::vector<task<int>> work;
            work.push_back([]() -> task<int> {
                co_await corio::yield();
                throw std::runtime_error("first");
            }());
            for (int i = 0; i < 3; ++i) {
                work.push_back([](int i) -> task<int> {
                    bool cancelled = false;
                    try {
                        co_await corio::sleep(10s);
                    } catch (const cancelled_error&) {
                        cancelled = true;
                    }
                    if (cancelled) throw std::runtime_error("later " + std::to_string(i));
                    co_return i;
                }(i));
            }
            try {
                (void)co_await corio::gather(std::move(work));
            } catch (const std::runtime_error& e) {
                rethrown = e.what();
            }
        }(),
        r.options());
    CHECK(rethrown == "first");
    std::vector<std::string> reported;
    for (auto& c : r.items) reported.push_back(message_of(c.exception));
    std::sort(reported.begin(), reported.end());
    CHECK(reported == std::vector<std::string>{"later 0", "later 1", "later 2"});
}

TEST_CASE("faults: a stream closed from another thread ends its pending read on the loop's thread") {
    const int fds = fd_count();
    std::string what;
    bool timed_out = false;
    corio::run([&]() -> task<> {
        namespace net = corio::net;
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        auto s = co_await l.accept();
        auto reader = [&]() -> task<> {
            std::array<char, 16> buf{};
            try {
                (void)co_await c.read_some(buf);
            } catch (const std::system_error& e) {
                what = e.what();
            }
        };
        auto reading = corio::spawn(reader);
        while (corio::event_loop::current().io().in_flight() == 0) co_await corio::yield();
        // The backend's fd tables belong to the loop's thread: a close from elsewhere must
        // go there (ThreadSanitizer sees it if it does not).
        std::thread closer([&] { c.close(); });
        try {
            co_await corio::wait_for(reading, 5s);
        } catch (const corio::timeout_error&) {
            timed_out = true;
        }
        closer.join();
    }());
    CHECK_FALSE(timed_out);
    CHECK(what.find("read_some: the socket was closed") != std::string::npos);
    CHECK(fd_count() == fds);
}

TEST_CASE("faults: run_coroutine_threadsafe through a loop_handle runs while the loop lives, and is refused after") {
    corio::loop_handle h;
    std::future<int> during;
    corio::run([&]() -> task<> {
        h = corio::event_loop::current().handle();
        std::thread t([&] {
            during = corio::run_coroutine_threadsafe(h, []() -> task<int> {
                co_await corio::yield();
                co_return 42;
            });
        });
        t.join();
        while (during.wait_for(0s) != std::future_status::ready) co_await corio::sleep(1ms);
    }());
    CHECK(during.get() == 42);
    std::string what;
    std::thread late([&] {
        try {
            (void)corio::run_coroutine_threadsafe(h, []() -> task<int> { co_return 1; });
        } catch (const corio::usage_error& e) {
            what = e.what();
        }
    });
    late.join();
    CHECK(what.find("the event loop has closed") != std::string::npos);
}

TEST_CASE("faults: a listener closed with its accept pending frees its endpoint at once") {
    std::string what;
    bool rebound = false;
    corio::run([&]() -> task<> {
        namespace net = corio::net;
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        const auto ep = l.local_endpoint();
        auto accepter = [&]() -> task<> {
            try {
                (void)co_await l.accept();
            } catch (const std::system_error& e) {
                what = e.what();
            }
        };
        auto accepting = corio::spawn(accepter);
        while (corio::event_loop::current().io().in_flight() == 0) co_await corio::yield();
        l.close();
        // No await in between: on io_uring the accept's completion has not been reaped yet.
        auto again = net::tcp_listener::bind(ep);
        rebound = again.is_open();
        co_await corio::wait_for(accepting, 5s);
        // The new listener takes connections.
        auto c = co_await net::tcp_stream::connect(ep);
        auto s = co_await again.accept();
        CHECK(s.is_open());
    }());
    CHECK(rebound);
    CHECK(what.find("accept: the socket was closed") != std::string::npos);
}

TEST_CASE("faults: a foreign fd's pending wait does not hold the close of the socket that takes its number") {
    bool peer_saw_end = false;
    bool number_reused = false;
    corio::run([&]() -> task<> {
        namespace net = corio::net;
        auto l = net::tcp_listener::bind(net::endpoint::loopback(0));
        {
            // Sockets opened and closed: the backend's fd table now covers the numbers
            // the pipe below gets.
            std::vector<net::tcp_listener> more;
            for (int i = 0; i < 4; ++i) more.push_back(net::tcp_listener::bind(net::endpoint::loopback(0)));
        }
        int p[2] = {-1, -1};
        REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
        auto waiter = [&]() -> task<> {
            try {
                co_await corio::wait_for(corio::wait_readable(p[0]), 10s);
            } catch (...) {
            }
        };
        auto waiting = corio::spawn(waiter);
        co_await corio::sleep(1ms);  // the poll is in the kernel
        const int number = p[0];
        ::close(p[0]);  // closed under its wait, which nobody cancels
        auto c = co_await net::tcp_stream::connect(l.local_endpoint());
        auto s = co_await l.accept();
        number_reused = c.native_handle() == number || s.native_handle() == number;
        net::tcp_stream& holder = c.native_handle() == number ? c : s;
        net::tcp_stream& peer = c.native_handle() == number ? s : c;
        holder.close();
        std::array<char, 8> buf{};
        try {
            const std::size_t n = co_await corio::wait_for(peer.read_some(buf), 5s);
            peer_saw_end = n == 0;
        } catch (const corio::timeout_error&) {
        }
        ::close(p[1]);  // the old pipe's file hangs up: its wait ends
        co_await waiting;
    }());
    REQUIRE(number_reused);
    CHECK(peer_saw_end);
}
