#pragma once
/// @file
/// net::endpoint (an IPv4 or IPv6 address and a port) and net::resolve (host names,
/// through getaddrinfo on the thread pool: the loop never blocks on DNS).

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <corio/task.hpp>
#include <corio/thread_pool.hpp>

namespace corio::detail {

/// text in single quotes for an error message, with its control bytes (a NUL above all)
/// and backslashes escaped C-style, so that the message prints and says what was given.
inline std::string quote_for_message(std::string_view text) {
    std::string out = "'";
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\\') {
            out += "\\\\";
        } else if (u < 0x20 || u == 0x7f) {
            constexpr const char* hex = "0123456789abcdef";
            out += "\\x";
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 0xf]);
        } else {
            out.push_back(c);
        }
    }
    out.push_back('\'');
    return out;
}

/// The end of an error message about text that holds a NUL byte (which the C functions
/// underneath would take for its end).
inline const char* nul_byte_note(std::string_view text) noexcept {
    return text.find('\0') != std::string_view::npos ? " (it holds a NUL byte)" : "";
}

}  // namespace corio::detail

namespace corio::net {

/// An IPv4 or IPv6 address and a port: a value type, copied freely.
/// @code
/// auto ep = corio::net::endpoint::parse("127.0.0.1:8080");
/// auto any = corio::net::endpoint::any(0);  // 0.0.0.0, any free port
/// std::string text = ep.to_string();        // "127.0.0.1:8080"
/// @endcode
class endpoint {
public:
    /// 0.0.0.0:0
    endpoint() noexcept { v4_.sin_family = AF_INET; }

    /// A numeric address ("127.0.0.1", "::1") and a port; throws std::system_error
    /// (EINVAL) naming the address when it is not one.
    endpoint(std::string_view address, std::uint16_t port) : endpoint() {
        if (!set_address(address, port))
            throw std::system_error(EINVAL, std::system_category(),
                                    "corio: net::endpoint: " + detail::quote_for_message(address) +
                                        " is not an IPv4 or IPv6 address" + detail::nul_byte_note(address));
    }

    /// "127.0.0.1:8080", "[::1]:8080". Throws std::system_error (EINVAL) naming the
    /// text when it is malformed; host names need resolve().
    static endpoint parse(std::string_view text) {
        endpoint ep;
        if (!ep.parse_into(text))
            throw std::system_error(EINVAL, std::system_category(),
                                    "corio: net::endpoint::parse: " + detail::quote_for_message(text) +
                                        " is not 'a.b.c.d:port' or '[v6 address]:port'" + detail::nul_byte_note(text));
        return ep;
    }

    /// 127.0.0.1 and port.
    static endpoint loopback(std::uint16_t port) { return {"127.0.0.1", port}; }
    /// ::1 and port.
    static endpoint loopback_v6(std::uint16_t port) { return {"::1", port}; }
    /// 0.0.0.0 (every IPv4 address) and port: for binding.
    static endpoint any(std::uint16_t port) { return {"0.0.0.0", port}; }
    /// :: (every IPv6 address) and port: for binding.
    static endpoint any_v6(std::uint16_t port) { return {"::", port}; }

    /// From a socket address the kernel filled in.
    static endpoint from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
        endpoint ep;
        if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))
            std::memcpy(&ep.v6_, sa, sizeof(sockaddr_in6));
        else if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in))
            std::memcpy(&ep.v4_, sa, sizeof(sockaddr_in));
        return ep;
    }

    /// True for an IPv6 address.
    [[nodiscard]] bool is_v6() const noexcept { return v4_.sin_family == AF_INET6; }
    /// AF_INET or AF_INET6.
    [[nodiscard]] int family() const noexcept { return v4_.sin_family; }
    /// The port, in host byte order.
    [[nodiscard]] std::uint16_t port() const noexcept { return ntohs(is_v6() ? v6_.sin6_port : v4_.sin_port); }
    /// Replaces the port, keeping the address.
    void set_port(std::uint16_t p) noexcept { (is_v6() ? v6_.sin6_port : v4_.sin_port) = htons(p); }

    /// The address alone: "127.0.0.1", "::1".
    [[nodiscard]] std::string address() const {
        char text[INET6_ADDRSTRLEN] = {};
        if (is_v6())
            ::inet_ntop(AF_INET6, &v6_.sin6_addr, text, sizeof text);
        else
            ::inet_ntop(AF_INET, &v4_.sin_addr, text, sizeof text);
        return text;
    }
    /// "127.0.0.1:8080", "[::1]:8080": what parse() reads.
    [[nodiscard]] std::string to_string() const {
        // Appended piece by piece: g++ 12 at -O3 sees `"[" + address() + "]:" + port` as
        // overlapping memcpys and fails -Werror=restrict (a false positive, GCC PR 105651,
        // google/googletest#4108), and a header must build under its users' -Werror.
        const std::string addr = address();
        const std::string port_text = std::to_string(port());
        std::string out;
        out.reserve(addr.size() + port_text.size() + 3);
        if (is_v6()) out.push_back('[');
        out.append(addr);
        if (is_v6()) out.push_back(']');
        out.push_back(':');
        out.append(port_text);
        return out;
    }

    /// The socket address, for bind(2), connect(2) and the like.
    [[nodiscard]] const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&v6_); }
    /// The length of the socket address data() points at.
    [[nodiscard]] socklen_t size() const noexcept {
        return is_v6() ? socklen_t{sizeof(sockaddr_in6)} : socklen_t{sizeof(sockaddr_in)};
    }

    friend bool operator==(const endpoint& a, const endpoint& b) noexcept {
        if (a.family() != b.family() || a.port() != b.port()) return false;
        return a.is_v6() ? std::memcmp(&a.v6_.sin6_addr, &b.v6_.sin6_addr, sizeof(in6_addr)) == 0
                         : a.v4_.sin_addr.s_addr == b.v4_.sin_addr.s_addr;
    }
    friend std::ostream& operator<<(std::ostream& os, const endpoint& ep) { return os << ep.to_string(); }

