#pragma once
/// @file
/// event_loop: one per thread. Owns the ready queue, the timer heap, the backend and
/// the door for other threads. One turn: run what is ready; take what other threads
/// sent; fire due timers; then wait in the backend until the nearest deadline or an
/// event (never longer, never busy).

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <corio/backend/backend.hpp>
#include <corio/backend/epoll.hpp>
#include <corio/backend/uring.hpp>
#include <corio/config.hpp>
#include <corio/detail/awaitable_traits.hpp>
#include <corio/detail/frame_pool.hpp>
#include <corio/detail/ready_queue.hpp>
#include <corio/detail/remote_queue.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/detail/timer_wheel.hpp>
#include <corio/errors.hpp>
#include <corio/task.hpp>

namespace corio {

/// @cond CORIO_INTERNAL
template <class T>
class future;
class event_loop;
/// @endcond

/// Options of spawn. Trivially destructible on purpose: GCC 12 destroys class temporaries
/// inside a co_await expression twice, and `co_await spawn(t, {.name = "x"})` is common.
/// The name is copied by spawn, so it only needs to live for the call.
struct spawn_options {
    /// The task's name, shown by event_loop::tasks() and in reports; left empty, the task
    /// is called "task-N" (N counts the loop's tasks).
    std::string_view name;
};

/// What the loop reports to its exception handler.
enum class report_kind : std::uint8_t {
    unretrieved_exception,  ///< a task or future failed and nobody looked at its exception
    callback_exception,     ///< a call_soon / call_later / done callback threw
    slow_step,              ///< debug: a step ran longer than slow_step without suspending
    backend_info,           ///< debug: which backend was chosen, and why
    borrowed_closure,       ///< debug: a spawned lambda coroutine's captures live outside the task
};

/// One report to the loop's exception handler (loop_options::exception_handler).
struct exception_context {
    /// What happened.
    report_kind kind = report_kind::unretrieved_exception;
    /// What happened, in words; the default handler prints it before the exception's text.
    std::string message;
    std::exception_ptr exception;       ///< null for slow_step and backend_info
    std::string task_name;              ///< empty when not about a task
    corio::source_location location{};  ///< where the task was spawned, when known
};

/// How a loop is set up: event_loop's constructor and corio::run take these.
/// @code
/// corio::run(amain(), {.backend = corio::backend_kind::epoll, .debug = true});
/// @endcode
struct loop_options {
    backend_kind backend = backend_kind::automatic;  ///< CORIO_BACKEND overrides automatic
    /// Entries of the io_uring submission queue (0: 256); epoll ignores it.
    unsigned queue_depth = 256;
    /// io_uring: the buffers of the receive pool that multishot stream reads fill (a power
    /// of two; 0: every read is a plain recv), mapped at the first stream read. Unused on
    /// epoll.
    unsigned recv_buffers = 256;
    /// io_uring: the size in bytes of each receive-pool buffer.
    unsigned recv_buffer_size = 4096;
    /// io_uring: writes of at least this many bytes go as zero-copy sends (Linux 6.0), which
    /// complete once the kernel has let go of the caller's buffer; 0: never. Off by default:
    /// see the README's backend section for where it pays.
    std::size_t zero_copy_send = 0;
    /// io_uring: with operations in flight, a wait collects up to 64 completions for up to
    /// this long before the loop runs them (min-wait, Linux 6.12): fewer io_uring_enter calls
    /// under load, at up to this much added latency. 0: a wait returns at the first one.
    std::chrono::microseconds batch_wait{0};
    /// Debug mode: reports steps slower than slow_step, and which backend was chosen.
    bool debug = false;
    /// In debug mode, a step that runs this long without suspending is reported.
    std::chrono::nanoseconds slow_step = std::chrono::milliseconds(100);
    std::function<void(const exception_context&)> exception_handler;  ///< default: one line on stderr
};

/// A live task as event_loop::tasks() lists it.
struct task_info {
    /// Its name (spawn_options::name, else "task-N").
    std::string name;
    std::string state;  ///< "pending", "running", "waiting"
    /// Where it was spawned.
    corio::source_location location{};
};

namespace detail {

inline thread_local event_loop* current_loop_ = nullptr;
inline event_loop* current_loop() noexcept { return current_loop_; }

/// Test hook for a backend that fails: when set, it is called before each wait in the
/// backend; a non-zero return is the errno that wait throws with (as a failing
/// io_uring_enter or epoll_wait would), without asking the kernel.
inline int (*loop_wait_fault)() = nullptr;

/// A spawned task as the loop sees it: listed in tasks(), cancelled at shutdown. The loop
/// finds its live tasks among its loop_bound states (a spawned task's future state is one),
/// so a task carries no list links of its own, and no vtable beside its state's.
struct live_task : task_node {
    live_task* group_prev_ = nullptr;  // siblings in a task_group
    live_task* group_next_ = nullptr;
    corio::source_location where_{};
    std::unique_ptr<const std::string> name_;  // only when one was given
    std::uint64_t id_ = 0;                     // a task without a name is called "task-<id>"

protected:
    ~live_task() = default;
};

/// Any state that must be told when the loop goes away (futures, promises).
struct loop_bound {
    loop_bound* bound_prev_ = nullptr;
    loop_bound* bound_next_ = nullptr;
    virtual void loop_closing() noexcept = 0;
    /// The spawned task this state belongs to, if it is a task's (live while not finished_).
    virtual live_task* as_task() noexcept { return nullptr; }
    /// Destroys a task that never got to run (the loop is destroyed without running).
    virtual void abandon_task() noexcept {}

protected:
    ~loop_bound() = default;
};

/// @cond CORIO_INTERNAL
// Declared with task_node (task_node.hpp), defined here, where live_task is known.
inline std::string task_node::describe() const {
    for (const task_node* n = this; n != nullptr; n = n->parent_) {
        if (!n->is_task_) continue;
        const auto* t = static_cast<const live_task*>(n);
        if (t->name_ != nullptr) return *t->name_;
        return "task-" + std::to_string(t->id_);  // made only when asked
    }
    return "<unnamed task>";
}
/// @endcond

inline void format_default_report(const exception_context& ctx) noexcept {
    std::string line = "corio: " + ctx.message;
    if (!ctx.task_name.empty()) line += " [task '" + ctx.task_name + "'";
    if (ctx.location.line() != 0) {
        line += ctx.task_name.empty() ? " [" : ", ";
        line += std::string("spawned at ") + ctx.location.file_name() + ":" + std::to_string(ctx.location.line());
    }
    if (!ctx.task_name.empty() || ctx.location.line() != 0) line += "]";
    if (ctx.exception) {
        try {
            std::rethrow_exception(ctx.exception);
        } catch (const std::exception& e) {
            line += ": ";
            line += e.what();
        } catch (const cancelled_error& e) {
            line += ": ";
            line += e.what();
        } catch (...) {
            line += ": unknown exception";
        }
    }
    line += '\n';
    std::fputs(line.c_str(), stderr);
}

}  // namespace detail

/// A loop as other threads may hold it: unlike an event_loop&, it stays valid after the
/// loop has gone, and then refuses work with a usage_error instead of touching freed
/// memory. Copyable and cheap (a shared pointer); get one with event_loop::handle().
class loop_handle {
public:
    loop_handle() = default;

