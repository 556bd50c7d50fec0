#pragma once
/// @file
/// future<T>: the shared result of spawned work or of a promise<T>. Any number of
/// coroutines on the future's loop may await it. Its state lives on that loop and is
/// touched only there; a promise completed from another thread posts the result to
/// the loop, which is why the reference count needs no atomics.

#include <coroutine>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <corio/detail/remote_queue.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/detail/waiter_list.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>

namespace corio {

/// @cond CORIO_INTERNAL
template <class T>
class future;
template <class T>
class promise;
/// @endcond

namespace detail {

class future_state_base : public loop_bound {
public:
    enum class status : std::uint8_t { pending, value, failed, cancelled };

    explicit future_state_base(event_loop* loop) : loop_(loop) {
        if (loop_ != nullptr) loop_->bind(this);
    }
    future_state_base(const future_state_base&) = delete;
    future_state_base& operator=(const future_state_base&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) {
            if (loop_ != nullptr) {
                report_if_unretrieved();
                loop_->unbind(this);
            }
            delete this;
        }
    }

    [[nodiscard]] status state() const noexcept { return status_; }
    [[nodiscard]] bool done() const noexcept { return status_ != status::pending; }
    [[nodiscard]] event_loop* loop() const noexcept { return loop_; }
    [[nodiscard]] std::uint32_t refs() const noexcept { return refs_; }

    /// asyncio semantics: false when already done; a spawned task is asked to stop and
    /// its future completes when it has; a promise's future completes cancelled at once.
    virtual bool cancel() noexcept {
        if (done()) return false;
        status_ = status::cancelled;
        finish();
        return true;
    }

    void set_exception(std::exception_ptr e) noexcept {
        if (done()) return;
        exception_ = std::move(e);
        status_ = status::failed;
        finish();
    }

    /// The failure, marking it retrieved; throws cancelled_error for a cancelled future.
    std::exception_ptr exception() {
        if (status_ == status::pending) throw usage_error("corio: future::exception() before the future is done");
        if (status_ == status::cancelled) throw cancelled_error();
        retrieved_ = true;
        return exception_;
    }

    void rethrow_if_failed() {
        if (status_ == status::cancelled) throw cancelled_error();
        if (status_ == status::failed) {
            retrieved_ = true;
            std::rethrow_exception(exception_);
        }
    }

    void add_waiter(sync_waiter* w) noexcept { waiters_.push_back(w); }

    /// Takes cb (made by event_loop::make_callback): scheduled when the future is done,
    /// at once if it is done already.
    void add_callback(callback_node* cb) {
        if (loop_ == nullptr) {
            cb->invoke(cb, false);
            throw usage_error("corio: add_done_callback on a future whose loop is gone");
        }
        if (done()) {
            loop_->schedule_callback(cb);
        } else {
            cb->next = callbacks_;  // newest first: finish() reverses them
            callbacks_ = cb;
        }
    }

    void loop_closing() noexcept override {
        report_if_unretrieved();
        loop_ = nullptr;
        // A promise that has not delivered yet may do so from another thread, where it
        // finds the loop's door closed and cannot touch this state (the count is not
        // atomic): the loop drops the promise's reference for it, here, on its own thread.
        if (std::exchange(promise_reference_, false)) release();
    }

    [[nodiscard]] virtual std::string task_name() const { return {}; }
    [[nodiscard]] virtual corio::source_location task_location() const { return {}; }

protected:
    virtual ~future_state_base() {
        // Never done (its loop went first): the callbacks are dropped unrun.
        while (callbacks_ != nullptr) {
            callback_node* cb = std::exchange(callbacks_, callbacks_->next);
            cb->invoke(cb, false);
        }
    }

    /// Wakes the awaiters in the order they came, and schedules the done callbacks in the
    /// order they were added.
    void finish() noexcept {
        waiters_.wake_all();
        callback_node* in_order = nullptr;
        while (callbacks_ != nullptr) {
            callback_node* cb = std::exchange(callbacks_, callbacks_->next);
            cb->next = in_order;
            in_order = cb;
        }
        while (in_order != nullptr) {
            callback_node* cb = std::exchange(in_order, in_order->next);
            loop_->schedule_callback(cb);
        }
    }

