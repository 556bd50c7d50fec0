#pragma once
// outcome<T>: a value or the exception that took its place (gather_settled's element).

#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include <corio/detail/awaitable_traits.hpp>
#include <corio/errors.hpp>

namespace corio {

template <class T>
class outcome {
public:
    using value_type = detail::non_void_t<T>;

    explicit outcome(value_type v) : v_(std::in_place_index<0>, std::move(v)) {}
    explicit outcome(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {}

    [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
    [[nodiscard]] bool has_error() const noexcept { return v_.index() == 1; }
    explicit operator bool() const noexcept { return has_value(); }

    /// The value, or rethrows the failure.
    value_type& value() & {
        rethrow_if_error();
        return std::get<0>(v_);
    }
    const value_type& value() const& {
        rethrow_if_error();
        return std::get<0>(v_);
    }
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