    /// Runs fn on the loop's thread. Any thread. Throws usage_error once the loop has
    /// closed (or for an empty handle): the work is refused, never silently dropped.
    template <class F>
    void call_soon_threadsafe(F&& fn) const;

    /// Asks the loop to stop (event_loop::stop, from any thread). Throws as above.
    void stop() const;

    /// True once the loop has been destroyed (or for an empty handle).
    [[nodiscard]] bool closed() const noexcept { return remote_ == nullptr || remote_->is_closed(); }

private:
    friend class event_loop;
    loop_handle(event_loop* l, std::shared_ptr<detail::remote_queue> q) noexcept : loop_(l), remote_(std::move(q)) {}
    event_loop* loop_ = nullptr;  // dereferenced only by work running on the loop's thread
    std::shared_ptr<detail::remote_queue> remote_;
};

/// Returned by call_later: cancels the callback while it has not run.
class timer_handle {
public:
    timer_handle() = default;
    /// Takes over o's callback: cancel() on this handle now reaches it.
    timer_handle(timer_handle&& o) noexcept;
    /// Lets go of this handle's callback (which still runs), then takes over o's.
    timer_handle& operator=(timer_handle&& o) noexcept;
    timer_handle(const timer_handle&) = delete;
    timer_handle& operator=(const timer_handle&) = delete;
    /// Lets go of the callback: it still runs when due.
    ~timer_handle();
    /// True if the callback was still pending and will now never run.
    bool cancel() noexcept;
    /// True while the callback has neither run nor been cancelled.
    [[nodiscard]] bool pending() const noexcept { return entry_ != nullptr; }

private:
    friend class event_loop;
    struct callback_timer;
    template <class F>
    struct callback_timer_for;
    callback_timer* entry_ = nullptr;
};

/// A single-threaded event loop: it runs tasks, timers and callbacks, and waits for I/O in
/// its backend (io_uring or epoll). One loop per thread, run on the thread that created it.
/// Most programs use corio::run(), which makes one; an event_loop of your own is for
/// options, call_soon / call_later, or running it in steps.
/// @code
/// corio::event_loop loop({.debug = true});
/// loop.call_later(std::chrono::seconds(1), [] { std::puts("a second later"); });
/// int v = loop.run(amain());  // amain() returns corio::task<int>
/// @endcode
class event_loop {
public:
    /// Creates the loop and its backend: backend_kind::automatic takes io_uring where it can
    /// be set up, else epoll; the CORIO_BACKEND environment variable overrides automatic.
    explicit event_loop(loop_options options = {})
        : options_(std::move(options)),
          owner_(std::this_thread::get_id()),
          remote_(std::make_shared<detail::remote_queue>()) {
        backend_ = make_backend();
#if CORIO_HAS_IO_URING
        if (backend_->kind() == backend_kind::io_uring) uring_ = static_cast<detail::uring_backend*>(backend_.get());
#endif
    }
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;
    ~event_loop() {
        end_started_tasks();
        // Tasks spawned but never run: destroy their frames, their futures end cancelled.
        for (detail::loop_bound* b = bound_head_; b != nullptr;) {
            detail::loop_bound* next = b->bound_next_;  // b may be freed by its abandon
            if (const detail::live_task* t = b->as_task(); t != nullptr && !t->finished_) b->abandon_task();
            b = next;
        }
        discard_timers();
        while (bound_head_ != nullptr) {
            detail::loop_bound* b = bound_head_;
            unbind(b);
            b->loop_closing();
        }
        remote_->close();
        destroy_zombies();
        discard_ready();
    }

