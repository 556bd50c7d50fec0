#pragma once
// What `co_await x` yields, for any awaitable x.

#include <concepts>
#include <coroutine>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio::detail {

template <class A>
concept has_member_co_await = requires(A&& a) {
    static_cast<A&&>(a).operator co_await();
};

template <class A>
concept has_free_co_await = requires(A&& a) {
    operator co_await(static_cast<A&&>(a));
};

template <class A>
decltype(auto) get_awaiter(A&& a) {
    if constexpr (has_member_co_await<A>)
        return static_cast<A&&>(a).operator co_await();
    else if constexpr (has_free_co_await<A>)
        return operator co_await(static_cast<A&&>(a));
    else
        return static_cast<A&&>(a);
}

template <class A>
using awaiter_t = decltype(get_awaiter(std::declval<A>()));

template <class A>
using await_result_t = decltype(std::declval<awaiter_t<A>&>().await_resume());

template <class A>
concept awaitable = requires {
    typename await_result_t<A>;
};

/// void results become std::monostate in tuples and vectors.
template <class T>
using non_void_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace corio::detail
