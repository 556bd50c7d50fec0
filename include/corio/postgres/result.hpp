#pragma once
/// @file
/// corio::pg::result, row and value: what a query returns, read in libpq's text format.
/// `res[0][0].as<int>()`, `row["name"].as<std::string>()`, `value.is_null()`,
/// `std::optional<T>` for a column that may be NULL.

#include <libpq-fe.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include <corio/postgres/error.hpp>

namespace corio::pg {

/// @cond CORIO_INTERNAL
namespace detail {

template <class T>
inline constexpr bool is_optional_v = false;
template <class T>
inline constexpr bool is_optional_v<std::optional<T>> = true;

template <class>
inline constexpr bool unsupported_type_v = false;

struct result_deleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};

}  // namespace detail
/// @endcond

/// One field of a row: a view into its result, valid while the result lives.
class value {
public:
    /// The field at (row, column) of r.
    value(const PGresult* r, int row, int column) noexcept : r_(r), row_(row), column_(column) {}

    /// True for SQL NULL.
    [[nodiscard]] bool is_null() const noexcept { return PQgetisnull(r_, row_, column_) != 0; }
    /// The field as the server wrote it (text format); empty for NULL.
    [[nodiscard]] std::string_view text() const noexcept {
        return {PQgetvalue(r_, row_, column_), static_cast<std::size_t>(PQgetlength(r_, row_, column_))};
    }
    /// The name of the field's column.
    [[nodiscard]] std::string_view column_name() const noexcept { return PQfname(r_, column_); }

    /// The field converted to T: an integer or floating-point type, bool, std::string,
    /// std::string_view (into the result), or std::optional of one of those (nullopt for
    /// NULL). A NULL read as anything but an optional, or text that does not convert
    /// (an out-of-range number, "abc" as int), throws pg::error with step "value".
    template <class T>
    [[nodiscard]] T as() const {
        if constexpr (detail::is_optional_v<T>) {
            if (is_null()) return std::nullopt;
            return as<typename T::value_type>();
        } else {
            if (is_null()) fail("is NULL (read it as a std::optional)");
            const std::string_view t = text();
            if constexpr (std::is_same_v<T, std::string>) {
                return std::string(t);
            } else if constexpr (std::is_same_v<T, std::string_view>) {
                return t;
            } else if constexpr (std::is_same_v<T, bool>) {
                if (t == "t" || t == "true") return true;
                if (t == "f" || t == "false") return false;
                fail("is not a boolean");
            } else if constexpr (std::is_arithmetic_v<T>) {
                T out{};
                const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
                if (ec == std::errc::result_out_of_range) fail("is out of range for the type asked for");
                if (ec != std::errc() || end != t.data() + t.size()) fail("is not a number of the type asked for");
                return out;
            } else {
                static_assert(detail::unsupported_type_v<T>,
                              "corio::pg::value::as<T>: T must be arithmetic, bool, std::string, std::string_view "
                              "or a std::optional of one");
            }
        }
    }

private:
    [[noreturn]] void fail(const char* why) const {
        error::fields f;
        f.step = "value";
        f.message = "column \"" + std::string(column_name()) + "\" of row " + std::to_string(row_) + " ('" +
                    std::string(text().substr(0, 40)) + "') " + why;
        throw error(std::move(f));
    }

    const PGresult* r_;
    int row_;
    int column_;
};

/// One row of a result: a view, valid while the result lives.
class row {
public:
    /// Row `index` of r.
    row(const PGresult* r, int index) noexcept : r_(r), index_(index) {}