    void report_if_unretrieved() noexcept {
        if (status_ != status::failed || retrieved_ || loop_ == nullptr) return;
        retrieved_ = true;  // once
        loop_->report(exception_context{report_kind::unretrieved_exception, "Task exception was never retrieved",
                                        exception_, task_name(), task_location()});
    }

    event_loop* loop_;
    std::uint32_t refs_ = 1;
    status status_ = status::pending;
    bool retrieved_ = false;
    bool promise_reference_ = false;  // one of refs_ is a promise's, not yet delivered
    std::exception_ptr exception_;
    waiter_list waiters_;
    callback_node* callbacks_ = nullptr;  // one pointer: most futures never get one

    template <class>
    friend class corio::future;
    template <class>
    friend class corio::promise;
};

template <class T>
class future_state : public future_state_base {
public:
    using future_state_base::future_state_base;

    template <class... Args>
    void set_value(Args&&... args) {
        if (done()) return;
        if constexpr (!std::is_void_v<T>) value_.emplace(static_cast<Args&&>(args)...);
        status_ = status::value;
        finish();
    }

    [[nodiscard]] const auto& value_ref() const requires(!std::is_void_v<T>) {
        if (!value_) throw usage_error("corio: the future's value was moved out by an earlier await");
        return *value_;
    }
    auto take_value() requires(!std::is_void_v<T>) {
        if (!value_) throw usage_error("corio: the future's value was moved out by an earlier await");
        T v = std::move(*value_);
        value_.reset();
        return v;
    }

private:
    struct empty {};
    [[no_unique_address]] std::conditional_t<std::is_void_v<T>, empty, std::optional<non_void_t<T>>> value_;
};

/// The awaiter of future<T>. Cancelling the awaiting task cancels the awaited future
/// (asyncio semantics; shield() prevents it); the awaiter then resumes when the future
/// is done, so nothing is left running behind the awaiting task's back.
template <class T, bool Move>
class future_awaiter : sync_waiter {
public:
    explicit future_awaiter(future_state<T>* st) noexcept : st_(st) {}

    [[nodiscard]] bool await_ready() const noexcept { return st_->done(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        event_loop* loop = current_loop();
        if (loop == nullptr || st_->loop() != loop)
            throw usage_error("corio: a future can only be awaited on the loop it belongs to");
        wait.bind(h, *loop);
        st_->add_waiter(this);
        if (wait.node != nullptr && wait.node->cancel_pending_) {
            // A cancel pending as the await starts reaches the awaited work too, exactly as
            // one that comes while we wait; the request stays pending until await_resume.
            st_->cancel();  // a promise's future ends at once (and wakes us through the loop)
            return true;
        }
        wait.arm(&on_cancel, static_cast<sync_waiter*>(this));  // the context finish() disarms
        return true;
    }

    T await_resume() {
        wait.throw_if_cancelled();
        if (st_->state() == future_state_base::status::cancelled) throw_cancelled(wait.node);
        st_->rethrow_if_failed();
        if constexpr (std::is_void_v<T>) {
            return;
        } else if constexpr (!std::is_copy_constructible_v<T>) {
            return st_->take_value();  // a move-only value can be delivered once
        } else {
            // Move out only when nobody else can see the value.
            if (Move && st_->refs() == 1) return st_->take_value();
            return st_->value_ref();
        }
    }

private:
    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<future_awaiter*>(static_cast<sync_waiter*>(self));
        me->st_->cancel();  // the waiter stays linked; the future's completion resumes us
    }

    future_state<T>* st_;
};

}  // namespace detail

/// The shared result of spawned work (spawn, task_group::spawn) or of a promise. Copies
/// share one state; any number of tasks on the future's loop may `co_await` it, each getting
/// the result (or the exception). As in asyncio, cancelling a task that awaits a future
/// cancels the work behind it, and the wait ends once that work has ended; shield() keeps
/// the work running.
/// @code
/// corio::future<int> f = corio::spawn(compute());  // compute() returns corio::task<int>
/// co_await do_other_things();
/// int v = co_await f;                              // rethrows compute()'s exception
/// @endcode
template <class T>
class future {
public:
    /// The result type.
    using value_type = T;

