#include <catch2/catch.hpp>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace test;

TEST_CASE("to_thread runs off the loop thread and resumes on it") {
    const auto loop_thread = std::this_thread::get_id();
    corio::run([&]() -> corio::task<> {
        auto worker = co_await corio::to_thread([] { return std::this_thread::get_id(); });
        CHECK(worker != loop_thread);
        CHECK(std::this_thread::get_id() == loop_thread);
        int sum = co_await corio::to_thread([](int a, int b) { return a + b; }, 2, 3);
        CHECK(sum == 5);
    }());
}

TEST_CASE("an exception thrown on the pool reaches the awaiting task") {
    CHECK_THROWS_WITH(corio::run([]() -> corio::task<> {
                          co_await corio::to_thread([] { throw std::runtime_error("pool failure"); });
                      }()),
                      "pool failure");
}

namespace {

// A rendezvous of `n` jobs: each arrives and waits (at most 10 s) until all n have;
// true when they all met, which takes n threads running at once.
class rendezvous {
public:
    explicit rendezvous(std::size_t n) : n_(n) {}
    bool arrive_and_wait() {
        std::unique_lock lock(m_);
        if (++arrived_ == n_) cv_.notify_all();
        return cv_.wait_for(lock, 10s, [&] { return arrived_ >= n_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::size_t n_;
    std::size_t arrived_ = 0;
};

// Runs pool.size() (or `n`) jobs that meet at a rendezvous, so that each of the pool's
// threads runs exactly one: the ids of all its threads.
template <class Run>
corio::task<std::set<std::thread::id>> thread_ids(std::size_t n, Run run_one) {
    rendezvous meet(n);
    std::mutex m;
    std::set<std::thread::id> ids;
    std::size_t met = 0;
    std::vector<corio::task<>> jobs;
    for (std::size_t i = 0; i < n; ++i)
        jobs.push_back([](Run& run, rendezvous& r, std::mutex& mu, std::set<std::thread::id>& out,
                          std::size_t& ok) -> corio::task<> {
            co_await run([&] {
                const bool all = r.arrive_and_wait();
                std::lock_guard lock(mu);
                out.insert(std::this_thread::get_id());
                ok += all ? 1 : 0;
            });
        }(run_one, meet, m, ids, met));
    co_await corio::gather(std::move(jobs));
    CHECK(met == n);  // the n jobs ran at once
    co_return ids;
}

}  // namespace

TEST_CASE("run_in uses the given pool, whose threads run concurrently") {
    corio::thread_pool pool(4);
    const auto loop_thread = std::this_thread::get_id();
    corio::run([&]() -> corio::task<> {
        auto on_default = [](auto fn) { return corio::to_thread(std::move(fn)); };
        auto on_pool = [&pool](auto fn) { return corio::run_in(pool, std::move(fn)); };
        // The default pool's threads, every one of them.
        const std::set<std::thread::id> default_ids =
            co_await thread_ids(corio::default_thread_pool().size(), on_default);
        CHECK(default_ids.size() == corio::default_thread_pool().size());
        // Four jobs through run_in(pool) meet at once: four threads, none of them the
        // default pool's or the loop's.
        const std::set<std::thread::id> pool_ids = co_await thread_ids(4, on_pool);
        CHECK(pool_ids.size() == 4);
        for (const auto& id : pool_ids) {
            CHECK(default_ids.count(id) == 0);
            CHECK(id != loop_thread);
        }
        // Later jobs run on those same four threads.
        for (int i = 0; i < 8; ++i) {
            const auto id = co_await corio::run_in(pool, [] { return std::this_thread::get_id(); });
            CHECK(pool_ids.count(id) == 1);
        }
        CHECK(std::this_thread::get_id() == loop_thread);
    }());
}

TEST_CASE("cancelling a task whose job is still queued withdraws the job") {
    corio::thread_pool pool(1);
    std::atomic<bool> busy_started{false};
    std::atomic<bool> release{false};
    std::atomic<bool> busy_finished{false};
    std::atomic<bool> second_ran{false};
    corio::run([&]() -> corio::task<> {
        // The pool's one thread is held by `busy` until the test releases it (at most
        // 10 s, so that a broken withdraw fails instead of hanging).
        auto busy = corio::spawn(corio::run_in(pool, [&] {
            busy_started = true;
            const auto until = clock::now() + 10s;
            while (!release && clock::now() < until) std::this_thread::sleep_for(1ms);
            busy_finished = true;
            return 7;
        }));
        auto queued = corio::spawn(corio::run_in(pool, [&] { second_ran = true; }));
        while (!busy_started) co_await corio::sleep(1ms);
        CHECK(queued.cancel());
        // The cancel ends the queued task while the job ahead of it still runs: the job
        // was taken out of the queue, not left to run (or waited for).
        const bool queued_cancelled = co_await ends_cancelled(queued);
        CHECK(queued_cancelled);
        CHECK_FALSE(busy.done());
        CHECK_FALSE(busy_finished.load());
        release = true;
        const int busy_result = co_await busy;
        CHECK(busy_result == 7);  // the running job was not disturbed
        CHECK(busy_finished.load());
        CHECK_FALSE(busy.cancelled());
        // The pool's thread is free again, and the withdrawn job never ran on it.
        co_await corio::run_in(pool, [] {});
        CHECK_FALSE(second_ran.load());
    }());
    CHECK_FALSE(second_ran.load());
}

TEST_CASE("run_coroutine_threadsafe runs a coroutine on a loop from another thread") {
    std::future<int> result;
    corio::run([&]() -> corio::task<> {
        auto& loop = corio::event_loop::current();
        std::thread t([&] {
            result = corio::run_coroutine_threadsafe(loop, []() -> corio::task<int> {
                co_await corio::sleep(5ms);
                co_return 41 + 1;
            }());
        });
        t.join();
        co_await corio::sleep(50ms);
    }());
    REQUIRE(result.valid());
    CHECK(result.get() == 42);
}

namespace {

// A pool whose threads are made by a thread that blocks no signal: whatever the workers
// block, they block themselves (they do not inherit it from the test's main thread, which
// earlier tests may have left blocking SIGUSR1).
std::unique_ptr<corio::thread_pool> pool_made_unblocked(std::size_t n) {
    std::unique_ptr<corio::thread_pool> pool;
    std::thread([&] {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, nullptr);
        pool = std::make_unique<corio::thread_pool>(n);
    }).join();
    return pool;
}

// Which of these signals the calling thread blocks, as a string of 0 and 1.
std::string blocked(std::initializer_list<int> signos) {
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, nullptr, &now);
    std::string out;
    for (int s : signos) out += sigismember(&now, s) == 1 ? '1' : '0';
    return out;
}

std::atomic<int> handled_on_a_handler{0};
extern "C" void count_handled(int) { handled_on_a_handler.fetch_add(1); }

}  // namespace

TEST_CASE("pool threads block asynchronous signals but not the synchronous ones") {
    auto pool = pool_made_unblocked(2);
    corio::run([&]() -> corio::task<> {
        // Both threads: two jobs that meet at a rendezvous run on two threads at once.
        rendezvous meet(2);
        auto job = [&meet] {
            const bool met = meet.arrive_and_wait();
            return std::string(met ? "met " : "alone ") +
                   blocked({SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGPIPE}) + " " +
                   blocked({SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT});
        };
        auto one = corio::spawn(corio::run_in(*pool, job));
        auto two = corio::spawn(corio::run_in(*pool, job));
        const std::string a = co_await one;
        const std::string b = co_await two;
        CHECK(a == "met 111111111 00000");
        CHECK(b == "met 111111111 00000");
    }());
}

TEST_CASE("a signal sent to the process while every pool thread is busy reaches the loop's waiter") {
    auto pool = pool_made_unblocked(2);
    // A handler, so that a delivery to some thread that does not block SIGUSR1 is counted
    // (instead of ending the process).
    struct sigaction count {};
    count.sa_handler = &count_handled;
    sigemptyset(&count.sa_mask);
    struct sigaction before {};
    sigaction(SIGUSR1, &count, &before);
    handled_on_a_handler = 0;
    std::atomic<int> started{0};
    std::atomic<int> looked{0};
    std::atomic<bool> release{false};
    corio::run([&]() -> corio::task<> {
        corio::block_signals(SIGUSR1);  // the loop's thread, as a program that awaits it does
        // Each job, busy on its thread, sees the signal either pending for the process and
        // blocked in its own thread (it is kept for the loop), or taken by a handler on
        // some thread (the kernel found one that does not block it, and delivered it there).
        auto busy = [&] {
            ++started;
            const auto until = clock::now() + 10s;  // a broken test fails rather than hangs
            std::string seen = "nothing";
            while (clock::now() < until) {
                sigset_t pending;
                sigpending(&pending);
                if (handled_on_a_handler > 0) {
                    seen = "handled";
                    break;
                }
                if (sigismember(&pending, SIGUSR1) == 1) {
                    seen = "pending";
                    break;
                }
            }
            ++looked;
            while (!release && clock::now() < until) std::this_thread::sleep_for(1ms);
            return seen;
        };
        auto one = corio::spawn(corio::run_in(*pool, busy));
        auto two = corio::spawn(corio::run_in(*pool, busy));
        while (started < 2) co_await corio::sleep(1ms);
        ::kill(::getpid(), SIGUSR1);  // to the process: the kernel picks a thread that takes it
        while (looked < 2) co_await corio::sleep(1ms);
        // Both jobs still run: the loop's wait receives the signal meanwhile.
        int got = 0;
        try {
            auto waiting = corio::signal(SIGUSR1);
            got = co_await corio::wait_for(std::move(waiting), 5s);
        } catch (const corio::timeout_error&) {
        }
        CHECK(got == SIGUSR1);
        CHECK_FALSE(one.done());
        release = true;
        const std::string seen_one = co_await one;
        const std::string seen_two = co_await two;
        CHECK(seen_one == "pending");
        CHECK(seen_two == "pending");
    }());
    sigaction(SIGUSR1, &before, nullptr);
    CHECK(handled_on_a_handler.load() == 0);
}
