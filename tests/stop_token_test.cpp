// std::stop_token interop: cancel_on(token, aw) and current_stop_token().

#include <catch2/catch.hpp>

#include <atomic>
#include <stop_token>
#include <thread>

#include "test_util.hpp"

using namespace test;
using corio::cancelled_error;
using corio::task;

TEST_CASE("cancel_on: a stop requested from another thread cancels the work") {
    std::stop_source source;
    bool inner_cancelled = false;
    bool threw = false;
    std::thread stopper;
    corio::run([&]() -> task<> {
        stopper = std::thread([&] {
            std::this_thread::sleep_for(10ms);
            source.request_stop();
        });
        try {
            co_await corio::cancel_on(source.get_token(), [&]() -> task<> {
                try {
                    co_await corio::sleep(10s);
                } catch (const cancelled_error&) {
                    inner_cancelled = true;
                    throw;
                }
            });
        } catch (const cancelled_error&) {
            threw = true;
        }
        co_await corio::sleep(1ms);  // the awaiting task itself was not cancelled
    }());
    stopper.join();
    CHECK(inner_cancelled);
    CHECK(threw);
}

TEST_CASE("cancel_on: a token already stopped cancels at the first suspension, and an unstopped one changes nothing") {
    corio::run([]() -> task<> {
        std::stop_source stopped;
        stopped.request_stop();
        bool threw = false;
        try {
            co_await corio::cancel_on(stopped.get_token(), corio::sleep(10s));
        } catch (const cancelled_error&) {
            threw = true;
        }
        CHECK(threw);
        std::stop_source idle;
        const int v = co_await corio::cancel_on(idle.get_token(), []() -> task<int> {
            co_await corio::sleep(1ms);
            co_return 6;
        });
        CHECK(v == 6);
    }());
}

TEST_CASE("current_stop_token is requested when the task is cancelled, and a pool job polling it stops") {
    std::atomic<bool> job_saw_stop{false};
    corio::run([&]() -> task<> {
        auto t = corio::spawn([&]() -> task<> {
            std::stop_token tok = co_await corio::current_stop_token();
            CHECK_FALSE(tok.stop_requested());
            // A blocking job that polls the token; shielded so that the task waits for it.
            // A named closure: one that captures a stop_token may not be a temporary inside
            // the co_await expression (GCC 12 destroys such temporaries twice).
            auto job = [tok, &job_saw_stop] {
                const auto until = std::chrono::steady_clock::now() + 10s;
                while (!tok.stop_requested() && std::chrono::steady_clock::now() < until)
                    std::this_thread::sleep_for(1ms);
                job_saw_stop = tok.stop_requested();
            };
            co_await corio::shield(corio::to_thread(std::move(job)));
        });
        co_await corio::sleep(10ms);
        t.cancel();
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
    }());
    CHECK(job_saw_stop.load());
}

TEST_CASE("current_stop_token of a task with a cancel pending is requested at once") {
    corio::run([]() -> task<> {
        corio::future<void> t;
        bool requested = false;
        t = corio::spawn([&]() -> task<> {
            t.cancel();
            std::stop_token tok = co_await corio::current_stop_token();  // does not suspend
            requested = tok.stop_requested();
            co_await corio::yield();
        });
        const bool cancelled = co_await ends_cancelled(t);
        CHECK(cancelled);
        CHECK(requested);
    }());
}
