#pragma once
/// @file
/// task<T>: a lazy, move-only coroutine. It starts when awaited (or spawned) and hands
/// control back to its awaiter by symmetric transfer, so a chain of synchronously
/// completing tasks runs in constant stack.

#include <coroutine>
#include <cxxabi.h>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <corio/config.hpp>
#include <corio/detail/awaitable_traits.hpp>
#include <corio/detail/frame_pool.hpp>
#include <corio/detail/stack_guard.hpp>
#include <corio/detail/task_node.hpp>
#include <corio/errors.hpp>

namespace corio {

/// @cond CORIO_INTERNAL
template <class T = void>
class task;
/// @endcond

namespace detail {

// The lambda-coroutine trap (C++ Core Guidelines CP.51): a lambda coroutine's captures
// live in the closure object, not in the coroutine frame, so `spawn([&]() -> task<> {
// ... }())` leaves the task reading a closure that died at the end of the statement.
// A closure type is told apart by the name the compiler gives it (g++: "<lambda(...)>",
// clang: "(lambda at file:line:col)"); only a closure that has captures is a hazard.
template <class T>
constexpr bool is_capturing_closure() noexcept {
    if constexpr (!std::is_class_v<T> || std::is_empty_v<T>) {
        return false;
    } else {
        constexpr std::string_view fn = __PRETTY_FUNCTION__;
#if defined(__clang__)
        constexpr std::string_view key = "[T = ";
#else
        constexpr std::string_view key = "[with T = ";
#endif
        constexpr auto at = fn.find(key);
        if (at == std::string_view::npos) return false;
        constexpr std::string_view name = fn.substr(at + key.size(), fn.size() - at - key.size() - 1);
#if defined(__clang__)
        return name.starts_with("(lambda at ") && name.ends_with(")");
#else
        // The last component is the lambda: "<lambda(...)>" alone or after a scope's "::".
        constexpr auto k = name.rfind("<lambda(");
        return name.ends_with(")>") && k != std::string_view::npos && (k == 0 || name.substr(0, k).ends_with("::"));
#endif
    }
}

// Whether a lambda coroutine's promise is constructed with the closure, which the check
// needs: clang 14 passes it for member coroutines but not for lambdas.
#if defined(__clang__) && __clang_major__ < 16
inline constexpr bool closure_seen_by_promise = false;
#else
inline constexpr bool closure_seen_by_promise = true;
#endif

// Whether the object at p lies outside the coroutine frame that starts at frame: a
// closure that is the coroutine's own parameter (copied into the frame, as invoke_kept's
// is) lives inside it; the object a lambda coroutine is called on lives elsewhere.
inline bool outside_frame(const void* frame, const void* p) noexcept {
    constexpr std::uintptr_t frame_bound = std::uintptr_t{64} * 1024;  // larger frames are not expected
    const auto f = reinterpret_cast<std::uintptr_t>(frame);
    const auto q = reinterpret_cast<std::uintptr_t>(p);
    return q < f || q - f >= frame_bound;
}

// Whether the exception being handled is exactly a cancelled_error, from its type (the
// Itanium ABI's, which g++ and clang share on every target corio runs on): no rethrow.
inline bool handling_cancelled_error() noexcept {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return t != nullptr && *t == typeid(cancelled_error);
}

struct promise_base {
    std::coroutine_handle<> continuation_{};
    task_node* node_ = nullptr;
    std::exception_ptr exception_{};
    // The coroutine is a capturing lambda called on a closure outside its frame: spawn
    // reports it (see is_capturing_closure and event_loop::spawn).
    bool borrowed_closure_ = false;
    // exception_ is a cancelled_error: told by its type as it escapes, so that the
    // combinators need not rethrow it to ask (a when_any's losers, a wait_for's timeout).
    bool cancelled_ = false;