    /// Runs the awaitable to completion (asyncio.run): then cancels and drains every task
    /// still alive, and returns the awaitable's result or rethrows its exception.
    template <class Awaitable>
    auto run(Awaitable&& awaitable, corio::source_location where = corio::source_location::current())
        -> detail::await_result_t<detail::task_for_t<Awaitable>>;

    /// Schedules the awaitable as a task of its own (asyncio create_task). The loop keeps
    /// it alive until it ends, whatever happens to the returned future.
    template <class Awaitable>
    auto spawn(Awaitable&& awaitable, spawn_options options,
               corio::source_location where = corio::source_location::current())
        -> future<detail::await_result_t<detail::task_for_t<Awaitable>>>;
    /// Without options (a separate overload: GCC 12 miscompiles a defaulted spawn_options
    /// temporary inside a co_await expression, as in `co_await spawn(t)`).
    template <class Awaitable>
    auto spawn(Awaitable&& awaitable, corio::source_location where = corio::source_location::current())
        -> future<detail::await_result_t<detail::task_for_t<Awaitable>>> {
        return spawn(static_cast<Awaitable&&>(awaitable), spawn_options{}, where);
    }

    /// Runs fn on the loop thread at the next turn. Loop thread only. A callable of a
    /// pointer's size that is trivially copyable (`[this] { ... }`) is kept in the ready
    /// queue itself: no allocation.
    template <class F>
    void call_soon(F&& fn) {
        using D = std::decay_t<F>;
        if constexpr (fits_work_item<D>) {
            detail::work_item w{&run_inline<D>, nullptr, nullptr};
            const D f(static_cast<F&&>(fn));
            std::memcpy(static_cast<void*>(&w.arg), &f, sizeof(D));
            ready_.push(w);
        } else {
            schedule_callback(make_callback(static_cast<F&&>(fn)));
        }
    }

    /// Runs fn on the loop thread. Any thread, while the loop exists; a thread that may
    /// outlive the loop holds a handle() instead.
    template <class F>
    void call_soon_threadsafe(F&& fn) {
        handle().call_soon_threadsafe(static_cast<F&&>(fn));
    }

    /// The loop for other threads to hold: refuses work once the loop has gone.
    [[nodiscard]] loop_handle handle() noexcept { return loop_handle(this, remote_); }

    /// Runs fn on the loop thread once the delay has passed. Loop thread only.
    /// Any duration: a huge one saturates (never runs unless cancelled), one <= 0 runs at
    /// the next turn.
    template <class Rep, class Period, class F>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, F&& fn);

    /// Ends run(): the main awaitable is cancelled, then everything is drained as usual.
    /// Loop thread (use call_soon_threadsafe from others).
    void stop() noexcept { stop_requested_ = true; }

    /// The backend this loop uses (never automatic).
    [[nodiscard]] backend_kind backend() const noexcept { return backend_->kind(); }
    /// True in debug mode (loop_options::debug).
    [[nodiscard]] bool debug() const noexcept { return options_.debug; }
    /// True while the loop is running on its thread (inside run()).
    [[nodiscard]] bool is_running() const noexcept { return running_; }
    /// The options the loop was made with.
    [[nodiscard]] const loop_options& options() const noexcept { return options_; }