    /// The field in column i (0-based).
    [[nodiscard]] value operator[](int i) const {
        if (i < 0 || i >= size()) throw std::out_of_range("corio::pg::row: no column " + std::to_string(i));
        return {r_, index_, i};
    }
    /// The field in the column named `name`; std::out_of_range when there is none.
    [[nodiscard]] value operator[](std::string_view name) const {
        const int i = PQfnumber(r_, std::string(name).c_str());
        if (i < 0) throw std::out_of_range("corio::pg::row: no column named \"" + std::string(name) + "\"");
        return {r_, index_, i};
    }
    /// The number of columns.
    [[nodiscard]] int size() const noexcept { return PQnfields(r_); }
    /// This row's index in its result.
    [[nodiscard]] int index() const noexcept { return index_; }

private:
    const PGresult* r_;
    int index_;
};

/// The result of one query: its rows (in text format), columns, and command tag. Owns the
/// libpq result; rows and values are views into it. Move-only.
/// @code
/// corio::pg::result r = co_await conn.query("SELECT id, name FROM users WHERE id > $1", 10);
/// for (corio::pg::row row : r) std::printf("%d %s\n", row[0].as<int>(), row["name"].as<std::string>().c_str());
/// @endcode
class result {
public:
    /// An empty result (no rows, no columns).
    result() = default;
    /// Takes ownership of r (may be null).
    explicit result(PGresult* r) noexcept : r_(r) {}

    /// The number of rows.
    [[nodiscard]] int size() const noexcept { return r_ ? PQntuples(r_.get()) : 0; }
    /// True when there are no rows.
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    /// The number of columns.
    [[nodiscard]] int columns() const noexcept { return r_ ? PQnfields(r_.get()) : 0; }
    /// The name of column i.
    [[nodiscard]] std::string_view column_name(int i) const {
        if (i < 0 || i >= columns()) throw std::out_of_range("corio::pg::result: no column " + std::to_string(i));
        return PQfname(r_.get(), i);
    }
    /// Row i (0-based).
    [[nodiscard]] row operator[](int i) const {
        if (i < 0 || i >= size()) throw std::out_of_range("corio::pg::result: no row " + std::to_string(i));
        return {r_.get(), i};
    }
    /// Rows changed by an INSERT, UPDATE, DELETE... (or returned by a SELECT); 0 when the
    /// command says none.
    [[nodiscard]] std::int64_t affected_rows() const noexcept {
        if (!r_) return 0;
        const std::string_view t = PQcmdTuples(r_.get());
        std::int64_t n = 0;
        std::from_chars(t.data(), t.data() + t.size(), n);
        return n;
    }
    /// The command tag: "SELECT 3", "INSERT 0 1", "CREATE TABLE"...
    [[nodiscard]] std::string_view command_tag() const noexcept { return r_ ? PQcmdStatus(r_.get()) : ""; }
    /// The libpq result, still owned by this object.
    [[nodiscard]] PGresult* native_handle() const noexcept { return r_.get(); }

    /// Iterates over the rows.
    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;  ///< a forward iterator
        using value_type = row;                               ///< yields rows
        using difference_type = std::ptrdiff_t;               ///< row distance
        using pointer = void;                                 ///< rows are made on the fly
        using reference = row;                                ///< by value

        iterator() = default;
        /// At row i of r.
        iterator(const PGresult* r, int i) noexcept : r_(r), i_(i) {}
        /// The row here.
        row operator*() const noexcept { return {r_, i_}; }
        /// The next row.
        iterator& operator++() noexcept {
            ++i_;
            return *this;
        }
        /// The next row (postfix).
        iterator operator++(int) noexcept {
            iterator old = *this;
            ++i_;
            return old;
        }
        /// Same row of the same result.
        bool operator==(const iterator& o) const noexcept { return r_ == o.r_ && i_ == o.i_; }

    private:
        const PGresult* r_ = nullptr;
        int i_ = 0;
    };
    /// The first row.
    [[nodiscard]] iterator begin() const noexcept { return {r_.get(), 0}; }
    /// Past the last row.
    [[nodiscard]] iterator end() const noexcept { return {r_.get(), size()}; }

private:
    std::unique_ptr<PGresult, detail::result_deleter> r_;
};

}  // namespace corio::pg
