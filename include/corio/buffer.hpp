#pragma once
/// @file
/// Buffers for I/O: a pointer and a size, made from anything contiguous (std::string,
/// std::vector, std::array, std::span, a C array) or from a pointer and a size.

#include <cstddef>
#include <ranges>
#include <type_traits>

namespace corio {

namespace detail {

template <class R>
concept byte_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
    std::is_trivially_copyable_v<std::ranges::range_value_t<R>>;

}  // namespace detail

/// Memory an operation writes into.
struct mutable_buffer {
    /// The first byte.
    void* data = nullptr;
    /// The number of bytes.
    std::size_t size = 0;

    mutable_buffer() = default;
    /// n bytes at d.
    mutable_buffer(void* d, std::size_t n) noexcept : data(d), size(n) {}
    /// The bytes of a contiguous range of trivially copyable elements (a std::string,
    /// std::vector, std::array, span or C array); implicit, a buffer being a view.
    template <detail::byte_range R>
    // NOLINTNEXTLINE(bugprone-forwarding-reference-overload): R is a byte range, never a mutable_buffer
    requires(!std::is_const_v<std::remove_reference_t<std::ranges::range_reference_t<R>>>) mutable_buffer(R&& r)
    noexcept  // NOLINT(google-explicit-constructor): a buffer is a view
        : data(std::ranges::data(r)), size(std::ranges::size(r) * sizeof(std::ranges::range_value_t<R>)) {}
};

/// Memory an operation reads from.
struct const_buffer {
    /// The first byte.
    const void* data = nullptr;
    /// The number of bytes.
    std::size_t size = 0;

    const_buffer() = default;
    /// n bytes at d.
    const_buffer(const void* d, std::size_t n) noexcept : data(d), size(n) {}
    /// The same bytes, read only.
    const_buffer(mutable_buffer b) noexcept : data(b.data), size(b.size) {}  // NOLINT(google-explicit-constructor)
    /// The bytes of a contiguous range of trivially copyable elements, as for
    /// mutable_buffer; implicit.
    template <detail::byte_range R>
    const_buffer(const R& r) noexcept  // NOLINT(google-explicit-constructor)
        : data(std::ranges::data(r)), size(std::ranges::size(r) * sizeof(std::ranges::range_value_t<R>)) {}
};

}  // namespace corio
