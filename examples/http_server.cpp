// An HTTP/1.1 server: keep-alive, a hello route and static files served with
// fs::file, robust parsing with limits, timeouts for slow and idle clients, and a
// graceful shutdown on SIGINT/SIGTERM (stop accepting, finish in-flight requests, exit 0).
//
//     http_server [--port N] [--root DIR] [--idle-ms N] [--header-ms N] [--backend io_uring|epoll]
//
//     GET /               200 "Hello, world!"
//     GET /static/<name>  the file <root>/<name>; 404 if missing
//     anything else       404 (405 for methods other than GET and HEAD)

#include <corio/corio.hpp>

#include <array>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstring>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct config {
    std::uint16_t port = 8080;
    std::string root = ".";
    std::chrono::milliseconds idle{5000};     // waiting for the next request on a kept-alive connection
    std::chrono::milliseconds header{10000};  // from a request's first byte to its last header line
    backend_kind backend = backend_kind::automatic;
};

constexpr std::size_t max_header_bytes = 8192;
constexpr std::size_t max_body_bytes = 1 << 20;

struct request {
    std::string_view method;
    std::string_view target;
    bool keep_alive = true;
    std::size_t content_length = 0;
};

// Why a request cannot be served: the status to answer with, then close.
struct http_error {
    int status;
    const char* reason;
};

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s)
        if (c <= 32 || c >= 127 ||
            std::string_view("()<>@,;:\\\"/[]?={}").find(static_cast<char>(c)) != std::string_view::npos)
            return false;
    return true;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Parses the head (request line and headers, without the final blank line).
request parse_head(std::string_view head) {
    const http_error bad{400, "Bad Request"};
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
    std::string_view rest = line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
    while (!rest.empty()) {
        const auto end = rest.find("\r\n");
        const std::string_view h = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
        const auto colon = h.find(':');
        if (colon == std::string_view::npos || !is_token(h.substr(0, colon))) throw bad;
        const std::string_view name = h.substr(0, colon);
        const std::string_view value = trim(h.substr(colon + 1));
        if (iequals(name, "content-length")) {
            std::size_t n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || ec != std::errc{} || p != value.data() + value.size()) throw bad;
            if (have_length && n != r.content_length) throw bad;
            if (n > max_body_bytes) throw http_error{413, "Content Too Large"};
            r.content_length = n;
            have_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            throw http_error{501, "Not Implemented"};
        } else if (iequals(name, "connection")) {
            if (iequals(value, "close")) r.keep_alive = false;
            if (iequals(value, "keep-alive")) r.keep_alive = true;
        }
    }
    return r;
}

std::string response_head(int status, const char* reason, std::size_t length, std::string_view type, bool keep_alive) {
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                    "\r\nServer: corio\r\nContent-Length: " + std::to_string(length) + "\r\n";
    if (!type.empty()) h.append("Content-Type: ").append(type).append("\r\n");
    h += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    return h;
}

std::string_view content_type(std::string_view path) {
    const auto dot = path.rfind('.');
    const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot);
    if (ext == ".html") return "text/html";
    if (ext == ".txt") return "text/plain";
    if (ext == ".css") return "text/css";
    if (ext == ".js") return "text/javascript";
    if (ext == ".json") return "application/json";
    if (ext == ".png") return "image/png";
    return "application/octet-stream";
}

// The open connections, so that shutdown can end the idle ones.
struct connection_registry {
    struct entry {
        net::tcp_stream* stream;
        bool busy = false;
        entry* prev = nullptr;
        entry* next = nullptr;
    };
    entry* head = nullptr;
    bool stopping = false;
    std::size_t count = 0;

    void add(entry& e) {
        e.next = head;
        if (head != nullptr) head->prev = &e;
        head = &e;
        ++count;
    }
    void remove(entry& e) {
        (e.prev != nullptr ? e.prev->next : head) = e.next;
        if (e.next != nullptr) e.next->prev = e.prev;
        --count;
    }
    // Idle connections see end of stream at once; busy ones finish their request first.
    void stop() {
        stopping = true;
        for (entry* e = head; e != nullptr; e = e->next)
            if (!e->busy) e->stream->shutdown(net::shutdown_how::receive);
    }
};