    /// The loop running on this thread; throws usage_error when none is.
    static event_loop& current() {
        event_loop* l = detail::current_loop();
        if (l == nullptr) throw usage_error("corio: no event loop is running on this thread");
        return *l;
    }

    /// Live spawned tasks: name and state.
    [[nodiscard]] std::vector<task_info> tasks() const {
        std::vector<task_info> out;
        for (detail::loop_bound* b = bound_head_; b != nullptr; b = b->bound_next_) {
            const detail::live_task* t = live(b);
            if (t == nullptr) continue;
            const char* state = !t->started_ ? "pending" : (t == running_task() ? "running" : "waiting");
            out.push_back(task_info{t->describe(), state, t->where_});
        }
        return out;
    }

    /// Reports through the exception handler (never throws).
    void report(const exception_context& ctx) noexcept {
        try {
            if (options_.exception_handler)
                options_.exception_handler(ctx);
            else
                detail::format_default_report(ctx);
        } catch (...) {
            // Neither report may be lost: the one the handler failed on goes to stderr too.
            detail::format_default_report(ctx);
            detail::format_default_report(exception_context{report_kind::callback_exception,
                                                            "the exception handler itself threw",
                                                            std::current_exception(),
                                                            {},
                                                            {}});
        }
    }

    // ---- corio's own awaitables use what follows; user code has no need of it ----
    /// @cond CORIO_INTERNAL

    void schedule(std::coroutine_handle<> h, detail::task_node* node) { ready_.push({nullptr, h.address(), node}); }
    void schedule(const detail::work_item& w) { ready_.push(w); }
    /// A callback node (make_callback) run at the next turn; the queue owns it from here.
    void schedule_callback(detail::callback_node* cb) { ready_.push({&run_callback, cb, nullptr}); }

    /// fn as a callback node, from the frame pool; an exception it throws is reported as
    /// a call_soon callback's.
    template <class F>
    static detail::callback_node* make_callback(F&& fn) {
        using D = std::decay_t<F>;
        return new callback<D>(D(static_cast<F&&>(fn)));
    }

    void add_timer(detail::timer_entry& e) noexcept { timers_.push(&e); }
    void remove_timer(detail::timer_entry& e) noexcept {
        if (e.armed()) timers_.erase(&e);
    }

    detail::backend& io() noexcept { return *backend_; }
    /// Starts an I/O operation: on io_uring a direct call (the hot path, inlined), else
    /// the backend's virtual one.
    void submit_io(detail::io_op& op) {
#if CORIO_HAS_IO_URING
        if (CORIO_LIKELY(uring_ != nullptr)) {
            uring_->submit(op);
            return;
        }
#endif
        backend_->submit(op);
    }
    /// Timers armed (sleeps, deadlines, call_later): for tests and leak hunting.
    [[nodiscard]] std::size_t armed_timers() const noexcept { return timers_.size(); }
    detail::remote_queue& remote() noexcept { return *remote_; }
    std::shared_ptr<detail::remote_queue> remote_ref() const noexcept { return remote_; }

    /// A finished root coroutine, destroyed once the current step has unwound.
    void defer_destroy(std::coroutine_handle<> h) { zombies_.push_back(h); }

    /// A spawned task starts or ends (it is listed through its state's loop_bound links).
    void link_live(detail::live_task* /*t*/) noexcept { ++live_count_; }
    void unlink_live(detail::live_task* /*t*/) noexcept { --live_count_; }
    void bind(detail::loop_bound* b) noexcept {
        b->bound_next_ = bound_head_;
        if (bound_head_ != nullptr) bound_head_->bound_prev_ = b;
        bound_head_ = b;
    }
    void unbind(detail::loop_bound* b) noexcept {
        if (b->bound_prev_ != nullptr)
            b->bound_prev_->bound_next_ = b->bound_next_;
        else
            bound_head_ = b->bound_next_;
        if (b->bound_next_ != nullptr) b->bound_next_->bound_prev_ = b->bound_prev_;
        b->bound_prev_ = b->bound_next_ = nullptr;
    }
    std::uint64_t next_task_id() noexcept { return ++task_ids_; }

    /// The task whose step is running now (nullptr between steps).
    [[nodiscard]] detail::task_node* running_node() const noexcept { return current_node_; }

    /// @endcond

    /// One turn of the loop (public for run(); see the file comment).
    void run_once();