    future() noexcept = default;
    /// @cond CORIO_INTERNAL
    explicit future(detail::future_state<T>* st) noexcept : st_(st) {}  // adopts one reference
    /// @endcond
    /// Another handle on the same state.
    future(const future& o) noexcept : st_(o.st_) {
        if (st_ != nullptr) st_->add_ref();
    }
    /// Takes over o's state; o becomes empty (valid() is false).
    future(future&& o) noexcept : st_(std::exchange(o.st_, nullptr)) {}
    /// Copy or move assignment: this future now shares o's state.
    future& operator=(future o) noexcept {
        std::swap(st_, o.st_);
        return *this;
    }
    ~future() {
        if (st_ != nullptr) st_->release();
    }

    /// False for a default-constructed or moved-from future (every other call then throws
    /// usage_error).
    [[nodiscard]] bool valid() const noexcept { return st_ != nullptr; }
    /// True once the work has ended: with a value, an exception, or cancelled.
    [[nodiscard]] bool done() const { return state().done(); }
    /// True if the work ended by cancellation.
    [[nodiscard]] bool cancelled() const { return state().state() == detail::future_state_base::status::cancelled; }
    /// Requests cancellation; false when the future is already done.
    bool cancel() { return state().cancel(); }

    /// The value (rethrows the failure; cancelled_error if cancelled). Only when done.
    decltype(auto) result() const {
        require_done("result");
        st_->rethrow_if_failed();
        if constexpr (!std::is_void_v<T>) return st_->value_ref();
    }

    /// The failure or nullptr; cancelled_error if cancelled. Only when done.
    std::exception_ptr exception() const {
        require_done("exception");
        return st_->exception();
    }

    /// fn(const future<T>&) runs on the loop (soon) once the future is done. An exception
    /// it throws goes to the loop's exception handler (report_kind::callback_exception).
    template <class F>
    void add_done_callback(F&& fn) {
        detail::future_state<T>& st = state();
        st.add_callback(event_loop::make_callback([self = *this, f = std::decay_t<F>(static_cast<F&&>(fn))]() mutable {
            try {
                f(self);
            } catch (...) {
                // Reported here rather than by call_soon, to say which callback and whose.
                detail::current_loop()->report(
                    exception_context{report_kind::callback_exception, "exception in a done callback",
                                      std::current_exception(), self.st_->task_name(), self.st_->task_location()});
            }
        }));
    }

    /// @cond CORIO_INTERNAL
    detail::future_awaiter<T, false> operator co_await() const& { return detail::future_awaiter<T, false>(&state()); }
    detail::future_awaiter<T, true> operator co_await() && { return detail::future_awaiter<T, true>(&state()); }

    [[nodiscard]] detail::future_state<T>* state_ptr() const noexcept { return st_; }
    /// @endcond

private:
    detail::future_state<T>& state() const {
        if (st_ == nullptr) throw usage_error("corio: empty future (default-constructed or moved from)");
        return *st_;
    }
    void require_done(const char* what) const {
        if (!state().done()) throw usage_error(std::string("corio: future::") + what + "() before the future is done");
    }

    detail::future_state<T>* st_ = nullptr;
};

