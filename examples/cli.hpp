#pragma once
// cli: the examples' command lines, so that each example's code stays about corio.
//
// An example declares its flags and positional arguments, each bound to a variable that
// holds its default, and hands the rest of main to run():
//
//     int main(int argc, char** argv) {
//         std::chrono::milliseconds hour{1000};
//         cli::command cmd("chores", "What an event loop buys one worker with waiting to do.");
//         cmd.flag("--hour-ms N", hour, "how long one hour lasts, in ms");
//         return cmd.run(argc, argv, [&] { ...; return 0; });
//     }
//
// run() answers --help with the usage on stdout (exit 0); rejects an unknown flag, a
// missing value, an extra argument or a bad value with a message naming it (stderr,
// exit 2); runs the body and turns an exception out of it, such as a loop that cannot
// start, into "name: what()" on stderr and exit 1 instead of an abort.
//
// Values: integers (parsed whole with std::from_chars, within the type and the given
// range), durations (a count of the duration's unit, at least 1), non-empty strings,
// corio::backend_kind (io_uring, epoll, automatic) and net::endpoint (a.b.c.d:port or
// [v6]:port, port 1..65535).

#include <corio/corio.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cli {

/// Bounds on a number, or on a duration's count: {.min = 1}, {1, 65535}.
struct range {
    long long min = std::numeric_limits<long long>::min();
    long long max = std::numeric_limits<long long>::max();
};

namespace detail {

// Each read() stores the value and returns "", or returns why `text` is not one.
template <std::integral Int>
std::string read(std::string_view text, Int& out, range r) {
    // Within both the range and the type (std::cmp_* compare signed and unsigned safely).
    const long long lo = std::cmp_less(r.min, std::numeric_limits<Int>::min())
                             ? static_cast<long long>(std::numeric_limits<Int>::min())
                             : r.min;
    const long long hi = std::cmp_greater(r.max, std::numeric_limits<Int>::max())
                             ? static_cast<long long>(std::numeric_limits<Int>::max())
                             : r.max;
    long long v = 0;
    const char* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc::invalid_argument || p != end) return "not a whole number";
    const bool below = ec == std::errc::result_out_of_range ? text.starts_with('-') : v < lo;
    if (below && hi >= std::numeric_limits<int>::max()) return "must be at least " + std::to_string(lo);
    if (below || ec == std::errc::result_out_of_range || v > hi)
        return "must be between " + std::to_string(lo) + " and " + std::to_string(hi);
    out = static_cast<Int>(v);
    return "";
}

template <class Rep, class Period>
std::string read(std::string_view text, std::chrono::duration<Rep, Period>& out, range r) {
    Rep n{};
    std::string error = read(text, n, {std::max(r.min, 1LL), r.max});  // a duration is never 0
    if (error.empty()) out = std::chrono::duration<Rep, Period>(n);
    return error;
}

inline std::string read(std::string_view text, std::string& out, range) {
    if (text.empty()) return "must not be empty";
    out = text;
    return "";
}

inline std::string read(std::string_view text, corio::backend_kind& out, range) {
    for (auto k : {corio::backend_kind::io_uring, corio::backend_kind::epoll, corio::backend_kind::automatic})
        if (text == corio::to_string(k)) {
            out = k;
            return "";
        }
    return "not a backend (io_uring, epoll or automatic)";
}

inline std::string read(std::string_view text, corio::net::endpoint& out, range) {
    try {
        out = corio::net::endpoint::parse(text);
    } catch (const std::system_error&) {
        return "not a.b.c.d:port or [v6 address]:port";
    }
    if (out.port() == 0) return "the port must be between 1 and 65535";
    return "";
}

// The default, as the help shows it ("" shows none).
template <class T>
std::string text_of(const T& v) {
    if constexpr (std::is_integral_v<T>)
        return std::to_string(v);
    else if constexpr (requires { v.count(); })
        return std::to_string(v.count());
    else if constexpr (std::is_same_v<T, std::string>)
        return v;
    else if constexpr (std::is_same_v<T, corio::backend_kind>)
        return std::string(corio::to_string(v));
    else
        return v.to_string();
}

}  // namespace detail

