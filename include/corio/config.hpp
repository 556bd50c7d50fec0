#pragma once
/// @file
/// Feature detection and assertions shared by every corio header.

#include <cstdio>
#include <cstdlib>
#include <version>
#if __has_include(<source_location>)
#include <source_location>
#endif

// CORIO_HAS_IO_URING: 1 compiles the io_uring backend (link -luring), 0 only epoll.
// The CMake target and corio.pc set it from what they found; a plain compiler command
// gets 1 where <liburing.h> is installed. Define it to 0 to build without liburing.
#ifndef CORIO_HAS_IO_URING
#if __has_include(<liburing.h>)
#define CORIO_HAS_IO_URING 1
#else
#define CORIO_HAS_IO_URING 0
#endif
#endif

/// @cond CORIO_INTERNAL
#if defined(__clang__) || defined(__GNUC__)
#define CORIO_LIKELY(x) __builtin_expect(!!(x), 1)
#define CORIO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CORIO_LIKELY(x) (x)
#define CORIO_UNLIKELY(x) (x)
#endif
/// @endcond

namespace corio::detail {

/// Built without NDEBUG: the checks of the loop's debug mode that cost nothing on the
/// common path (a spawned lambda coroutine that borrows its closure) are on as well.
#ifdef NDEBUG
inline constexpr bool debug_build = false;
#else
inline constexpr bool debug_build = true;
#endif

[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line) noexcept {
    std::fprintf(stderr, "corio: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    std::abort();
}

}  // namespace corio::detail

/// Checks an invariant of corio itself (never user input: that gets an exception).
#define CORIO_ASSERT(expr) ((expr) ? void(0) : ::corio::detail::assertion_failed(#expr, __FILE__, __LINE__))

namespace corio {

#if defined(__cpp_lib_source_location)
/// std::source_location where the standard library has it (a class of the same shape
/// otherwise): where a task was spawned, for names and reports.
using source_location = std::source_location;
#else
// clang 14 with libstdc++ has no std::source_location (it lacks the builtin behind it);
// the older builtins give the same file and line.
class source_location {
public:
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             const char* function = __builtin_FUNCTION(),
                                             unsigned line = __builtin_LINE()) noexcept {
        source_location s;
        s.file_ = file;
        s.function_ = function;
        s.line_ = line;
        return s;
    }
    constexpr source_location() noexcept = default;
    [[nodiscard]] constexpr const char* file_name() const noexcept { return file_; }
    [[nodiscard]] constexpr const char* function_name() const noexcept { return function_; }
    [[nodiscard]] constexpr unsigned line() const noexcept { return line_; }
    [[nodiscard]] constexpr unsigned column() const noexcept { return 0; }

private:
    const char* file_ = "";
    const char* function_ = "";
    unsigned line_ = 0;
};
#endif

}  // namespace corio