    /// Cancels every live task once and runs until none is left.
    void drain();

private:
    template <class F>
    struct callback final : detail::callback_node {
        explicit callback(F f) : fn(std::move(f)) { invoke = &run_or_drop; }
        static void run_or_drop(detail::callback_node* self, bool run) noexcept {
            auto* me = static_cast<callback*>(self);
            if (run) invoke_reporting(me->fn, *detail::current_loop(), "call_soon");
            delete me;
        }
        // Made and dropped as often as frames: the same cache.
        static void* operator new(std::size_t n) { return detail::allocate_frame(n); }
        static void operator delete(void* p, std::size_t n) noexcept { detail::deallocate_frame(p, n); }
        F fn;
    };

    // A callable kept in the work item's argument, copied out to run: nothing to free,
    // so discard_ready may drop it as it is.
    template <class F>
    static constexpr bool fits_work_item =
        sizeof(F) <= sizeof(void*) &&
        alignof(F) <= alignof(void*) && std::is_trivially_copyable_v<F>&& std::is_trivially_destructible_v<F>;
    template <class F>
    static void run_inline(void* arg) noexcept {
        alignas(F) unsigned char bytes[sizeof(F)];
        std::memcpy(bytes, static_cast<void*>(&arg), sizeof(F));
        invoke_reporting(*std::launder(reinterpret_cast<F*>(bytes)), *detail::current_loop(), "call_soon");
    }
    /// Runs fn; what it throws goes to the loop's exception handler as a `which` callback's.
    template <class F>
    static void invoke_reporting(F& fn, event_loop& loop, const char* which) noexcept {
        try {
            fn();
        } catch (...) {
            loop.report_callback_exception(which);
        }
    }
    template <class F>
    struct remote_callback final : detail::remote_item {
        template <class G>
        remote_callback(event_loop* l, G&& g) : loop(l), func(static_cast<G&&>(g)) {
            fn = &run_or_drop;
        }
        static void run_or_drop(detail::remote_item* self, bool run) noexcept {
            auto* me = static_cast<remote_callback*>(self);
            if (run) invoke_reporting(me->func, *me->loop, "call_soon_threadsafe");
            delete me;
        }
        event_loop* loop;
        F func;
    };

    /// Reports the exception being handled, thrown by a callback of the given kind.
    void report_callback_exception(const char* which) noexcept {
        report({report_kind::callback_exception,
                std::string("exception in a ") + which + " callback",
                std::current_exception(),
                {},
                {}});
    }

    static void run_callback(void* p) noexcept {
        auto* c = static_cast<detail::callback_node*>(p);
        c->invoke(c, true);
    }

    // At destruction: callbacks that never ran are freed (coroutine handles in the queue
    // belong to frames owned elsewhere).
    void discard_ready() noexcept {
        while (!ready_.empty()) {
            const detail::work_item w = ready_.pop();
            if (w.fn == &run_callback) {
                auto* c = static_cast<detail::callback_node*>(w.arg);
                c->invoke(c, false);
            }
        }
    }

    std::unique_ptr<detail::backend> make_backend();
    void dispatch(const detail::work_item& w) noexcept;
    void run_wait(std::chrono::nanoseconds timeout);
    void end_started_tasks() noexcept;
    void abandon_started_tasks() noexcept;
    void take_remote() noexcept;
    void fire_timers(detail::clock::time_point now) noexcept;
    void discard_timers() noexcept;
    void destroy_zombies() noexcept {
        while (!zombies_.empty()) {
            std::coroutine_handle<> h = zombies_.back();
            zombies_.pop_back();
            h.destroy();
        }
    }
    // The live task b belongs to, or nullptr (not a task's state, or the task has ended).
    static detail::live_task* live(detail::loop_bound* b) noexcept {
        detail::live_task* t = b->as_task();
        return t != nullptr && !t->finished_ ? t : nullptr;
    }
    [[nodiscard]] const detail::live_task* running_task() const noexcept {
        for (const detail::task_node* n = current_node_; n != nullptr; n = n->parent_)
            if (n->is_task_) return static_cast<const detail::live_task*>(n);
        return nullptr;
    }

    friend struct run_scope;
    friend struct running_scope;
    friend class timer_handle;
    friend class loop_handle;

    loop_options options_;
    std::thread::id owner_;
    std::unique_ptr<detail::backend> backend_;
#if CORIO_HAS_IO_URING
    detail::uring_backend* uring_ = nullptr;  // backend_, when it is io_uring
#endif
    std::shared_ptr<detail::remote_queue> remote_;
    detail::ready_queue ready_;
    detail::timer_wheel timers_;
    std::vector<std::coroutine_handle<>> zombies_;
    std::size_t live_count_ = 0;  // tasks spawned and not ended
    detail::loop_bound* bound_head_ = nullptr;
    detail::task_node* current_node_ = nullptr;
    std::uint64_t task_ids_ = 0;
    std::size_t since_poll_ = 0;
    static constexpr std::size_t batch = 64;  // steps per turn (see run_once)
    bool running_ = false;
    bool stop_requested_ = false;
};