/// Runs body (returning int or void; void is exit 0). An exception out of it is printed
/// as "name: what()" on stderr and gives exit 1.
template <class Body>
int guard(std::string_view name, Body&& body) noexcept {
    const auto fail = [&](const char* what) {
        std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(name.size()), name.data(), what);
        return 1;
    };
    try {
        if constexpr (std::is_void_v<std::invoke_result_t<Body&>>) {
            body();
            return 0;
        } else {
            return body();
        }
    } catch (const std::exception& e) {
        return fail(e.what());
    } catch (const corio::cancelled_error& e) {  // not a std::exception, on purpose
        return fail(e.what());
    } catch (...) {
        return fail("an exception that is not a std::exception");
    }
}

class command {
public:
    /// `name` starts every message; `summary` heads the help.
    command(std::string name, std::string summary) : name_(std::move(name)), summary_(std::move(summary)) {}

    /// "--name METAVAR": a flag taking a value, as `--name V` or `--name=V`.
    template <class T>
    command& flag(std::string_view spec, T& value, std::string help, range r = {}) {
        const auto space = spec.find(' ');
        const std::string metavar(space == std::string_view::npos ? "" : spec.substr(space + 1));
        add(std::string(spec.substr(0, space)), metavar, false, value, std::move(help), r);
        return *this;
    }

    /// The next positional argument, optional (`value` keeps its default when absent).
    template <class T>
    command& arg(std::string name, T& value, std::string help, range r = {}) {
        add(std::move(name), "", true, value, std::move(help), r);
        return *this;
    }

    /// Parses the command line (see the top of this file), then runs guard(name, body).
    template <class Body>
    int run(int argc, char** argv, Body&& body) {
        if (const int rc = parse(argc, argv); rc >= 0) return rc;
        return guard(name_, body);
    }

    void print_usage(std::FILE* to) const {
        std::string line = "usage: " + name_ + " [--help]";
        std::size_t width = 6;  // "--help"
        for (const auto& o : options_) {
            line += " [" + o.shown() + "]";
            width = std::max(width, o.shown().size());
        }
        std::fprintf(to, "%s\n%s\n\n", line.c_str(), summary_.c_str());
        for (const auto& o : options_) {
            std::string help = o.help;
            if (!o.default_text.empty()) help += " (default " + o.default_text + ")";
            std::fprintf(to, "  %-*s  %s\n", static_cast<int>(width), o.shown().c_str(), help.c_str());
        }
        std::fprintf(to, "  %-*s  %s\n", static_cast<int>(width), "--help", "print this help and exit");
    }

private:
    struct option {
        std::string name;     // "--port", or a positional's name
        std::string metavar;  // "N" for "--port N"
        bool positional;
        std::string help;
        std::string default_text;
        std::function<std::string(std::string_view)> read;
        std::string shown() const { return metavar.empty() ? name : name + " " + metavar; }
    };

    template <class T>
    void add(std::string name, std::string metavar, bool positional, T& value, std::string help, range r) {
        options_.push_back({std::move(name), std::move(metavar), positional, std::move(help), detail::text_of(value),
                            [&value, r](std::string_view text) { return detail::read(text, value, r); }});
    }

    // The exit code when the program must end here (0 after --help, 2 for a bad command
    // line), -1 to go on.
    int parse(int argc, char** argv) {
        auto next_positional = options_.begin();
        for (int i = 1; i < argc; ++i) {
            const std::string_view a = argv[i];
            if (a == "--help" || a == "-h") {
                print_usage(stdout);
                return 0;
            }
            const option* o = nullptr;
            std::string_view value = a;
            if (a.starts_with("--")) {
                const auto eq = a.find('=');
                const auto name = a.substr(0, eq);
                const auto it = std::find_if(options_.begin(), options_.end(),
                                             [&](const option& x) { return !x.positional && x.name == name; });
                if (it == options_.end()) return fail("unknown option '" + std::string(name) + "'");
                o = &*it;
                if (eq != std::string_view::npos)
                    value = a.substr(eq + 1);
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return fail(o->name + " needs a value (" + o->metavar + ")");
            } else {
                next_positional =
                    std::find_if(next_positional, options_.end(), [](const option& x) { return x.positional; });
                if (next_positional == options_.end()) return fail("unexpected argument '" + std::string(a) + "'");
                o = &*next_positional++;
            }
            if (const std::string error = o->read(value); !error.empty())
                return fail(o->name + " '" + std::string(value) + "': " + error);
        }
        return -1;
    }

    int fail(const std::string& message) const {
        std::fprintf(stderr, "%s: %s\n(%s --help shows the usage)\n", name_.c_str(), message.c_str(), name_.c_str());
        return 2;
    }

    std::string name_;
    std::string summary_;
    std::vector<option> options_;
};

}  // namespace cli