/// The producer side of a future. Create it on the loop's thread; complete it from any
/// thread (the result travels to the loop, whose awaiters resume there). Destroying it
/// uncompleted fails the future with std::future_error(broken_promise).
template <class T>
class promise {
public:
    promise() : promise(event_loop::current()) {}
    /// A promise whose future belongs to `loop`. The default constructor uses the loop
    /// running on this thread.
    explicit promise(event_loop& loop) : st_(new detail::future_state<T>(&loop)), remote_(loop.remote_ref()) {
        st_->promise_reference_ = true;
    }
    /// Takes over o's state; o is left empty.
    promise(promise&& o) noexcept
        : st_(std::exchange(o.st_, nullptr)), remote_(std::move(o.remote_)), satisfied_(o.satisfied_) {}
    /// Abandons this promise's state (its future fails with broken_promise unless
    /// it was completed), then takes over o's.
    promise& operator=(promise&& o) noexcept {
        if (this != &o) {
            abandon();
            st_ = std::exchange(o.st_, nullptr);
            remote_ = std::move(o.remote_);
            satisfied_ = o.satisfied_;
        }
        return *this;
    }
    promise(const promise&) = delete;
    promise& operator=(const promise&) = delete;
    ~promise() { abandon(); }

    /// Loop thread only.
    future<T> get_future() {
        if (st_ == nullptr) throw usage_error("corio: promise::get_future on a moved-from promise");
        st_->add_ref();
        return future<T>(st_);
    }

    /// Completes the future with T(args...) (no arguments for promise<void>). Any thread;
    /// throws std::future_error(promise_already_satisfied) the second time.
    template <class... Args>
    void set_value(Args&&... args) {
        claim();
        if constexpr (std::is_void_v<T>) {
            static_assert(sizeof...(Args) == 0, "promise<void>::set_value takes no argument");
            deliver([](detail::future_state<T>& s) { s.set_value(); });
        } else {
            deliver([v = T(static_cast<Args&&>(args)...)](detail::future_state<T>& s) mutable {
                s.set_value(std::move(v));
            });
        }
    }

    /// Fails the future with e. Any thread; throws std::future_error the second time.
    void set_exception(std::exception_ptr e) {
        claim();
        deliver([e = std::move(e)](detail::future_state<T>& s) mutable { s.set_exception(std::move(e)); });
    }

private:
    void claim() {
        if (satisfied_) throw std::future_error(std::future_errc::promise_already_satisfied);
        if (st_ == nullptr) throw usage_error("corio: promise used after move");
        satisfied_ = true;
    }

    void abandon() noexcept {
        if (st_ == nullptr) return;
        if (!satisfied_) {
            satisfied_ = true;
            try {
                deliver([](detail::future_state<T>& s) {
                    s.set_exception(std::make_exception_ptr(std::future_error(std::future_errc::broken_promise)));
                });
            } catch (...) {
                // Out of memory while reporting a broken promise: the future's reference leaks.
            }
        }
        st_ = nullptr;
    }

    // Runs `apply` on the state on its loop's thread, then drops our reference there.
    // Nothing of the state is read here unless this is its loop's thread: the loop's
    // shutdown writes it. The remote queue (ours to hold) tells which loop is which.
    template <class Apply>
    void deliver(Apply&& apply) {
        detail::future_state<T>* st = std::exchange(st_, nullptr);
        if (event_loop* here = detail::current_loop(); here != nullptr && &here->remote() == remote_.get()) {
            settle(st, apply);
            return;
        }
        struct item final : detail::remote_item {
            item(detail::future_state<T>* s, std::decay_t<Apply>&& a) : st(s), apply(std::move(a)) {
                fn = [](detail::remote_item* self, bool run) noexcept {
                    auto* me = static_cast<item*>(self);
                    // Not run: the loop has closed, and has dropped our reference to the
                    // state already (loop_closing); the state is not ours to touch.
                    if (run) settle(me->st, me->apply);
                    delete me;
                };
            }
            detail::future_state<T>* st;
            std::decay_t<Apply> apply;
        };
        auto* it = new item(st, static_cast<Apply&&>(apply));
        if (!remote_->push(it)) it->fn(it, false);
    }

    // On the loop's thread, with the loop alive.
    template <class Apply>
    static void settle(detail::future_state<T>* st, Apply& apply) {
        st->promise_reference_ = false;
        apply(*st);
        st->release();
    }

    detail::future_state<T>* st_;
    std::shared_ptr<detail::remote_queue> remote_;
    bool satisfied_ = false;
};

}  // namespace corio

#include <corio/spawn.hpp>
#include <corio/run.hpp>
