// An HTTP/1.1 server, hardened against clients that misbehave: keep-alive, a hello route
// and static files served with fs::file; strict parsing (http_request.hpp); limits on
// header size and body size; deadlines for an idle connection, for a request's headers,
// for its whole body and for each write of the answer; and a bounded graceful shutdown on
// SIGINT/SIGTERM (stop accepting, close idle connections, give in-flight requests the
// drain time, then cancel them; a second signal cancels them at once; exit 0).
//
//     http_server --help      every option, with its default (http::limits)
//
//     GET /               200 "Hello, world!"
//     GET /static/<name>  the file <root>/<name>; 404 if missing or not a regular file
//     anything else       404 (405 for methods other than GET and HEAD)

#include <corio/corio.hpp>

#include <array>
#include <charconv>
#include <csignal>
#include <cstring>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli.hpp"
#include "http_request.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct config {
    std::uint16_t port = 8080;
    std::string root = ".";
    http::limits lim;
    backend_kind backend = backend_kind::automatic;
};

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

// The open connections, so that shutdown can end the idle ones and knows when all are gone.
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
    event all_closed;  // set once stopping and no connection is left

    void add(entry& e) {
        e.next = head;
        if (head != nullptr) head->prev = &e;
        head = &e;
        ++count;
    }
    void remove(entry& e) {
        (e.prev != nullptr ? e.prev->next : head) = e.next;
        if (e.next != nullptr) e.next->prev = e.prev;
        if (--count == 0 && stopping) all_closed.set();
    }
    // Idle connections see end of stream at once; busy ones finish their request first.
    void stop() {
        stopping = true;
        for (entry* e = head; e != nullptr; e = e->next)
            if (!e->busy) e->stream->shutdown(net::shutdown_how::receive);
        if (count == 0) all_closed.set();
    }
};

using steady = std::chrono::steady_clock;

// What is left of a deadline, as wait_for takes it; a deadline already passed times out.
std::chrono::milliseconds left_until(steady::time_point deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now());
    if (left <= 0ms) throw timeout_error();
    return left;
}

class connection {
public:
    connection(net::tcp_stream s, const config& cfg, connection_registry& reg)
        : s_(std::move(s)), cfg_(cfg), lim_(cfg.lim), reg_(reg), buf_(lim_.max_header_bytes, '\0') {
        me_.stream = &s_;
        reg_.add(me_);
    }
    ~connection() { reg_.remove(me_); }

    task<> run() {
        try {
            while (!reg_.stopping && co_await serve_one()) {
            }
        } catch (const timeout_error&) {
            // idle, slow or not reading: just close
        } catch (const std::system_error&) {
            // reset by the peer and the like: nothing to answer
        }
    }

private:
    // Reads more into buf_ before the deadline; false at end of stream.
    task<bool> fill(std::chrono::milliseconds limit) {
        const std::size_t n =
            co_await wait_for(s_.read_some(mutable_buffer(buf_.data() + used_, buf_.size() - used_)), limit);
        used_ += n;
        co_return n > 0;
    }

    // Every write of a response must be done within lim_.write: a client that stops
    // reading fills the socket buffers, and is then cut off instead of holding on.
    task<> write(const_buffer b) { co_await wait_for(s_.write_all(b), lim_.write); }

