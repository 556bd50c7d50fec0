#pragma once
/// @file
/// as_completed(range): results in completion order (asyncio.as_completed, Tokio's JoinSet).
///
///     auto pending = corio::as_completed(std::move(jobs));  // every job starts now
///     while (!pending.empty()) {
///         auto [index, value] = co_await pending.next();    // the next to finish
///         ...
///     }
///
/// - Starting: each element (an awaitable, or a callable returning one, as for gather) is
///   spawned as a task of its own on the current loop, at once; their first steps run at
///   the caller's next suspension, like asyncio's create_task.
/// - next() -> when_any_result<T>{index, value} (void as std::monostate), in the order the
///   children finished. A child that failed has its own exception rethrown at its turn;
///   the others still deliver. A child that ended cancelled by someone else (it let a
///   cancelled_error out) yields cancelled_error at its turn, as awaiting it would.
///   next() with no result left (empty()), or after close(), throws usage_error.
/// - next() is a cancellation point: cancelling the task that waits in it makes it throw
///   cancelled_error and loses nothing. The children belong to the set, not to that wait:
///   they keep running and their results stay for the next call. A result handed to the
///   waiter just before the cancel came, while it had not resumed yet, goes back to the
///   set (to the next waiter, or first in line) and the waiter throws, as queue::pop does.
///   A result that is ready when next() is called is taken without suspending; a cancel
///   already pending then fires at the task's next suspension point.
/// - Several tasks may wait in next() at once: each gets a different result. size() counts
///   the results still to be handed out and not yet claimed by a waiting next().
/// - co_await close(): cancels the children still running (once: a child may await during
///   its cleanup), waits until every one has ended, and drops what nobody took. It throws
///   nothing of the children's (a child's failure nobody took, before or during its
///   cleanup, is reported once through the loop's exception handler, as for any task
///   whose exception was never retrieved); cancelled children are not failures. A cancel
///   of the task waiting in close() does not cut the wait short: close() returns once the
///   children have ended, then throws cancelled_error.
/// - Destroying the set without close() does what close() does without waiting: the
///   children still running are cancelled; the loop keeps them alive until they end, and
///   a real failure of one is reported through the exception handler, exactly once. No
///   child is left running unnoticed: leaving the set's scope, however it happens,
///   cancels them.
///   (A coroutine cannot co_await in a catch block: on an error path, leave the block,
///   then co_await close() if the children must have ended before going on.)

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <corio/detail/child_group.hpp>
#include <corio/detail/suspension.hpp>
#include <corio/detail/waiter_list.hpp>
#include <corio/errors.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/gather.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/when_any.hpp>

namespace corio {

template <class T>
class as_completed_set;

namespace detail {

template <class T>
class as_completed_core;

/// The awaiter of next(): a waiter in the awaiting frame, queued in the set when no
/// result is ready, and handed the next child to finish. It holds a reference to the
/// set's state, so a set closed or destroyed meanwhile is never touched after it is gone.
template <class T>
class [[nodiscard]] as_completed_next : sync_waiter {
public:
    explicit as_completed_next(as_completed_core<T>* core) noexcept : core_(core) {
        if (core_ != nullptr) core_->add_ref();
    }
    // Movable until awaited, like every corio awaiter; a queued waiter never moves.
    as_completed_next(as_completed_next&& o) noexcept
        : sync_waiter(o), core_(std::exchange(o.core_, nullptr)), index_(o.index_), result_(std::move(o.result_)) {}
    as_completed_next& operator=(as_completed_next&&) = delete;
    ~as_completed_next() {
        if (core_ != nullptr) core_->release();
    }

    bool await_ready() {
        if (core_ == nullptr) throw usage_error("corio: as_completed: next() on a moved-from set");
        return core_->take_ready(*this);
    }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        if (!wait.begin(h, *core_->loop_)) return false;  // a pending cancel: thrown now
        core_->queue_waiter(this);
        wait.arm(&on_cancel, static_cast<sync_waiter*>(this));
        return true;
    }

    when_any_result<T> await_resume() {
        wait.throw_if_cancelled();  // cancelled while queued: nothing was handed to us
        if (!result_.valid()) throw usage_error("corio: as_completed: the set was closed while next() waited");
        if (wait.node != nullptr && wait.node->cancel_pending_) {
            // Handed a result, then cancelled before we resumed: the result goes back to
            // the set (the next waiter, or the front of the ready ones) and we throw, so a
            // task ending cancelled never takes a result with it (as queue::pop does).
            core_->give_back(index_, std::move(result_));
            throw_cancelled(wait.node);
        }
        const future<T> done = std::move(result_);
        detail::future_state<T>* st = done.state_ptr();
        st->rethrow_if_failed();  // the child's own exception (now retrieved)
        if constexpr (std::is_void_v<T>)
            return when_any_result<T>{index_, std::monostate{}};
        else
            return when_any_result<T>{index_, st->take_value()};
    }

private:
    friend class as_completed_core<T>;