    // A temporary closure lives on the stack of the code that spawns; one that is named in
    // a coroutine lives in that coroutine's frame and, awaited there, outlives the task:
    // only the first is reported (a named one in a plain function is too, rarely wrongly).
    template <class Promise, class Self>
    void note_closure(Promise& p, const Self& self) noexcept {
        if constexpr (is_capturing_closure<Self>())
            borrowed_closure_ =
                on_this_stack(&self) && outside_frame(std::coroutine_handle<Promise>::from_promise(p).address(), &self);
    }
    [[gnu::noinline]] static bool on_this_stack(const void* p) noexcept {
        char here = 0;
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        const auto h = reinterpret_cast<std::uintptr_t>(&here);
        constexpr std::uintptr_t near = std::uintptr_t{256} * 1024;  // the frames between spawn and here
        return (a > h ? a - h : h - a) < near;
    }

    struct final_awaiter {
        static bool await_ready() noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            promise_base& p = h.promise();
            if (p.continuation_) {
                if (stack_too_deep()) {  // see stack_guard.hpp
                    resume_later(p.continuation_, p.node_);
                    return std::noop_coroutine();
                }
                return p.continuation_;
            }
            // The root of a node (spawned, or a combinator's child): its owner decides.
            return p.node_->on_finish_(p.node_);
        }
        static void await_resume() noexcept {}
    };

    static void* operator new(std::size_t n) { return allocate_frame(n); }
    static void operator delete(void* p, std::size_t n) noexcept { deallocate_frame(p, n); }

    static std::suspend_always initial_suspend() noexcept { return {}; }
    static final_awaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept {
        exception_ = std::current_exception();
        cancelled_ = handling_cancelled_error();
    }

    /// True when the coroutine ended by a cancellation (corio's, or a cancelled_error the
    /// user threw). Only a class derived from cancelled_error costs a rethrow to tell.
    [[nodiscard]] bool ended_cancelled() const noexcept {
        if (cancelled_) return true;
        if (exception_ == nullptr) return false;
        try {
            std::rethrow_exception(exception_);
        } catch (const cancelled_error&) {
            return true;
        } catch (...) {
            return false;
        }
    }

    void rethrow_if_failed() const {
        if (exception_) std::rethrow_exception(exception_);
    }
};

template <class T>
struct task_promise : promise_base {
    using storage = std::conditional_t<std::is_reference_v<T>, std::add_pointer_t<T>, T>;
    std::optional<storage> value_;

    task_promise() noexcept = default;
    // Sees the coroutine's parameters; for a lambda's operator(), the first is the closure.
    template <class Self, class... Args>
    explicit task_promise(const Self& self, const Args&... /*args*/) noexcept {
        note_closure(*this, self);
    }

    task<T> get_return_object() noexcept;

    template <class U = T>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        if constexpr (std::is_reference_v<T>)
            value_.emplace(std::addressof(static_cast<T>(static_cast<U&&>(v))));
        else
            value_.emplace(static_cast<U&&>(v));
    }

    T take() {
        rethrow_if_failed();
        if constexpr (std::is_reference_v<T>)
            return static_cast<T>(**value_);
        else
            return std::move(*value_);
    }
};

template <>
struct task_promise<void> : promise_base {
    task_promise() noexcept = default;
    template <class Self, class... Args>
    explicit task_promise(const Self& self, const Args&... /*args*/) noexcept {
        note_closure(*this, self);
    }
    task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() const { rethrow_if_failed(); }
};

}  // namespace detail

/// A lazy, move-only coroutine returning T. Calling the coroutine function runs nothing:
/// the body starts when the task is awaited (inside the awaiting task, sharing its
/// cancellation) or spawned (as a task of its own). A task can be awaited once.
/// @code
/// corio::task<int> fetch(int id) {
///     co_await corio::sleep(std::chrono::milliseconds(100));
///     co_return id * 2;
/// }
/// corio::task<> amain() {
///     int a = co_await fetch(1);                    // runs fetch(1) now, here
///     auto [b, c] = co_await corio::gather(fetch(2), fetch(3));
/// }
/// @endcode
template <class T>
class [[nodiscard]] task {
public:
    /// @cond CORIO_INTERNAL
    using promise_type = detail::task_promise<T>;
    /// @endcond
    /// The result type.
    using value_type = T;
    /// The coroutine handle the task owns.
    using handle_type = std::coroutine_handle<promise_type>;

