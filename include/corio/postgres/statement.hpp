#pragma once
/// @file
/// corio::pg::statement: a query and its parameters ($1, $2...), converted to PostgreSQL's
/// text format when it is made, so that it owns everything it sends.

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::pg {

/// @cond CORIO_INTERNAL
namespace detail {

template <class>
inline constexpr bool unsupported_param_v = false;

template <class T>
std::optional<std::string> to_text(const T& v) {
    if constexpr (std::is_same_v<T, std::nullptr_t> || std::is_same_v<T, std::nullopt_t>) {
        return std::nullopt;
    } else if constexpr (requires {
                             v.has_value();
                             *v;
                         }) {  // std::optional: NULL when empty
        if (!v.has_value()) return std::nullopt;
        return to_text(*v);
    } else if constexpr (std::is_same_v<T, bool>) {
        return std::string(v ? "true" : "false");
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        return std::string(std::string_view(v));
    } else if constexpr (std::is_arithmetic_v<T>) {
        char buf[64];  // the shortest text that reads back as the same number
        const auto res = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, res.ptr);
    } else {
        static_assert(unsupported_param_v<T>,
                      "corio::pg::statement: a parameter must be arithmetic, bool, a string, nullptr, std::nullopt "
                      "or a std::optional of one");
        return std::nullopt;
    }
}

}  // namespace detail
/// @endcond

/// A query with its parameters, each sent as text (NULL for nullptr, std::nullopt or an
/// empty std::optional); what connection::query and connection::pipeline run.
/// @code
/// corio::pg::statement s("INSERT INTO t(a, b) VALUES ($1, $2)", 42, std::optional<std::string>());
/// @endcode
class statement {
public:
    /// The query `sql` ($1, $2... for the parameters) with `args` as its parameters.
    template <class... Args>
    explicit statement(std::string sql, const Args&... args) : sql_(std::move(sql)) {
        params_.reserve(sizeof...(Args));
        (params_.push_back(detail::to_text(args)), ...);
    }

    /// The query text.
    [[nodiscard]] const std::string& sql() const noexcept { return sql_; }
    /// The parameters in text format; std::nullopt is NULL.
    [[nodiscard]] const std::vector<std::optional<std::string>>& params() const noexcept { return params_; }

private:
    std::string sql_;
    std::vector<std::optional<std::string>> params_;
};

}  // namespace corio::pg