    // The cancel of the awaiting task: leave the queue; the claim on a result goes back
    // to the set (a queued waiter has not been handed anything yet).
    static void on_cancel(void* self) noexcept {
        auto* me = static_cast<as_completed_next*>(static_cast<sync_waiter*>(self));
        if (me->list != nullptr) me->core_->unqueue_waiter(me);
        me->wait.wake_cancelled();
    }

    as_completed_core<T>* core_;
    std::size_t index_ = 0;
    future<T> result_;  // handed over by the set; empty when the set closed under us
};

/// The awaiter of close(): cancels the rest, then waits until every child has ended.
template <class T>
class [[nodiscard]] as_completed_close : sync_waiter {
public:
    explicit as_completed_close(as_completed_core<T>* core) noexcept : core_(core) {
        if (core_ != nullptr) core_->add_ref();
    }
    as_completed_close(as_completed_close&& o) noexcept : sync_waiter(o), core_(std::exchange(o.core_, nullptr)) {}
    as_completed_close& operator=(as_completed_close&&) = delete;
    ~as_completed_close() {
        if (core_ != nullptr) core_->release();
    }

    bool await_ready() noexcept {
        if (core_ == nullptr) return true;
        core_->close_now();
        return core_->running_ == 0;
    }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        // Not suspension::begin, which delivers a pending cancel instead of waiting: close()
        // waits for the children it has cancelled whatever happens, as every corio
        // combinator does; the cancel is delivered once they have ended.
        wait.loop = core_->loop_;
        if constexpr (std::is_base_of_v<promise_base, Promise>) wait.node = h.promise().node_;
        wait.handle = h;
        core_->closers_.push_back(this);
        wait.arm(&ignore_cancel, static_cast<sync_waiter*>(this));
        return true;
    }

    void await_resume() const {
        if (wait.node != nullptr && wait.node->cancel_pending_) throw_cancelled(wait.node);
    }

private:
    // The children have been cancelled already; the request stays pending on the node.
    static void ignore_cancel(void* /*self*/) noexcept {}

    as_completed_core<T>* core_;
};

/// The set's state. Shared (non-atomically: one loop) by the set and the done callbacks
/// of the children still running, so it outlives a set destroyed before its children end.
template <class T>
class as_completed_core {
public:
    explicit as_completed_core(event_loop* loop) noexcept : loop_(loop) {}
    as_completed_core(const as_completed_core&) = delete;
    as_completed_core& operator=(const as_completed_core&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) delete this;
    }

    /// What a done callback holds: copyable, as std::function requires.
    class ref {
    public:
        explicit ref(as_completed_core* c) noexcept : c_(c) { c_->add_ref(); }
        ref(const ref& o) noexcept : ref(o.c_) {}
        ref& operator=(const ref&) = delete;
        ~ref() { c_->release(); }
        as_completed_core* operator->() const noexcept { return c_; }

    private:
        as_completed_core* c_;
    };

    void start(std::vector<task<T>> tasks, corio::source_location where) {
        if (loop_ == nullptr) throw usage_error("corio: as_completed needs a running event loop");
        children_.reserve(tasks.size());
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            children_.push_back(loop_->spawn(std::move(tasks[i]), spawn_options{}, where));
            children_.back().add_done_callback([r = ref(this), i](const future<T>&) { r->child_done(i); });
            ++running_;
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return closed_ ? 0 : running_ + ready_.size() - waiting_; }

    /// Cancels what still runs (once), drops what nobody took, releases waiting next()s.
    void close_now() noexcept {
        if (closed_) return;
        closed_ = true;
        for (auto& f : children_)
            if (f.valid() && !f.state_ptr()->done()) static_cast<spawn_state<T>*>(f.state_ptr())->cancel_once();
        ready_.clear();  // a failure among them is reported by its future, once
        while (sync_waiter* w = waiters_.pop_front()) {
            --waiting_;
            w->wake();  // no result handed: its next() throws usage_error
        }
    }

