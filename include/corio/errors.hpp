#pragma once
/// @file
/// The exceptions corio itself throws. Operating-system failures are reported as
/// std::system_error whose message names the operation.

#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace corio {

/// Thrown at a suspension point of a task that was cancelled (asyncio's CancelledError),
/// and by awaiting a cancelled future.
///
/// Deliberately not a std::exception (asyncio made CancelledError a BaseException for the
/// same reason, bpo-32528; glibc's abi::__forced_unwind and boost::thread_interrupted are
/// the C++ precedents): ordinary error handling, `catch (const std::exception&)`, must not
/// swallow a cancellation. Catch it by name to clean up, and rethrow it; `catch (...)`
/// still sees it.
class cancelled_error {
public:
    cancelled_error() noexcept = default;
    /// `what` must outlive the exception (a string literal).
    explicit cancelled_error(const char* what) noexcept : what_(what) {}
    /// The message: "corio: operation cancelled" unless one was given.
    [[nodiscard]] const char* what() const noexcept { return what_; }

private:
    const char* what_ = "corio: operation cancelled";
};

/// Thrown by wait_for when the time runs out (the inner work has been cancelled and has ended).
class timeout_error : public std::runtime_error {
public:
    timeout_error() : std::runtime_error("corio: operation timed out") {}
    /// With a message of its own.
    explicit timeout_error(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown when the API is used outside its contract (no running loop, a loop run twice
/// at once, a result read before it exists).
class usage_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// Every failure of a task group, in the order they happened (asyncio's and trio's
/// ExceptionGroup). Thrown by `with_task_group(body, group_errors::all)`; the default
/// `with_task_group(body)` rethrows the first failure itself and reports the others.
class exception_group : public std::exception {
public:
    /// A group of these failures, in this order; what() lists their messages.
    // NOLINTNEXTLINE(bugprone-throw-keyword-missing): clang-tidy 16 takes the errors_ member for a lost throw
    explicit exception_group(std::vector<std::exception_ptr> errors) : errors_(std::move(errors)) {
        what_ = "corio: " + std::to_string(errors_.size()) + (errors_.size() == 1 ? " error" : " errors") +
                " in a task group";
        const char* sep = ": ";
        for (const auto& e : errors_) {
            what_ += sep;
            sep = "; ";
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                what_ += x.what();
            } catch (...) {
                what_ += "unknown exception";
            }
        }
    }
    /// How many failures, and each one's message.
    [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }
    /// The failures, first first.
    [[nodiscard]] const std::vector<std::exception_ptr>& exceptions() const noexcept { return errors_; }
    /// How many failures.
    [[nodiscard]] std::size_t size() const noexcept { return errors_.size(); }
    /// Rethrows the first failure as itself.
    [[noreturn]] void rethrow_first() const { std::rethrow_exception(errors_.front()); }

private:
    std::vector<std::exception_ptr> errors_;
    std::string what_;
};

/// corio's own I/O error codes, in std::system_error next to the errno ones:
/// `e.code() == corio::io_errc::end_of_stream`.
enum class io_errc {
    end_of_stream = 1,  ///< the peer closed the stream before the bytes asked for arrived
    closed,             ///< a queue was closed
};

/// The error category of io_errc ("corio").
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

/// An error code of io_category(): lets an io_errc compare with std::error_code.
inline std::error_code make_error_code(io_errc e) noexcept { return {static_cast<int>(e), io_category()}; }

}  // namespace corio

template <>
struct std::is_error_code_enum<corio::io_errc> : std::true_type {};