    // One request and its response; false: close the connection.
    task<bool> serve_one() {
        std::size_t head_end = std::string_view::npos;
        auto deadline = steady::now() + lim_.header;
        for (bool first = true;; first = false) {
            head_end = std::string_view(buf_.data(), used_).find("\r\n\r\n");
            if (head_end != std::string_view::npos) break;
            if (used_ >= buf_.size()) {
                co_await reply_error({431, "Request Header Fields Too Large"});
                co_return false;
            }
            me_.busy = used_ > 0;
            // Between requests the idle limit applies; from the first byte, the header limit.
            const auto limit = first && used_ == 0 ? lim_.idle : left_until(deadline);
            if (!co_await fill(limit)) co_return false;  // the client went away (or shutdown)
            if (first && used_ > 0) deadline = steady::now() + lim_.header;
        }
        me_.busy = true;
        http::request req;
        std::optional<http::error> refused;
        try {
            req = http::parse_head(std::string_view(buf_.data(), head_end), lim_);
        } catch (const http::error& e) {
            refused = e;
        }
        if (refused) {
            co_await reply_error(*refused);
            co_return false;
        }
        // Skip the body (nothing here takes one), all of it within lim_.body: a client
        // that trickles a byte now and then is cut off at the total, not kept for ever.
        std::size_t consumed = head_end + 4;
        std::size_t body_left = req.content_length;
        const std::size_t in_buf = std::min(body_left, used_ - consumed);
        consumed += in_buf;
        body_left -= in_buf;
        const auto body_deadline = steady::now() + lim_.body;
        while (body_left > 0) {
            std::array<char, 4096> sink;
            const std::size_t n = co_await wait_for(
                s_.read_some(mutable_buffer(sink.data(), std::min(sink.size(), body_left))), left_until(body_deadline));
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

    task<> respond(const http::request& req, bool keep_alive) {
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
        co_await write(out);
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
            // A directory is an error too (EISDIR): it is not a file to send.
            f = co_await fs::file::open(cfg_.root + "/" + std::string(name), fs::open_mode::read);
        } catch (const std::system_error&) {
            found = false;
        }
        if (!found) {
            co_await send(404, "Not Found", "not found\n", keep_alive, head_only);
            co_return;
        }
        const std::uint64_t size = f.size();
        co_await write(response_head(200, "OK", size, content_type(name), keep_alive));
        if (head_only) co_return;
        std::string chunk(64 * 1024, '\0');
        for (std::uint64_t off = 0; off < size;) {
            const std::size_t n = co_await f.read_at(chunk, off);
            if (n == 0) break;  // the file shrank meanwhile: the client sees a short body
            co_await write(const_buffer(chunk.data(), n));
            off += n;
        }
    }

    // Answers with an error, then closes gently: our side first, then whatever the client
    // still sends is read and dropped, so that the kernel does not answer it with a reset
    // that could destroy the response before the client reads it.
    task<> reply_error(const http::error& e) {
        try {
            co_await wait_for(send(e.status, e.reason, std::string(e.reason) + "\n", false, false), 1s);
            s_.shutdown(net::shutdown_how::send);
            std::array<char, 4096> sink;
            const auto until = steady::now() + 1s;
            while (steady::now() < until) {
                if (co_await wait_for(s_.read_some(sink), 200ms) == 0) break;
            }
        } catch (const std::exception&) {
            // the client is gone or does not read: we close anyway
        }
    }

    net::tcp_stream s_;
    const config& cfg_;
    const http::limits& lim_;
    connection_registry& reg_;
    connection_registry::entry me_;
    std::string buf_;
    std::size_t used_ = 0;
};

// The first SIGINT/SIGTERM stops accepting and closes the idle connections; the busy ones
// get lim.drain to finish, then are cancelled. A second signal cancels them at once.
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
        std::printf("http_server: signal %d, finishing %zu connections (at most %lld ms)\n", signo, reg.count,
                    static_cast<long long>(cfg.lim.drain.count()));
        std::fflush(stdout);
        acceptor.cancel();
        listener.close();
        reg.stop();
        bool again = false;
        co_await move_on_after(cfg.lim.drain, [&]() -> task<> {
            auto closed = reg.all_closed.wait();
            auto second = corio::signal(SIGINT, SIGTERM);
            auto first = co_await when_any(std::move(closed), std::move(second));
            again = first.index() == 1;
        });
        if (reg.count > 0) {
            std::printf("http_server: %s: cancelling %zu connections\n", again ? "second signal" : "drain time is up",
                        reg.count);
            std::fflush(stdout);
            g.cancel();
        }
    });
    std::printf("http_server: stopped cleanly\n");
}

}  // namespace

int main(int argc, char** argv) {
    config cfg;
    http::limits& lim = cfg.lim;
    cli::command cmd("http_server",
                     "A hardened HTTP/1.1 server. SIGINT or SIGTERM: stop accepting, give in-flight requests\n"
                     "the drain time, then cancel them; a second signal cancels them at once.");
    cmd.flag("--port N", cfg.port, "the port to listen on; 0: any free one, printed");
    cmd.flag("--root DIR", cfg.root, "where /static/<name> is looked up");
    cmd.flag("--backend io_uring|epoll", cfg.backend, "which backend");
    cmd.flag("--idle-ms N", lim.idle, "a kept-alive connection waiting for its next request");
    cmd.flag("--header-ms N", lim.header, "from a request's first byte to the end of its headers");
    cmd.flag("--body-ms N", lim.body, "a request's whole body, however slowly it comes");
    cmd.flag("--write-ms N", lim.write, "each write of an answer, for a client that stops reading");
    cmd.flag("--drain-ms N", lim.drain, "at SIGINT/SIGTERM, how long in-flight requests may take");
    return cmd.run(argc, argv, [&] {
        // Block the shutdown signals before anything starts, so one that arrives early is
        // queued for corio::signal instead of killing the process.
        block_signals(SIGINT, SIGTERM);
        loop_options options;
        options.backend = cfg.backend;
        run(serve(cfg), options);
    });
}