private:
    friend class as_completed_next<T>;
    friend class as_completed_close<T>;

    struct item {
        std::size_t index;
        future<T> result;
    };

    // Runs on the loop (a done callback) once child i has ended, in the order they ended.
    void child_done(std::size_t i) {
        --running_;
        if (closed_) {
            // Dropped: a value nobody wants; a real failure is reported by the future when
            // its last reference goes (right after this callback), never twice.
            children_[i] = future<T>();
            if (running_ == 0) closers_.wake_all();
            return;
        }
        if (!hand_to_waiter(i, children_[i])) ready_.push_back(item{i, std::move(children_[i])});
    }

    // To the oldest waiting next(), if any. Its cancel hook is disarmed by the wake: a
    // cancel that comes before it resumes is seen in await_resume (see give_back).
    bool hand_to_waiter(std::size_t i, future<T>& f) noexcept {
        sync_waiter* w = waiters_.pop_front();
        if (w == nullptr) return false;
        --waiting_;
        auto* n = static_cast<as_completed_next<T>*>(w);
        n->index_ = i;
        n->result_ = std::move(f);
        n->wake();
        return true;
    }

    // A result handed to a next() whose task was cancelled before it resumed. It was the
    // oldest: it goes to the next waiter or to the front. A closed set drops it (a failure
    // is then reported by its future).
    void give_back(std::size_t i, future<T> f) {
        if (closed_) return;
        if (!hand_to_waiter(i, f)) ready_.push_front(item{i, std::move(f)});
    }

    bool take_ready(as_completed_next<T>& n) {
        if (closed_) throw usage_error("corio: as_completed: next() after close()");
        if (size() == 0) throw usage_error("corio: as_completed: next() with no result left (check empty() first)");
        if (current_loop() != loop_)
            throw usage_error("corio: as_completed: next() on a loop other than its children's");
        if (ready_.empty()) return false;
        n.index_ = ready_.front().index;
        n.result_ = std::move(ready_.front().result);
        ready_.pop_front();
        return true;
    }

    void queue_waiter(as_completed_next<T>* n) noexcept {
        waiters_.push_back(n);
        ++waiting_;
    }
    void unqueue_waiter(as_completed_next<T>* n) noexcept {
        waiters_.remove(n);
        --waiting_;
    }

    ~as_completed_core() = default;

    std::uint32_t refs_ = 1;
    event_loop* loop_;
    std::vector<future<T>> children_;  // an entry is moved out when its child has ended
    std::deque<item> ready_;           // ended, not yet taken: completion order
    waiter_list waiters_;              // next() calls waiting, oldest first
    waiter_list closers_;              // close() calls waiting for the last child
    std::size_t running_ = 0;          // children whose done callback has not run
    std::size_t waiting_ = 0;          // waiters_'s length: results they have claimed
    bool closed_ = false;
};

}  // namespace detail

/// What as_completed returns: the children, started, and their results as they come.
/// Move-only; destroying it cancels the children still running (see the file comment).
template <class T>
class [[nodiscard]] as_completed_set {
public:
    /// The children's result type.
    using value_type = T;
    /// What next() yields: a child's index and value.
    using result_type = when_any_result<T>;

    /// Spawns every task on the current loop (usage_error without one, unless empty).
    explicit as_completed_set(std::vector<task<T>> tasks,
                              corio::source_location where = corio::source_location::current())
        : core_(new detail::as_completed_core<T>(detail::current_loop())) {
        try {
            if (!tasks.empty()) core_->start(std::move(tasks), where);
        } catch (...) {
            reset();  // the children already spawned are cancelled
            throw;
        }
    }
    /// Takes over o's children; o is left empty.
    as_completed_set(as_completed_set&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
    /// Cancels this set's children still running (as destruction does), then takes over
    /// o's.
    as_completed_set& operator=(as_completed_set&& o) noexcept {
        if (this != &o) {
            reset();
            core_ = std::exchange(o.core_, nullptr);
        }
        return *this;
    }
    as_completed_set(const as_completed_set&) = delete;
    as_completed_set& operator=(const as_completed_set&) = delete;
    ~as_completed_set() { reset(); }

    /// Results still to come that no waiting next() has claimed.
    [[nodiscard]] std::size_t size() const noexcept { return core_ != nullptr ? core_->size() : 0; }
    /// No result left for next(): every one taken (or the set closed).
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }

    /// The next child to finish: {index in the range, value}; rethrows that child's failure.
    detail::as_completed_next<T> next() noexcept { return detail::as_completed_next<T>(core_); }

    /// Cancels the children still running and waits until all have ended (trio's aclose).
    detail::as_completed_close<T> close() noexcept { return detail::as_completed_close<T>(core_); }

private:
    void reset() noexcept {
        if (core_ == nullptr) return;
        core_->close_now();
        std::exchange(core_, nullptr)->release();
    }

    detail::as_completed_core<T>* core_;
};

/// as_completed(range): starts every element now; next() yields them as they finish.
template <detail::awaitable_range Range>
auto as_completed(Range&& range, corio::source_location where = corio::source_location::current()) {
    auto tasks = detail::tasks_from_range(static_cast<Range&&>(range));
    using T = typename decltype(tasks)::value_type::value_type;
    return as_completed_set<T>(std::move(tasks), where);
}

}  // namespace corio
