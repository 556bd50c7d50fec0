#pragma once
/// @file
/// Threads: thread_pool, to_thread, run_in, run_coroutine_threadsafe. A pool job lives
/// in the awaiting frame; the worker posts its completion through the loop's
/// cross-thread queue, so the awaiting coroutine always resumes on its own loop.

#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <pthread.h>

#include <corio/detail/intrusive_fifo.hpp>
#include <corio/detail/remote_queue.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/event_loop.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

struct pool_job {
    pool_job* next = nullptr;
    pool_job* prev = nullptr;
    void (*run)(pool_job*) noexcept = nullptr;
};

}  // namespace detail

/// Worker threads for blocking work. Jobs start in the order they were queued; the awaiting
/// task resumes on its own loop. to_thread() uses a default pool; a pool of your own
/// bounds a kind of work (run_in).
/// @code
/// corio::thread_pool disk(2);
/// std::string text = co_await corio::run_in(disk, [] { return read_whole_file("big.log"); });
/// @endcode
class thread_pool {
public:
    /// Starts `threads` workers (0 counts as 1), with asynchronous signals blocked in them.
    explicit thread_pool(std::size_t threads = default_size()) {
        if (threads == 0) threads = 1;
        workers_.reserve(threads);
        // Asynchronous signals are for the loop's thread (corio::signal): a worker that
        // took a SIGINT would run its default action and end the process. A thread starts
        // with its creator's mask, so the workers are made with them all blocked: none is
        // ever without the block, not even for its first instructions.
        sigset_t async_signals;
        ::sigfillset(&async_signals);
        for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) ::sigdelset(&async_signals, s);
        sigset_t caller_mask;
        ::pthread_sigmask(SIG_BLOCK, &async_signals, &caller_mask);
        try {
            for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
        } catch (...) {
            ::pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
            stop_and_join();  // the threads already made
            throw;
        }
        ::pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    /// Runs what is queued, then joins the threads.
    ~thread_pool() { stop_and_join(); }

    /// The number of worker threads.
    [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }

    /// One per hardware thread (at least one).
    static std::size_t default_size() noexcept {
        const unsigned n = std::thread::hardware_concurrency();
        return n == 0 ? 1 : n;
    }

    /// Awaitable: runs fn(args...) on a worker; resumes the awaiting task on its loop.
    template <class F, class... Args>
    auto run(F&& fn, Args&&... args);

    /// Jobs (corio's own awaitables use these).
    void submit(detail::pool_job* job) {
        {
            std::lock_guard lock(mutex_);
            queue_.push_back(job);
        }
        cv_.notify_one();
    }

    /// Takes a job back if no worker has started it. True when withdrawn. O(1) (the job's
    /// own links tell whether it is queued), so cancelling n queued jobs costs O(n).
    /// The job must have been submitted to this pool.
    bool withdraw(detail::pool_job* job) noexcept {
        std::lock_guard lock(mutex_);
        if (!queue_.contains(job)) return false;  // a worker has it
        queue_.remove(job);
        return true;
    }

private:
    void stop_and_join() noexcept {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }

    void work() {
        for (;;) {
            detail::pool_job* job = nullptr;
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
                job = queue_.pop_front();
                if (job == nullptr) return;  // stopping, and nothing left to run
            }
            job->run(job);
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    detail::intrusive_fifo<detail::pool_job> queue_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

namespace detail {

template <class F, class... Args>
class [[nodiscard]] pool_awaiter : pool_job, remote_item {
public:
    using result_type = std::invoke_result_t<F&, Args&...>;

    template <class G, class... A>
    pool_awaiter(thread_pool& pool, G&& fn, A&&... args)
        : pool_(&pool), fn_(static_cast<G&&>(fn)), args_(static_cast<A&&>(args)...) {
        pool_job::run = &run_on_worker;
        remote_item::fn = &resume_on_loop;
    }
    // Movable until awaited (spawn(run_in(...)) moves it into a frame).
    pool_awaiter(pool_awaiter&& o) noexcept(std::is_nothrow_move_constructible_v<std::tuple<F, Args...>>)
        : pool_(o.pool_), fn_(std::move(o.fn_)), args_(std::move(o.args_)) {
        CORIO_ASSERT(!o.wait_.handle);
        pool_job::run = &run_on_worker;
        remote_item::fn = &resume_on_loop;
    }
    pool_awaiter& operator=(pool_awaiter&&) = delete;

    static bool await_ready() noexcept { return false; }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!wait_.begin(h)) return false;
        pool_->submit(this);
        wait_.arm(&on_cancel, this);  // the completion reaches the loop only after we return
        return true;
    }

    result_type await_resume() {
        wait_.throw_if_cancelled();
        if (error_) std::rethrow_exception(error_);
        if constexpr (!std::is_void_v<result_type>) return std::move(*result_);
    }

private:
    static void run_on_worker(pool_job* job) noexcept {
        auto* me = static_cast<pool_awaiter*>(job);
        try {
            if constexpr (std::is_void_v<result_type>)
                std::apply(me->fn_, me->args_);
            else
                me->result_.emplace(std::apply(me->fn_, me->args_));
        } catch (...) {
            me->error_ = std::current_exception();
        }
        // The loop is running: it waits for this very job before it can finish (and its
        // remote queue's close() waits for this push to have woken it).
        me->wait_.loop->remote().push(me);
    }

    static void resume_on_loop(remote_item* item, bool) noexcept {
        auto* me = static_cast<pool_awaiter*>(item);
        me->wait_.wake(me);
    }

    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<pool_awaiter*>(self);
        // A job that has started cannot be stopped: it finishes, its result wins and
        // the cancel waits for the next suspension point.
        if (me->pool_->withdraw(me)) me->wait_.wake_cancelled();
    }

