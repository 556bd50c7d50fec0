#include <catch2/catch.hpp>

#include <cerrno>
#include <memory>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

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
    corio::detail::uring_setup_fault = [] { return EPERM; };
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
#endif

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