// ---- work from other threads ----

template <class F>
void loop_handle::call_soon_threadsafe(F&& fn) const {
    if (remote_ == nullptr) throw usage_error("corio: call_soon_threadsafe on an empty loop_handle");
    auto* item = new event_loop::remote_callback<std::decay_t<F>>(loop_, static_cast<F&&>(fn));
    if (!remote_->push(item)) {
        delete item;
        throw usage_error("corio: call_soon_threadsafe: the event loop has closed");
    }
}

inline void loop_handle::stop() const {
    call_soon_threadsafe([l = loop_] { l->stop(); });
}

// ---- timers with callbacks (call_later) ----

/// @cond CORIO_INTERNAL
struct timer_handle::callback_timer : detail::timer_entry {
    timer_handle* owner = nullptr;
    event_loop* loop = nullptr;
    // Runs the callable (or only drops it), then frees the entry: the callable is held
    // by the entry itself (callback_timer_for), not by a std::function.
    void (*invoke)(callback_timer* self, bool run) noexcept = nullptr;

    callback_timer() noexcept { fire = &run; }
    /// One function for every call_later timer: discard_timers tells them by it from the
    /// deadlines of tasks' awaiters, which live in the tasks' frames.
    static void run(detail::timer_entry* te) noexcept {
        auto* ct = static_cast<callback_timer*>(te);
        if (ct->owner != nullptr) ct->owner->entry_ = nullptr;
        ct->owner = nullptr;
        ct->invoke(ct, true);
    }
};

template <class F>
struct timer_handle::callback_timer_for final : callback_timer {
    explicit callback_timer_for(F f) : fn(std::move(f)) { invoke = &run_or_drop; }
    static void run_or_drop(callback_timer* self, bool run) noexcept {
        auto* me = static_cast<callback_timer_for*>(self);
        if (run) event_loop::invoke_reporting(me->fn, *me->loop, "call_later");
        delete me;
    }
    static void* operator new(std::size_t n) { return detail::allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { detail::deallocate_frame(p, n); }
    F fn;
};
/// @endcond

inline timer_handle::timer_handle(timer_handle&& o) noexcept : entry_(std::exchange(o.entry_, nullptr)) {
    if (entry_ != nullptr) entry_->owner = this;
}
inline timer_handle& timer_handle::operator=(timer_handle&& o) noexcept {
    if (this != &o) {
        if (entry_ != nullptr) entry_->owner = nullptr;
        entry_ = std::exchange(o.entry_, nullptr);
        if (entry_ != nullptr) entry_->owner = this;
    }
    return *this;
}
inline timer_handle::~timer_handle() {
    if (entry_ != nullptr) entry_->owner = nullptr;  // detach: the callback still runs
}
inline bool timer_handle::cancel() noexcept {
    if (entry_ == nullptr) return false;
    callback_timer* e = std::exchange(entry_, nullptr);
    e->loop->remove_timer(*e);
    e->invoke(e, false);
    return true;
}

template <class Rep, class Period, class F>
timer_handle event_loop::call_later(std::chrono::duration<Rep, Period> delay, F&& fn) {
    using D = std::decay_t<F>;
    auto* e = new timer_handle::callback_timer_for<D>(D(static_cast<F&&>(fn)));
    e->loop = this;
    e->deadline = detail::deadline_after(detail::saturating_ceil(delay));
    add_timer(*e);
    timer_handle h;
    h.entry_ = e;
    e->owner = &h;
    return h;  // a move, if any, re-points the entry at the new handle
}

// ---- the loop's turn ----

inline std::unique_ptr<detail::backend> event_loop::make_backend() {
    backend_kind want = options_.backend;
    if (want == backend_kind::automatic) {
        if (const char* env = std::getenv("CORIO_BACKEND"); env != nullptr && *env != '\0') {
            const std::string_view v(env);
            if (v == "io_uring")
                want = backend_kind::io_uring;
            else if (v == "epoll")
                want = backend_kind::epoll;
            else if (v != "automatic")
                throw std::system_error(EINVAL, std::system_category(),
                                        "corio: CORIO_BACKEND='" + std::string(v) +
                                            "' is not a backend (expected io_uring, epoll or automatic)");
        }
    }
    const int wake_fd = remote_->fd();
    auto note = [this](const std::string& msg) {
        if (options_.debug) report({report_kind::backend_info, msg, nullptr, {}, {}});
    };
    if (want == backend_kind::epoll) {
        note("event loop uses the epoll backend (requested)");
        return std::make_unique<detail::epoll_backend>(wake_fd);
    }
#if CORIO_HAS_IO_URING
    // The io_uring options, the same whether io_uring was asked for or chosen.
    auto configure = [this](detail::uring_backend& b) {
        b.set_recv_buffers(options_.recv_buffers, options_.recv_buffer_size);
        b.set_zero_copy_send(options_.zero_copy_send);
        b.set_batch_wait(static_cast<unsigned>(std::clamp<std::int64_t>(options_.batch_wait.count(), 0, 1'000'000)));
    };
    if (want == backend_kind::io_uring) {
        auto b = std::make_unique<detail::uring_backend>(options_.queue_depth, wake_fd);  // throws a clear error
        configure(*b);
        note("event loop uses the " + b->describe() + " backend (requested)");
        return b;
    }
    try {
        auto b = std::make_unique<detail::uring_backend>(options_.queue_depth, wake_fd);
        configure(*b);
        note("event loop uses the " + b->describe() + " backend");
        return b;
    } catch (const std::system_error& e) {
        note(std::string("io_uring is not available, falling back to epoll: ") + e.what());
        return std::make_unique<detail::epoll_backend>(wake_fd);
    }
#else
    if (want == backend_kind::io_uring)
        throw std::system_error(ENOSYS, std::system_category(),
                                "corio: the io_uring backend was requested but corio was built without liburing");
    note("event loop uses the epoll backend (built without liburing)");
    return std::make_unique<detail::epoll_backend>(wake_fd);
#endif
}

inline void event_loop::dispatch(const detail::work_item& w) noexcept {
    current_node_ = w.node;
    if (CORIO_UNLIKELY(options_.debug)) {
        // Named before the step: a task that ends in it may be freed by the time it returns.
        const std::string who = w.node != nullptr ? w.node->describe() : std::string("<callback>");
        const auto t0 = detail::clock::now();
        if (w.fn != nullptr)
            w.fn(w.arg);
        else
            std::coroutine_handle<>::from_address(w.arg).resume();
        const auto took = detail::clock::now() - t0;
        if (took > options_.slow_step) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
            exception_context ctx{
                report_kind::slow_step,
                "a step ran for " + std::to_string(ms) + " ms without suspending (a blocking call inside a coroutine?)",
                nullptr,
                who,
                {}};
            report(ctx);
        }
    } else if (w.fn != nullptr) {
        w.fn(w.arg);
    } else {
        std::coroutine_handle<>::from_address(w.arg).resume();
    }
    current_node_ = nullptr;
    if (!zombies_.empty()) destroy_zombies();
}