    thread_pool* pool_;
    F fn_;
    std::tuple<Args...> args_;
    std::optional<std::conditional_t<std::is_void_v<result_type>, char, std::remove_cvref_t<result_type>>> result_;
    std::exception_ptr error_;
    suspension wait_;
};

// The std::promise of run_coroutine_threadsafe. Satisfied by the bridge below; if the
// bridge never ran (cancelled before its first step at loop shutdown), its destruction
// fails the std::future with cancelled_error rather than broken_promise.
template <class T>
struct std_promise_guard {
    std::promise<T> p;
    bool satisfied = false;
    explicit std_promise_guard(std::promise<T> pr) noexcept : p(std::move(pr)) {}
    std_promise_guard(std_promise_guard&& o) noexcept
        : p(std::move(o.p)), satisfied(std::exchange(o.satisfied, true)) {}
    std_promise_guard& operator=(std_promise_guard&&) = delete;
    ~std_promise_guard() {
        if (!satisfied) p.set_exception(std::make_exception_ptr(cancelled_error()));
    }
};

template <class T>
task<void> bridge_to_std_promise(task<T> t, std_promise_guard<T> g) {
    try {
        if constexpr (std::is_void_v<T>) {
            co_await std::move(t);
            g.p.set_value();
        } else {
            g.p.set_value(co_await std::move(t));
        }
    } catch (...) {
        g.p.set_exception(std::current_exception());
    }
    g.satisfied = true;
}

}  // namespace detail

template <class F, class... Args>
auto thread_pool::run(F&& fn, Args&&... args) {
    return detail::pool_awaiter<std::decay_t<F>, std::decay_t<Args>...>(*this, static_cast<F&&>(fn),
                                                                        static_cast<Args&&>(args)...);
}

/// The pool behind to_thread: one thread per hardware thread, made on first use.
inline thread_pool& default_thread_pool() {
    static thread_pool pool;
    return pool;
}

/// Awaitable: fn(args...) on the default pool (asyncio.to_thread).
/// The loop goes on running other tasks meanwhile; fn's exception is rethrown.
/// @code
/// int d = co_await corio::to_thread([] { return 6 * 7; });  // CPU work off the loop
/// @endcode
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
    return default_thread_pool().run(static_cast<F&&>(fn), static_cast<Args&&>(args)...);
}

/// Awaitable: fn(args...) on the given pool.
template <class F, class... Args>
auto run_in(thread_pool& pool, F&& fn, Args&&... args) {
    return pool.run(static_cast<F&&>(fn), static_cast<Args&&>(args)...);
}

/// From any thread: runs the awaitable as a task on the loop; the std::future gets its
/// result (or exception, or cancelled_error if the loop cancels it, or ends before it ran).
/// Throws usage_error when the loop has closed already.
template <class Awaitable>
auto run_coroutine_threadsafe(const loop_handle& loop, Awaitable&& a) {
    using T = detail::await_result_t<detail::task_for_t<Awaitable>>;
    std::promise<T> p;
    std::future<T> f = p.get_future();
    // The guard travels with the work: if the loop drops it unrun, the future learns so.
    loop.call_soon_threadsafe(
        [t = detail::make_task(static_cast<Awaitable&&>(a)), g = detail::std_promise_guard<T>(std::move(p))]() mutable {
            event_loop::current().spawn(detail::bridge_to_std_promise<T>(std::move(t), std::move(g)),
                                        spawn_options{"run_coroutine_threadsafe"});
        });
    return f;
}

/// The same, for a loop that the caller knows is alive for the duration of the call.
template <class Awaitable>
auto run_coroutine_threadsafe(event_loop& loop, Awaitable&& a) {
    return run_coroutine_threadsafe(loop.handle(), static_cast<Awaitable&&>(a));
}

}  // namespace corio
