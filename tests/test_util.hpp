#pragma once
// Helpers shared by the tests.

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <string>
#include <system_error>
#include <vector>

#include <corio/corio.hpp>

inline std::string testing_join(const std::vector<std::string>& v) {
    std::string out;
    for (auto& s : v) out += s + " | ";
    return out;
}

namespace test {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// The backend the suite runs on (CORIO_BACKEND), as the loop reports it.
inline corio::backend_kind expected_backend() {
    const char* env = std::getenv("CORIO_BACKEND");
    if (env != nullptr && std::string(env) == "epoll") return corio::backend_kind::epoll;
    return corio::backend_kind::io_uring;
}

/// Collects what the loop reports instead of printing it.
struct reports {
    std::vector<corio::exception_context> items;
    corio::loop_options options(bool debug = false) {
        corio::loop_options o;
        o.debug = debug;
        o.exception_handler = [this](const corio::exception_context& c) { items.push_back(c); };
        return o;
    }
    std::size_t count(corio::report_kind k) const {
        std::size_t n = 0;
        for (auto& c : items) n += c.kind == k ? 1 : 0;
        return n;
    }
};

/// The message of an exception_ptr's exception.
inline std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "not a std::exception";
    }
}

/// Awaits f; true when it ended cancelled.
template <class T>
corio::task<bool> ends_cancelled(corio::future<T>& f) {
    try {
        co_await f;
    } catch (const corio::cancelled_error&) {
        co_return true;
    }
    co_return false;
}

inline double ms_since(clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
}

/// A non-blocking pipe, closed at the end of the scope (an end set to -1 is left alone).
struct pipe_pair {
    int rd = -1;
    int wr = -1;
    pipe_pair() {
        int fds[2];
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
        rd = fds[0];
        wr = fds[1];
    }
    pipe_pair(const pipe_pair&) = delete;
    pipe_pair& operator=(const pipe_pair&) = delete;
    /// Moves the read end to the number fd (a number just freed, to play its reuse).
    void move_read_end_to(int fd) {
        if (rd == fd) return;
        if (::dup3(rd, fd, O_CLOEXEC) != fd) throw std::system_error(errno, std::system_category(), "dup3");
        ::close(rd);
        rd = fd;
    }
    ~pipe_pair() {
        if (rd >= 0) ::close(rd);
        if (wr >= 0) ::close(wr);
    }
};

/// Both ends of a loopback TCP connection, on the current loop.
struct connected_pair {
    corio::net::tcp_stream client;
    corio::net::tcp_stream server;
};

inline corio::task<connected_pair> connect_pair() {
    auto listener = corio::net::tcp_listener::bind(corio::net::endpoint::loopback(0));
    auto accepted = corio::spawn(listener.accept());
    auto c = co_await corio::net::tcp_stream::connect(listener.local_endpoint());
    auto s = co_await accepted;
    co_return connected_pair{std::move(c), std::move(s)};
}

/// Open file descriptors of this process (a leak check: compare before and after).
inline int fd_count() {
    int n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n;
}

#if CORIO_HAS_IO_URING
/// The loop's io_uring backend, for its counters; null where the loop runs epoll.
inline corio::detail::uring_backend* uring_of(corio::event_loop& loop) {
    if (loop.io().kind() != corio::backend_kind::io_uring) return nullptr;
    return static_cast<corio::detail::uring_backend*>(&loop.io());
}

/// Plays a kernel that refuses some io_uring requests while it lives.
struct request_fault_guard {
    explicit request_fault_guard(bool (*f)(corio::detail::uring_request)) { corio::detail::uring_request_fault = f; }
    request_fault_guard(const request_fault_guard&) = delete;
    request_fault_guard& operator=(const request_fault_guard&) = delete;
    ~request_fault_guard() { corio::detail::uring_request_fault = nullptr; }
};
#endif

/// Byte i of a test stream: a pattern whose every offset can be checked.
inline char pattern(std::size_t i) { return static_cast<char>('a' + (i * 7 + i / 251) % 26); }

/// Bytes from..from+n of the test stream.
inline std::string pattern_text(std::size_t from, std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = pattern(from + i);
    return s;
}

}  // namespace test