private:
    bool set_address(std::string_view address, std::uint16_t port) noexcept {
        char text[INET6_ADDRSTRLEN] = {};
        if (address.empty() || address.size() >= sizeof text) return false;
        // inet_pton reads a C string: "1.2.3.4\0junk" would be taken for 1.2.3.4.
        if (address.find('\0') != std::string_view::npos) return false;
        std::memcpy(text, address.data(), address.size());
        if (::inet_pton(AF_INET, text, &v4_.sin_addr) == 1) {
            v4_.sin_family = AF_INET;
            v4_.sin_port = htons(port);
            return true;
        }
        sockaddr_in6 v6{};
        if (::inet_pton(AF_INET6, text, &v6.sin6_addr) == 1) {
            v6.sin6_family = AF_INET6;
            v6.sin6_port = htons(port);
            v6_ = v6;
            return true;
        }
        return false;
    }

    bool parse_into(std::string_view text) noexcept {
        std::string_view host;
        std::string_view port_text;
        if (!text.empty() && text.front() == '[') {
            const auto close = text.find(']');
            if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
            host = text.substr(1, close - 1);
            port_text = text.substr(close + 2);
            if (host.find(':') == std::string_view::npos) return false;  // brackets are for IPv6 only
        } else {
            const auto colon = text.rfind(':');
            if (colon == std::string_view::npos) return false;
            host = text.substr(0, colon);
            port_text = text.substr(colon + 1);
            if (host.find(':') != std::string_view::npos) return false;  // IPv6 needs brackets
        }
        unsigned port = 0;
        const char* end = port_text.data() + port_text.size();
        auto [p, ec] = std::from_chars(port_text.data(), end, port);
        if (port_text.empty() || ec != std::errc{} || p != end || port > 65535) return false;
        return set_address(host, static_cast<std::uint16_t>(port));
    }

    union {
        sockaddr_in v4_;
        sockaddr_in6 v6_{};
    };
};

/// getaddrinfo's errors (EAI_*) as a std::error_category.
inline const std::error_category& resolve_category() noexcept {
    struct category final : std::error_category {
        [[nodiscard]] const char* name() const noexcept override { return "resolve"; }
        [[nodiscard]] std::string message(int c) const override { return ::gai_strerror(c); }
    };
    static const category instance;
    return instance;
}

/// The endpoints of host:port (asyncio getaddrinfo), IPv4 and IPv6, in getaddrinfo's
/// order. Runs getaddrinfo on the default thread pool. An unknown host throws
/// std::system_error in resolve_category() naming the host.
inline task<std::vector<endpoint>> resolve(std::string host, std::uint16_t port) {
    // getaddrinfo reads a C string: "localhost\0.example" would be taken for localhost.
    if (host.find('\0') != std::string::npos)
        throw std::system_error(
            EINVAL, std::system_category(),
            "corio: net::resolve(" + detail::quote_for_message(host) + "): a host name cannot hold a NUL byte");
    // NOLINTNEXTLINE(cppcoreguidelines-avoid-reference-coroutine-parameters): a plain function, not a coroutine
    auto lookup = [](const std::string& name, std::uint16_t p) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        addrinfo* list = nullptr;
        const std::string service = std::to_string(p);
        const int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &list);
        if (rc != 0) {
            const std::string what = "corio: net::resolve(" + detail::quote_for_message(name) + ")";
            if (rc == EAI_SYSTEM) throw std::system_error(errno, std::system_category(), what);
            throw std::system_error(rc, resolve_category(), what);
        }
        std::vector<endpoint> out;
        for (addrinfo* a = list; a != nullptr; a = a->ai_next) {
            const endpoint ep = endpoint::from_sockaddr(a->ai_addr, a->ai_addrlen);
            bool seen = false;
            for (auto& e : out) seen = seen || e == ep;
            if (!seen) out.push_back(ep);
        }
        ::freeaddrinfo(list);
        return out;
    };
    co_return co_await to_thread(lookup, host, port);
}

}  // namespace corio::net