class connection {
public:
    connection(net::tcp_stream s, const config& cfg, connection_registry& reg)
        : s_(std::move(s)), cfg_(cfg), reg_(reg) {
        me_.stream = &s_;
        reg_.add(me_);
    }
    ~connection() { reg_.remove(me_); }

    task<> run() {
        try {
            while (!reg_.stopping && co_await serve_one()) {
            }
        } catch (const timeout_error&) {
            // idle or slow client: just close
        } catch (const std::system_error&) {
            // reset by the peer and the like: nothing to answer
        }
    }

private:
    // Reads more into buf_, within the deadline; false at end of stream.
    task<bool> fill(std::chrono::milliseconds limit) {
        if (buf_.size() - used_ == 0) co_return true;
        const std::size_t n =
            co_await wait_for(s_.read_some(mutable_buffer(buf_.data() + used_, buf_.size() - used_)), limit);
        used_ += n;
        co_return n > 0;
    }

    // One request and its response; false: close the connection.
    task<bool> serve_one() {
        std::size_t head_end = std::string_view::npos;
        bool first = true;
        auto deadline = std::chrono::steady_clock::now() + cfg_.header;
        for (;;) {
            head_end = std::string_view(buf_.data(), used_).find("\r\n\r\n");
            if (head_end != std::string_view::npos) break;
            if (used_ >= max_header_bytes) {
                co_await reply_error({431, "Request Header Fields Too Large"});
                co_return false;
            }
            me_.busy = used_ > 0;
            const auto limit = first && used_ == 0 ? cfg_.idle
                                                   : std::chrono::duration_cast<std::chrono::milliseconds>(
                                                         deadline - std::chrono::steady_clock::now());
            if (limit <= 0ms) throw timeout_error();
            if (!co_await fill(limit)) co_return false;  // the client went away (or shutdown)
            if (first) deadline = std::chrono::steady_clock::now() + cfg_.header;
            first = false;
        }
        me_.busy = true;
        request req;
        std::optional<http_error> refused;
        try {
            req = parse_head(std::string_view(buf_.data(), head_end));
        } catch (const http_error& e) {
            refused = e;
        }
        if (refused) {
            co_await reply_error(*refused);
            co_return false;
        }
        // Skip the body (nothing here takes one).
        std::size_t consumed = head_end + 4;
        std::size_t body_left = req.content_length;
        const std::size_t in_buf = std::min(body_left, used_ - consumed);
        consumed += in_buf;
        body_left -= in_buf;
        while (body_left > 0) {
            std::array<char, 4096> sink;
            const std::size_t n = co_await wait_for(
                s_.read_some(mutable_buffer(sink.data(), std::min(sink.size(), body_left))), cfg_.header);
            if (n == 0) co_return false;
            body_left -= n;
        }
        const bool keep_alive = req.keep_alive && !reg_.stopping;
        co_await respond(req, keep_alive);
        // Keep what came after this request (pipelining).
        std::memmove(buf_.data(), buf_.data() + consumed, used_ - consumed);
        used_ -= consumed;
        me_.busy = false;
        co_return keep_alive;
    }

    task<> respond(const request& req, bool keep_alive) {
        const bool head_only = req.method == "HEAD";
        if (req.method != "GET" && !head_only) {
            co_await send(405, "Method Not Allowed", "method not allowed\n", keep_alive, head_only);
        } else if (req.target == "/") {
            co_await send(200, "OK", "Hello, world!\n", keep_alive, head_only);
        } else if (req.target.starts_with("/static/")) {
            co_await send_file(req.target.substr(8), keep_alive, head_only);
        } else {
            co_await send(404, "Not Found", "not found\n", keep_alive, head_only);
        }
    }

    task<> send(int status, const char* reason, std::string_view body, bool keep_alive, bool head_only) {
        std::string out = response_head(status, reason, body.size(), "text/plain", keep_alive);
        if (!head_only) out += body;
        co_await s_.write_all(out);
    }