inline void event_loop::take_remote() noexcept {
    detail::remote_item* item = remote_->take_all();
    while (item != nullptr) {
        detail::remote_item* next = item->next;
        item->fn(item, true);
        item = next;
    }
}

inline void event_loop::fire_timers(detail::clock::time_point now) noexcept {
    timers_.collect_due(now);
    while (detail::timer_entry* e = timers_.pop_due()) e->fire(e);
}

inline void event_loop::discard_timers() noexcept {
    // call_later timers are the loop's: their callbacks never run. Any other entry is a
    // deadline inside the frame of a task that could not be ended (abandon_started_tasks),
    // not the loop's to free.
    while (detail::timer_entry* t = timers_.pop_any()) {
        if (t->fire != &timer_handle::callback_timer::run) continue;
        auto* e = static_cast<timer_handle::callback_timer*>(t);
        if (e->owner != nullptr) e->owner->entry_ = nullptr;
        e->invoke(e, false);
    }
}

inline void event_loop::run_once() {
    if (ready_.empty()) {
        // Idle: sleep in the kernel until the nearest deadline, an event or a wakeup.
        std::chrono::nanoseconds timeout(-1);
        if (remote_->maybe_nonempty()) {
            timeout = std::chrono::nanoseconds(0);
        } else if (!timers_.empty()) {
            const auto left = timers_.next_deadline() - detail::clock::now();
            timeout = left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                                       : std::chrono::nanoseconds(0);
        }
        since_poll_ = 0;
        run_wait(timeout);
    } else if (backend_->in_flight() > 0 && since_poll_ >= batch) {
        // Busy: look at I/O without blocking, but not on every turn of a tight yield
        // loop (each look is a syscall).
        since_poll_ = 0;
        run_wait(std::chrono::nanoseconds(0));
    }
    if (remote_->maybe_nonempty()) take_remote();
    if (!timers_.empty()) fire_timers(detail::clock::now());

    // Run what is ready, in order, including what these steps make ready, up to a batch:
    // a tight yield loop then pays for the timer and I/O checks once per batch rather than
    // once per step, and no timer or I/O completion waits longer than a batch of steps.
    std::size_t n = 0;
    while (n < batch && !ready_.empty()) {
        dispatch(ready_.pop());
        ++n;
    }
    since_poll_ += n;
}

