#include <catch2/catch.hpp>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
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

namespace {

// Runs body in a forked child in which `signo` starts afresh: default action (which ends
// the process), not blocked, nothing pending. body returns 0 when all went as it should,
// else a code saying which step failed. The child's fate, as text: "exit 0" is a pass.
std::string in_child(int signo, int (*body)()) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) return "fork failed";
    if (pid == 0) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigemptyset(&dfl.sa_mask);
        ::sigaction(signo, &dfl, nullptr);
        sigset_t set;
        ::sigemptyset(&set);
        ::sigaddset(&set, signo);
        ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
        int code = 100;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
            code = 101;
        } catch (...) {
            code = 102;
        }
        ::_exit(code);  // not the parent's atexit work (its pool threads are not here)
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

int raise_between_the_call_and_the_wait() {
    return corio::run([]() -> task<int> {
        auto waiting = corio::signal(SIGUSR2);  // not awaited yet: the task has not started
        ::raise(SIGUSR2);                       // its default action ends the process
        const int got = co_await wait_for(std::move(waiting), 5s);
        co_return got == SIGUSR2 ? 0 : 1;
    }());
}

int raise_between_two_waits() {
    return corio::run([]() -> task<int> {
        auto first = spawn(corio::signal(SIGUSR2));
        co_await yield();
        ::raise(SIGUSR2);
        const int a = co_await wait_for(std::move(first), 5s);
        if (a != SIGUSR2) co_return 1;
        ::raise(SIGUSR2);  // no wait in progress, and none started yet
        co_await yield();
        auto second = corio::signal(SIGUSR2);
        const int b = co_await wait_for(std::move(second), 5s);
        co_return b == SIGUSR2 ? 0 : 2;
    }());
}

}  // namespace

TEST_CASE("signal: the call blocks the signal at once, so one raised before the task is awaited is kept") {
    // No block_signals: signal() alone must keep SIGUSR2 from ending the (child) process.
    CHECK(in_child(SIGUSR2, &raise_between_the_call_and_the_wait) == "exit 0");
}

TEST_CASE("signal: the block lasts, so one raised between two waits is kept for the second") {
    CHECK(in_child(SIGUSR2, &raise_between_two_waits) == "exit 0");
}

TEST_CASE("signal: every wait in progress receives the signal, and only those that want it") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto a = spawn(corio::signal(SIGUSR1));
        auto b = spawn(corio::signal(SIGUSR1));
        auto both = spawn(corio::signal(SIGUSR2, SIGUSR1));
        auto other = spawn(corio::signal(SIGUSR2));
        co_await yield();
        CHECK_FALSE(a.done());
        CHECK_FALSE(b.done());
        ::raise(SIGUSR1);  // once
        const int got_a = co_await wait_for(a, 5s);
        const int got_b = co_await wait_for(b, 5s);
        const int got_both = co_await wait_for(both, 5s);
        CHECK(got_a == SIGUSR1);
        CHECK(got_b == SIGUSR1);
        CHECK(got_both == SIGUSR1);
        CHECK_FALSE(other.done());
        ::raise(SIGUSR2);
        const int got_other = co_await wait_for(other, 5s);
        CHECK(got_other == SIGUSR2);
    }());
    CHECK(fd_count() == fds);
}

TEST_CASE("signal: a signal no wait wants any more is left pending for a later wait") {
    run([]() -> task<> {
        auto usr2 = spawn(corio::signal(SIGUSR2));  // the first: it waits on the fd
        co_await yield();
        auto gone = spawn(corio::signal(SIGUSR1));  // the fd now wakes for SIGUSR1 too
        co_await yield();
        gone.cancel();
        const bool cancelled = co_await ends_cancelled(gone);
        CHECK(cancelled);
        ::raise(SIGUSR1);  // nobody wants it now
        // The loop goes idle once, so the fd's wakeup for SIGUSR1 is seen and handled.
        co_await sleep(1ms);
        auto usr1 = corio::signal(SIGUSR1);
        const int got = co_await wait_for(std::move(usr1), 5s);
        CHECK(got == SIGUSR1);
        CHECK_FALSE(usr2.done());
        usr2.cancel();
        const bool cancelled2 = co_await ends_cancelled(usr2);
        CHECK(cancelled2);
    }());
}

TEST_CASE("signal: when the wait that reads the fd is cancelled, the others still receive") {
    const int fds = fd_count();
    run([]() -> task<> {
        auto first = spawn(corio::signal(SIGUSR1));  // the first waits on the fd
        auto second = spawn(corio::signal(SIGUSR1));
        auto third = spawn(corio::signal(SIGUSR2, SIGUSR1));
        co_await yield();
        first.cancel();
        const bool cancelled = co_await ends_cancelled(first);
        CHECK(cancelled);
        ::raise(SIGUSR1);
        const int got_second = co_await wait_for(second, 5s);
        const int got_third = co_await wait_for(third, 5s);
        CHECK(got_second == SIGUSR1);
        CHECK(got_third == SIGUSR1);
    }());
    CHECK(fd_count() == fds);
}
