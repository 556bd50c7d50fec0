#include <catch2/catch.hpp>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <system_error>
#include <thread>

#include "test_util.hpp"

using namespace test;
using namespace corio;

TEST_CASE("signal: a raised signal wakes its waiter") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto waiting = spawn(corio::signal(SIGUSR1));
        co_await yield();
        CHECK_FALSE(waiting.done());
        ::raise(SIGUSR1);
        const auto got = co_await waiting;
        CHECK(got == SIGUSR1);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("signal: one of several, sent to the process from another thread") {
    run([]() -> task<> {
        auto waiting = spawn(corio::signal(SIGUSR1, SIGUSR2));
        co_await yield();
        std::thread([] {
            // This thread blocks both, as threads that are not the loop's should.
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGUSR1);
            sigaddset(&set, SIGUSR2);
            pthread_sigmask(SIG_BLOCK, &set, nullptr);
            ::kill(::getpid(), SIGUSR2);
        }).join();
        const auto got = co_await waiting;
        CHECK(got == SIGUSR2);
    }());
}

TEST_CASE("signal: block_signals keeps one that arrives before the first wait, and between waits") {
    // Each test case may run in a process of its own: nothing is blocked before this line.
    block_signals(SIGUSR1);
    ::raise(SIGUSR1);  // no wait yet: pending, not fatal
    run([]() -> task<> {
        const int first = co_await wait_for(corio::signal(SIGUSR1), 1s);
        CHECK(first == SIGUSR1);
        ::raise(SIGUSR1);  // between two waits
        const int second = co_await wait_for(corio::signal(SIGUSR1), 1s);
        CHECK(second == SIGUSR1);
    }());
}

TEST_CASE("signal: a wait is cancellable, and a bad signal number is an error") {
    const int fds = fd_count();
    run([]() -> task<> {
        bool timed_out = false;
        try {
            co_await wait_for(corio::signal(SIGUSR2), 10ms);
        } catch (const timeout_error&) {
            timed_out = true;
        }
        CHECK(timed_out);
        // The error names the operation and the signal number it was given.
        std::error_code code;
        std::string what;
        try {
            co_await corio::signal(SIGKILL);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("signal(" + std::to_string(SIGKILL) + ")"));
        code.clear();
        what.clear();
        try {
            co_await corio::signal(SIGUSR1, 12345);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        CHECK(code == std::errc::invalid_argument);
        CHECK_THAT(what, Catch::Contains("signal(12345)"));
    }());
    CHECK(fd_count() == fds);
}