inline void event_loop::run_wait(std::chrono::nanoseconds timeout) {
    if (CORIO_UNLIKELY(detail::loop_wait_fault != nullptr))
        if (const int e = detail::loop_wait_fault(); e != 0)
            throw std::system_error(e, std::system_category(), "corio: backend wait (injected fault)");
    if (backend_->wait(timeout)) remote_->drain_eventfd();
}

inline void event_loop::drain() {
    for (;;) {
        for (detail::loop_bound* b = bound_head_; b != nullptr; b = b->bound_next_) {
            // A task that catches the cancel may await during its cleanup.
            if (detail::live_task* t = live(b); t != nullptr) t->cancel_once();
        }
        if (live_count_ == 0 && ready_.empty()) break;
        run_once();
    }
}

/// @cond CORIO_INTERNAL
/// Marks the loop running on this thread, and restores what was there before: for run(),
/// nothing; for a destructor ending its tasks, possibly another loop whose task destroys it.
struct running_scope {
    explicit running_scope(event_loop& l) noexcept
        : loop(l), loop_was(detail::current_loop_), top_was(detail::loop_stack_top), resume_was(detail::resume_later) {
        l.running_ = true;
        detail::current_loop_ = &l;
        detail::loop_stack_top = reinterpret_cast<char*>(this);
        detail::resume_later = [](std::coroutine_handle<> h, detail::task_node* node) noexcept {
            detail::current_loop_->schedule(h, node);
        };
    }
    ~running_scope() {
        loop.running_ = false;
        detail::current_loop_ = loop_was;
        detail::loop_stack_top = top_was;
        detail::resume_later = resume_was;
    }
    running_scope(const running_scope&) = delete;
    running_scope& operator=(const running_scope&) = delete;
    event_loop& loop;
    event_loop* loop_was;
    char* top_was;
    void (*resume_was)(std::coroutine_handle<>, detail::task_node*) noexcept;
};

/// Marks the loop running on this thread for the duration of run(), which may not nest.
struct run_scope {
    explicit run_scope(event_loop& l) : entered((check(l), l)) { l.stop_requested_ = false; }
    static void check(const event_loop& l) {
        if (l.owner_ != std::this_thread::get_id())
            throw usage_error("corio: an event loop must run on the thread that created it");
        if (l.running_) throw usage_error("corio: event_loop::run called while the loop is already running");
        if (detail::current_loop_ != nullptr)
            throw usage_error("corio: cannot run an event loop inside another running loop on the same thread");
    }
    running_scope entered;
};
/// @endcond

// A started task is suspended inside an awaiter that other structures point at: a
// future's or primitive's waiter list, the timer heap, the kernel's queue, a pool job.
// Freeing its frame would leave them pointing at freed memory. So a loop destroyed with
// started tasks (run() left by an exception, or run_once driven by hand) does what run()
// does at its end: it cancels them and runs until every one has ended, which unlinks each
// awaiter and waits for the kernel's and the pool's last completion of each operation.
inline void event_loop::end_started_tasks() noexcept {
    bool started = false;
    for (detail::loop_bound* b = bound_head_; b != nullptr && !started; b = b->bound_next_) {
        const detail::live_task* t = live(b);
        started = t != nullptr && t->started_;
    }
    if (!started) return;
    if (running_ || owner_ != std::this_thread::get_id()) {
        // Destroyed from inside its own run, or on another thread: it cannot be driven.
        report({report_kind::callback_exception,
                "event loop destroyed with started tasks where it cannot run them to their end "
                "(inside its own run, or on another thread): their frames are leaked, not freed",
                nullptr,
                {},
                {}});
        abandon_started_tasks();
        return;
    }
    running_scope scope(*this);
    try {
        drain();
    } catch (...) {
        report({report_kind::callback_exception,
                "event loop destroyed with started tasks, and running them to their end failed: "
                "their frames are leaked, not freed",
                std::current_exception(),
                {},
                {}});
        abandon_started_tasks();
    }
}

// The last resort, when the loop cannot run: a started task's frame is leaked rather than
// freed under the structures that point into it (its future, if anyone holds it, stays
// pending: there is no loop left to complete it on).
inline void event_loop::abandon_started_tasks() noexcept {
    for (detail::loop_bound* b = bound_head_; b != nullptr; b = b->bound_next_) {
        detail::live_task* t = live(b);
        if (t != nullptr && t->started_) {
            unlink_live(t);
            t->finished_ = true;
        }
    }
}

}  // namespace corio

// The loop's member templates (run, spawn) are defined with the types they return.
#include <corio/future.hpp>
