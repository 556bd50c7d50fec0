#pragma once
/// @file
/// when_any: the first awaitable to finish wins; the others are cancelled and awaited
/// before when_any returns. A winner that failed has its exception rethrown.

#include <cstddef>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <corio/gather.hpp>

namespace corio {

/// when_any(range)'s result: which element won, and its value.
template <class T>
struct when_any_result {
    /// The winner's position in the range.
    std::size_t index;
    /// The winner's value (std::monostate for void).
    detail::non_void_t<T> value;
};

namespace detail {

inline constexpr const char* loser_failed = "when_any: a cancelled loser failed";

template <class... Ts>
struct [[nodiscard]] when_any_awaiter : group_awaiter_base<fixed_children<Ts...>> {
    using group_awaiter_base<fixed_children<Ts...>>::group_awaiter_base;
    using result_type = std::variant<non_void_t<Ts>...>;

    /// A variant whose index() is the winner's position.
    result_type await_resume() { return pick(std::index_sequence_for<Ts...>{}); }

private:
    template <std::size_t... I>
    result_type pick(std::index_sequence<I...>) {
        auto& g = this->children.group;
        const std::size_t w = g.first_done;
        g.rethrow_reporting_others(w, loser_failed);
        std::optional<result_type> out;
        ((I == w ? (void)out.emplace(std::in_place_index<I>, take_result<Ts>(this->children.template promise<I>()))
                 : void()),
         ...);
        return std::move(*out);
    }
};

template <class T>
struct [[nodiscard]] when_any_range_awaiter : group_awaiter_base<range_children<T>> {
    using group_awaiter_base<range_children<T>>::group_awaiter_base;

    bool await_ready() const {
        if (this->children.group.count == 0) throw usage_error("corio: when_any of an empty range");
        return false;
    }

    when_any_result<T> await_resume() {
        auto& g = this->children.group;
        const std::size_t w = g.first_done;
        g.rethrow_reporting_others(w, loser_failed);
        return when_any_result<T>{w, take_result<T>(this->children.promise(w))};
    }
};

}  // namespace detail

/// when_any(a, b, ...) -> std::variant of the results: index() says which finished first.
/// The others are cancelled and awaited before it returns; a winner that failed has its
/// exception rethrown.
/// @code
/// auto first = co_await corio::when_any(fetch(1), corio::sleep(std::chrono::seconds(1)));
/// if (first.index() == 0) use(std::get<0>(first));
/// @endcode
template <class... Awaitables>
requires(sizeof...(Awaitables) > 0 && (!detail::awaitable_range<Awaitables> && ...)) auto when_any(Awaitables&&... as) {
    return detail::when_any_awaiter<detail::await_result_t<detail::task_for_t<Awaitables>>...>(
        std::in_place, detail::make_task(static_cast<Awaitables&&>(as))..., detail::group_policy::first);
}

/// when_any(range) -> when_any_result{index, value}: the element that finished first.
template <detail::awaitable_range Range>
auto when_any(Range&& range) {
    auto tasks = detail::tasks_from_range(static_cast<Range&&>(range));
    using T = typename decltype(tasks)::value_type::value_type;
    return detail::when_any_range_awaiter<T>(std::in_place, std::move(tasks), detail::group_policy::first);
}

}  // namespace corio