    task() noexcept = default;
    /// Takes ownership of h (the coroutine machinery makes tasks this way).
    explicit task(handle_type h) noexcept : h_(h) {}
    /// Takes over other's coroutine; other becomes empty.
    task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
    /// Destroys this task's coroutine, if any, then takes over other's.
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            if (h_) h_.destroy();
            h_ = std::exchange(other.h_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() {
        if (h_) h_.destroy();
    }

    /// False for a default-constructed or moved-from task.
    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(h_); }
    /// True once the coroutine has finished (it is suspended at its end).
    [[nodiscard]] bool done() const noexcept { return h_ && h_.done(); }
    /// The coroutine handle, still owned by the task.
    [[nodiscard]] handle_type handle() const noexcept { return h_; }
    /// Gives up ownership: the caller must destroy the returned handle.
    handle_type release() noexcept { return std::exchange(h_, {}); }

    /// What `co_await task` uses: starts the body by symmetric transfer and resumes the
    /// awaiter with its result (or its exception).
    class awaiter {
    public:
        /// @cond CORIO_INTERNAL
        explicit awaiter(handle_type h) noexcept : h_(h) {}
        [[nodiscard]] bool await_ready() const noexcept { return false; }

        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) noexcept {
            auto& p = h_.promise();
            p.continuation_ = parent;
            // The child runs inside the awaiting task: it shares its cancellation node.
            if constexpr (std::is_base_of_v<detail::promise_base, Promise>) p.node_ = parent.promise().node_;
            if (detail::stack_too_deep()) {  // see stack_guard.hpp
                detail::resume_later(h_, p.node_);
                return std::noop_coroutine();
            }
            return h_;
        }

        T await_resume() { return h_.promise().take(); }
        /// @endcond

    private:
        handle_type h_;
    };

    /// Starts the task and waits for its result. Throws usage_error for an empty task or one
    /// already awaited.
    awaiter operator co_await() && { return awaiter(checked()); }
    /// As above, for a task named by an lvalue.
    awaiter operator co_await() & { return awaiter(checked()); }

private:
    handle_type checked() const {
        if (!h_) throw usage_error("corio: awaiting an empty task (moved from?)");
        if (h_.done() || h_.promise().continuation_) throw usage_error("corio: a task can be awaited only once");
        return h_;
    }

    handle_type h_{};
};

namespace detail {

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}

inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};

template <class A>
task<await_result_t<A>> wrap_awaitable(A a) {
    co_return co_await std::move(a);
}

// A callable that returns an awaitable, kept alive in the frame while its coroutine
// runs: a lambda's captures live in the closure, which `spawn([&]{...}())` would destroy
// at the end of the statement while the spawned coroutine still uses them.
template <class F>
task<await_result_t<std::invoke_result_t<F&>>> invoke_kept(F f) {
    co_return co_await f();
}

template <class F>
concept awaitable_factory = !awaitable<F> && std::is_invocable_v<F&> && awaitable<std::invoke_result_t<F&>>;

/// Any awaitable as a task: a task is taken as it is, anything else gets a small wrapper;
/// a callable returning an awaitable is called inside the task, which owns it.
template <class A>
auto make_task(A&& a) {
    using D = std::remove_cvref_t<A>;
    if constexpr (is_task<D>::value) {
        static_assert(!std::is_lvalue_reference_v<A>, "corio: pass tasks by value (std::move)");
        return D(static_cast<A&&>(a));
    } else if constexpr (awaitable_factory<D>) {
        return invoke_kept<D>(static_cast<A&&>(a));
    } else {
        return wrap_awaitable<D>(static_cast<A&&>(a));
    }
}

template <class A>
using task_for_t = decltype(make_task(std::declval<A>()));

}  // namespace detail
}  // namespace corio
