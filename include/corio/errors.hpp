#pragma once
// The exceptions corio itself throws. Operating-system failures are reported as
// std::system_error whose message names the operation.

#include <stdexcept>
#include <string>
#include <system_error>

namespace corio {

/// Thrown at a suspension point of a task that was cancelled (asyncio's CancelledError),
/// and by awaiting a cancelled future.
class cancelled_error : public std::runtime_error {
public:
    cancelled_error() : std::runtime_error("corio: operation cancelled") {}
    explicit cancelled_error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown by wait_for when the time runs out (the inner work has been cancelled and has ended).
class timeout_error : public std::runtime_error {
public:
    timeout_error() : std::runtime_error("corio: operation timed out") {}
    explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown when the API is used outside its contract (no running loop, a loop run twice
/// at once, a result read before it exists).
class usage_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// corio's own I/O error codes, in std::system_error next to the errno ones:
/// `e.code() == corio::io_errc::end_of_stream`.
enum class io_errc {
    end_of_stream = 1,  ///< the peer closed the stream before the bytes asked for arrived
    closed,             ///< a queue was closed
};

inline const std::error_category& io_category() noexcept {
    struct category final : std::error_category {
        [[nodiscard]] const char* name() const noexcept override { return "corio"; }
        [[nodiscard]] std::string message(int c) const override {
            switch (static_cast<io_errc>(c)) {
                case io_errc::end_of_stream:
                    return "end of stream";
                case io_errc::closed:
                    return "closed";
            }
            return "unknown corio error";
        }
    };
    static const category instance;
    return instance;
}

inline std::error_code make_error_code(io_errc e) noexcept { return {static_cast<int>(e), io_category()}; }

}  // namespace corio

template <>
struct std::is_error_code_enum<corio::io_errc> : std::true_type {};
