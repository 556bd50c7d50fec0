#pragma once
/// @file
/// outcome<T>: a value or the exception that took its place (gather_settled's element).

#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include <corio/detail/awaitable_traits.hpp>
#include <corio/errors.hpp>

namespace corio {

/// A value of type T, or the exception that took its place: what gather_settled yields
/// for each child.
/// @code
/// auto [a, b] = co_await corio::gather_settled(fetch(1), fetch(2));
/// if (a) use(a.value());                   // a has a value
/// else if (a.cancelled()) { /* ... */ }    // or a cancellation, or another failure in a.error()
/// @endcode
template <class T>
class outcome {
public:
    /// T, or std::monostate for void.
    using value_type = detail::non_void_t<T>;

    /// An outcome holding v.
    explicit outcome(value_type v) : v_(std::in_place_index<0>, std::move(v)) {}
    /// An outcome holding the failure e.
    explicit outcome(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {}

    /// True when it holds a value.
    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    /// True when it holds a failure.
    [[nodiscard]] bool has_error() const noexcept { return v_.index() == 1; }
    /// has_value().
    explicit operator bool() const noexcept { return has_value(); }

    /// The value, or rethrows the failure.
    value_type& value() & {
        rethrow_if_error();
        return std::get<0>(v_);
    }
    /// The value, or rethrows the failure.
    const value_type& value() const& {
        rethrow_if_error();
        return std::get<0>(v_);
    }
    /// The value, moved out, or rethrows the failure.
    value_type&& value() && {
        rethrow_if_error();
        return std::get<0>(std::move(v_));
    }

    /// The failure (nullptr when there is a value).
    [[nodiscard]] std::exception_ptr error() const noexcept {
        return has_error() ? std::get<1>(v_) : std::exception_ptr{};
    }

    /// True when the failure is a cancellation.
    [[nodiscard]] bool cancelled() const noexcept {
        if (!has_error()) return false;
        try {
            std::rethrow_exception(std::get<1>(v_));
        } catch (const cancelled_error&) {
            return true;
        } catch (...) {
            return false;
        }
    }

private:
    void rethrow_if_error() const {
        if (has_error()) std::rethrow_exception(std::get<1>(v_));
    }
    std::variant<value_type, std::exception_ptr> v_;
};

}  // namespace corio
