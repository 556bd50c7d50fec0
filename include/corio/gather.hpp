#pragma once
/// @file
/// gather: run awaitables concurrently and collect their results. On the first failure
/// the others are cancelled; gather waits for them, then rethrows that failure.
/// gather_settled: every outcome, nothing thrown (asyncio return_exceptions=True).

#include <coroutine>
#include <cstddef>
#include <tuple>
#include <utility>
#include <vector>

#include <corio/detail/child_group.hpp>
#include <corio/outcome.hpp>
#include <corio/task.hpp>

namespace corio {

namespace detail {

inline constexpr const char* further_failure = "gather: a further failure (the first was rethrown)";
inline constexpr const char* settled_not_returned = "gather_settled: a failure not returned (the task was cancelled)";

template <class Children>
struct group_awaiter_base {
    Children children;

    template <class... Args>
    explicit group_awaiter_base(std::in_place_t, Args&&... args) : children(static_cast<Args&&>(args)...) {}

    static bool await_ready() noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        return children.group.start(h, true);
    }
};

template <class... Ts>
struct [[nodiscard]] gather_awaiter : group_awaiter_base<fixed_children<Ts...>> {
    using group_awaiter_base<fixed_children<Ts...>>::group_awaiter_base;

    std::tuple<non_void_t<Ts>...> await_resume() {
        auto& g = this->children.group;
        if (g.first_failed != child_group::npos) g.rethrow_reporting_others(g.first_failed, further_failure);
        return collect(std::index_sequence_for<Ts...>{});
    }

private:
    template <std::size_t... I>
    std::tuple<non_void_t<Ts>...> collect(std::index_sequence<I...>) {
        return std::tuple<non_void_t<Ts>...>(take_result<Ts>(this->children.template promise<I>())...);
    }
};

template <class T>
struct [[nodiscard]] gather_range_awaiter : group_awaiter_base<range_children<T>> {
    using group_awaiter_base<range_children<T>>::group_awaiter_base;

    std::vector<non_void_t<T>> await_resume() {
        auto& g = this->children.group;
        if (g.first_failed != child_group::npos) g.rethrow_reporting_others(g.first_failed, further_failure);
        std::vector<non_void_t<T>> out;
        out.reserve(g.count);
        for (std::size_t i = 0; i < g.count; ++i) out.push_back(take_result<T>(this->children.promise(i)));
        return out;
    }
};

template <class T, class Promise>
outcome<T> settle(Promise& p) {
    if (p.exception_) return outcome<T>(p.exception_);
    return outcome<T>(take_result<T>(p));
}

template <class... Ts>
struct [[nodiscard]] gather_settled_awaiter : group_awaiter_base<fixed_children<Ts...>> {
    using group_awaiter_base<fixed_children<Ts...>>::group_awaiter_base;

    std::tuple<outcome<Ts>...> await_resume() {
        auto& g = this->children.group;
        if (g.parent_cancelled) g.throw_parent_cancel_reporting(settled_not_returned);
        return collect(std::index_sequence_for<Ts...>{});
    }

private:
    template <std::size_t... I>
    std::tuple<outcome<Ts>...> collect(std::index_sequence<I...>) {
        return std::tuple<outcome<Ts>...>(settle<Ts>(this->children.template promise<I>())...);
    }
};

template <class T>
struct [[nodiscard]] gather_settled_range_awaiter : group_awaiter_base<range_children<T>> {
    using group_awaiter_base<range_children<T>>::group_awaiter_base;

    std::vector<outcome<T>> await_resume() {
        auto& g = this->children.group;
        if (g.parent_cancelled) g.throw_parent_cancel_reporting(settled_not_returned);
        std::vector<outcome<T>> out;
        out.reserve(g.count);
        for (std::size_t i = 0; i < g.count; ++i) out.push_back(settle<T>(this->children.promise(i)));
        return out;
    }
};

template <class R>
concept iterable = requires(R& r) {
    std::begin(r);
    std::end(r);
};

template <class R>
concept awaitable_range = iterable<R> && !awaitable<R>;

}  // namespace detail

/// gather(a, b, ...) -> std::tuple of the results (void as std::monostate).
/// The awaitables run concurrently; the first failure cancels the others, waits for them
/// and is rethrown.
/// @code
/// auto [a, b] = co_await corio::gather(fetch(1), fetch(2));  // ~100 ms, not 200
/// @endcode
template <class... Awaitables>
requires(sizeof...(Awaitables) > 0 && (!detail::awaitable_range<Awaitables> && ...)) auto gather(Awaitables&&... as) {
    return detail::gather_awaiter<detail::await_result_t<detail::task_for_t<Awaitables>>...>(
        std::in_place, detail::make_task(static_cast<Awaitables&&>(as))..., detail::group_policy::fail_fast);
}

/// gather(range) -> std::vector of the results, in the range's order.
/// @code
/// std::vector<corio::task<int>> jobs;
/// for (int i = 0; i < 10; ++i) jobs.push_back(fetch(i));
/// std::vector<int> results = co_await corio::gather(std::move(jobs));
/// @endcode
template <detail::awaitable_range Range>
auto gather(Range&& range) {
    auto tasks = detail::tasks_from_range(static_cast<Range&&>(range));
    using T = typename decltype(tasks)::value_type::value_type;
    return detail::gather_range_awaiter<T>(std::in_place, std::move(tasks), detail::group_policy::fail_fast);
}

/// gather_settled(a, b, ...) -> std::tuple<outcome<T>...>: every outcome, none thrown.
template <class... Awaitables>
requires(sizeof...(Awaitables) > 0 &&
         (!detail::awaitable_range<Awaitables> && ...)) auto gather_settled(Awaitables&&... as) {
    return detail::gather_settled_awaiter<detail::await_result_t<detail::task_for_t<Awaitables>>...>(
        std::in_place, detail::make_task(static_cast<Awaitables&&>(as))..., detail::group_policy::settle);
}

/// gather_settled(range) -> std::vector<outcome<T>>.
template <detail::awaitable_range Range>
auto gather_settled(Range&& range) {
    auto tasks = detail::tasks_from_range(static_cast<Range&&>(range));
    using T = typename decltype(tasks)::value_type::value_type;
    return detail::gather_settled_range_awaiter<T>(std::in_place, std::move(tasks), detail::group_policy::settle);
}

}  // namespace corio
