#pragma once
// The request side of http_server: its limits and its parser, on their own so that the
// fuzzer (fuzz/http_request_fuzz.cpp) runs exactly the code the server runs.
//
// What the parser refuses, and why (RFC 9110 and RFC 9112):
//   - a request line that is not `TOKEN SP /origin-form SP HTTP/1.x`          400
//   - a header name that is not a token (this also refuses obs-fold lines)   400
//   - a header value with a control byte: NUL, bare CR, bare LF, DEL...      400 (9110 5.5)
//   - HTTP/1.1 without Host, any request with more than one, a bad Host      400 (9112 3.2)
//   - Content-Length that is not all digits, or two that disagree            400
//   - a body over the limit                                                  413
//   - Transfer-Encoding (chunked bodies are not implemented)                 501

#include <cctype>
#include <chrono>
#include <charconv>
#include <cstddef>
#include <string_view>

namespace http {

/// Every limit of the server in one place; each is a command-line option of http_server.
struct limits {
    std::size_t max_header_bytes = 8192;      // the request line and headers
    std::size_t max_body_bytes = 1 << 20;     // a request body (read and dropped)
    std::chrono::milliseconds idle{5000};     // --idle-ms: a kept-alive connection waiting for a request
    std::chrono::milliseconds header{10000};  // --header-ms: from a request's first byte to its blank line
    std::chrono::milliseconds body{10000};    // --body-ms: the whole body, however slowly it comes
    std::chrono::milliseconds write{10000};   // --write-ms: each write of a response (a client that never reads)
    std::chrono::milliseconds drain{5000};    // --drain-ms: at shutdown, in-flight requests get this long
};

struct request {
    std::string_view method;
    std::string_view target;
    bool keep_alive = true;
    std::size_t content_length = 0;
};

/// Why a request cannot be served: the status to answer with, then close.
struct error {
    int status;
    const char* reason;
};

namespace detail {

inline bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (c <= 32 || c >= 127 ||
            std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(c)) != std::string_view::npos)
            return false;
    return true;
}

// field-value: visible bytes, obs-text (0x80-0xFF), spaces and tabs; no other control byte.
inline bool is_field_value(std::string_view s) {
    for (unsigned char c : s)
        if ((c < 32 && c != '\t') || c == 127) return false;
    return true;
}

// uri-host [":" port]: a reg-name, an IPv4 address or an [IP-literal]; may be empty.
inline bool is_host(std::string_view s) {
    for (unsigned char c : s)
        if (!std::isalnum(c) &&
            std::string_view("-._~!$&'()*+,;=:[]%").find(static_cast<char>(c)) == std::string_view::npos)
            return false;
    return true;
}

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace detail

/// Parses a request head (the request line and the header lines, without the blank line
/// that ends them). Throws http::error. The views point into `head`.
inline request parse_head(std::string_view head, const limits& lim) {
    using namespace detail;
    const error bad{400, "Bad Request"};
    const auto line_end = head.find("\r\n");
    const std::string_view line = head.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) throw bad;
    request r;
    r.method = line.substr(0, sp1);
    r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(r.method) || r.target.empty() || r.target.front() != '/') throw bad;
    for (unsigned char c : r.target)
        if (c <= 32 || c >= 127) throw bad;
    if (version == "HTTP/1.1")
        r.keep_alive = true;
    else if (version == "HTTP/1.0")
        r.keep_alive = false;
    else
        throw bad;
    bool have_length = false;
    int hosts = 0;
    std::string_view rest = line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
    while (!rest.empty()) {
        const auto end = rest.find("\r\n");
        const std::string_view h = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
        const auto colon = h.find(':');
        if (colon == std::string_view::npos || !is_token(h.substr(0, colon))) throw bad;
        const std::string_view name = h.substr(0, colon);
        const std::string_view value = trim(h.substr(colon + 1));
        if (!is_field_value(value)) throw bad;
        if (iequals(name, "host")) {
            if (++hosts > 1 || !is_host(value)) throw bad;
        } else if (iequals(name, "content-length")) {
            std::size_t n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || ec != std::errc{} || p != value.data() + value.size()) throw bad;
            if (have_length && n != r.content_length) throw bad;
            if (n > lim.max_body_bytes) throw error{413, "Content Too Large"};
            r.content_length = n;
            have_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            throw error{501, "Not Implemented"};
        } else if (iequals(name, "connection")) {
            if (iequals(value, "close")) r.keep_alive = false;
            if (iequals(value, "keep-alive")) r.keep_alive = true;
        }
    }
    if (hosts == 0 && version == "HTTP/1.1") throw bad;
    return r;
}

}  // namespace http