    task<> send_file(std::string_view name, bool keep_alive, bool head_only) {
        if (name.empty() || name.find("..") != std::string_view::npos || name.find('%') != std::string_view::npos ||
            name.find('?') != std::string_view::npos) {
            co_await send(404, "Not Found", "not found\n", keep_alive, head_only);
            co_return;
        }
        fs::file f;
        bool found = true;
        try {
            f = co_await fs::file::open(cfg_.root + "/" + std::string(name), fs::open_mode::read);
        } catch (const std::system_error&) {
            found = false;
        }
        if (!found) {
            co_await send(404, "Not Found", "not found\n", keep_alive, head_only);
            co_return;
        }
        const std::uint64_t size = f.size();
        co_await s_.write_all(response_head(200, "OK", size, content_type(name), keep_alive));
        if (head_only) co_return;
        std::string chunk(64 * 1024, '\0');
        for (std::uint64_t off = 0; off < size;) {
            const std::size_t n = co_await f.read_at(chunk, off);
            if (n == 0) break;  // the file shrank meanwhile: the client sees a short body
            co_await s_.write_all(const_buffer(chunk.data(), n));
            off += n;
        }
    }

    // Answers with an error, then closes gently: our side first, then whatever the client
    // still sends is read and dropped, so that the kernel does not answer it with a reset
    // that could destroy the response before the client reads it.
    task<> reply_error(const http_error& e) {
        try {
            co_await wait_for(send(e.status, e.reason, std::string(e.reason) + "\n", false, false), 1s);
            s_.shutdown(net::shutdown_how::send);
            std::array<char, 4096> sink;
            const auto until = std::chrono::steady_clock::now() + 1s;
            while (std::chrono::steady_clock::now() < until) {
                if (co_await wait_for(s_.read_some(sink), 200ms) == 0) break;
            }
        } catch (const std::exception&) {
            // the client is gone or does not read: we close anyway
        }
    }

    net::tcp_stream s_;
    const config& cfg_;
    connection_registry& reg_;
    connection_registry::entry me_;
    std::array<char, max_header_bytes> buf_{};
    std::size_t used_ = 0;
};

task<> serve(config cfg) {
    auto listener = net::tcp_listener::bind(net::endpoint::any(cfg.port));
    std::printf("http_server: listening on port %u (backend %s)\n", listener.local_endpoint().port(),
                std::string(to_string(event_loop::current().backend())).c_str());
    std::fflush(stdout);
    connection_registry reg;
    co_await with_task_group([&](task_group& g) -> task<> {
        auto acceptor = g.spawn([&]() -> task<> {
            for (;;) {
                net::tcp_stream s;
                try {
                    s = co_await listener.accept();
                } catch (const std::system_error& e) {
                    // Out of fds and the like: say so, breathe, go on.
                    std::fprintf(stderr, "http_server: %s\n", e.what());
                }
                if (!s.is_open()) {
                    co_await sleep(10ms);
                    continue;
                }
                g.spawn([](net::tcp_stream st, const config& c, connection_registry& r) -> task<> {
                    connection conn(std::move(st), c, r);
                    co_await conn.run();
                }(std::move(s), cfg, reg));
            }
        });
        const int signo = co_await corio::signal(SIGINT, SIGTERM);
        std::printf("http_server: signal %d, finishing %zu connections\n", signo, reg.count);
        std::fflush(stdout);
        acceptor.cancel();
        listener.close();
        reg.stop();
    });
    std::printf("http_server: stopped cleanly\n");
}

}  // namespace

int main(int argc, char** argv) {
    config cfg;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        const char* v = argv[i + 1];
        if (flag == "--port")
            cfg.port = static_cast<std::uint16_t>(std::atoi(v));
        else if (flag == "--root")
            cfg.root = v;
        else if (flag == "--idle-ms")
            cfg.idle = std::chrono::milliseconds(std::atoi(v));
        else if (flag == "--header-ms")
            cfg.header = std::chrono::milliseconds(std::atoi(v));
        else if (flag == "--backend" && std::string_view(v) == "epoll")
            cfg.backend = backend_kind::epoll;
        else if (flag == "--backend" && std::string_view(v) == "io_uring")
            cfg.backend = backend_kind::io_uring;
        else {
            std::fprintf(stderr,
                         "usage: http_server [--port N] [--root DIR] [--idle-ms N] [--header-ms N] [--backend "
                         "io_uring|epoll]\n");
            return 2;
        }
    }
    // Block the shutdown signals before anything starts, so one that arrives early is
    // queued for corio::signal instead of killing the process.
    block_signals(SIGINT, SIGTERM);
    try {
        loop_options options;
        options.backend = cfg.backend;
        run(serve(cfg), options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "http_server: %s\n", e.what());
        return 1;
    }
    return 0;
}
