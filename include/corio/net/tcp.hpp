#pragma once
/// @file
/// TCP: net::tcp_listener (bind, accept) and net::tcp_stream (connect, read, write,
/// shutdown). Every operation is an awaiter living in the awaiting frame; errors are
/// std::system_error naming the operation; no operation ever raises SIGPIPE.

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <corio/buffer.hpp>
#include <corio/detail/io_awaiter.hpp>
#include <corio/detail/socket.hpp>
#include <corio/errors.hpp>
#include <corio/net/endpoint.hpp>
#include <corio/task.hpp>

namespace corio::net {

/// Bytes that tcp_stream::receive() handed over without copying them: on io_uring, a
/// buffer of the loop's receive pool that the kernel filled, given back to the pool when
/// this is released or destroyed; elsewhere, a buffer of its own. Move-only. Empty: the
/// peer has shut down its side. Release it on its loop's thread, and soon: a held buffer
/// is one the kernel cannot fill (a dry pool makes reads plain receives).
/// @code
/// for (;;) {
///     corio::net::received_bytes r = co_await s.receive();
///     if (r.empty()) break;                    // end of stream
///     co_await s.write_all(r.buffer());        // echoed straight from the kernel's buffer
/// }
/// @endcode
class received_bytes {
public:
    /// No bytes.
    received_bytes() = default;
    /// Takes o's bytes; o is left empty.
    received_bytes(received_bytes&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)),
          home_(std::exchange(o.home_, nullptr)),
          id_(std::exchange(o.id_, -1)) {}
    /// Releases this one's bytes, then takes o's.
    received_bytes& operator=(received_bytes&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
            home_ = std::exchange(o.home_, nullptr);
            id_ = std::exchange(o.id_, -1);
        }
        return *this;
    }
    /// Not copyable: one owner gives the buffer back.
    received_bytes(const received_bytes&) = delete;
    /// Not copyable.
    received_bytes& operator=(const received_bytes&) = delete;
    /// Gives the buffer back (release()).
    ~received_bytes() { release(); }

    /// The bytes.
    [[nodiscard]] const char* data() const noexcept { return data_; }
    /// How many.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// True when there are none: the end of the stream (or released, or moved from).
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    /// The bytes as text.
    [[nodiscard]] std::string_view view() const noexcept { return {data_, size_}; }
    /// The bytes as a buffer, for write_all and the like.
    [[nodiscard]] const_buffer buffer() const noexcept { return {data_, size_}; }
    /// Gives the buffer back now (to the receive pool, or frees it); empty afterwards.
    void release() noexcept {
        if (home_ != nullptr)
            home_->give_back(home_, id_);
        else
            std::free(data_);
        data_ = nullptr;
        size_ = 0;
        home_ = nullptr;
        id_ = -1;
    }

    /// @cond CORIO_INTERNAL
    received_bytes(char* data, std::size_t size, detail::lease_home* home, std::int32_t id) noexcept
        : data_(data), size_(size), home_(home), id_(id) {}
    /// @endcond

private:
    char* data_ = nullptr;
    std::size_t size_ = 0;
    detail::lease_home* home_ = nullptr;  // null: data_ is malloc'd (or null)
    std::int32_t id_ = -1;
};

}  // namespace corio::net

namespace corio::detail {

/// tcp_stream::receive(): a recv whose bytes are handed over (io_op::lease).
class [[nodiscard]] receive_awaiter : public io_awaiter {
public:
    explicit receive_awaiter(int fd) noexcept : io_awaiter("tcp_stream::receive") {
        kind = io_kind::recv;
        this->fd = fd;
    }
    receive_awaiter(receive_awaiter&& o) noexcept : io_awaiter(o) {}
    receive_awaiter& operator=(receive_awaiter&&) = delete;
    ~receive_awaiter() { drop(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        event_loop& loop = event_loop::current();
        backend_ = &loop.io();
        len = loop.options().recv_buffer_size != 0 ? loop.options().recv_buffer_size : 4096;
        if (backend_->kind() == backend_kind::io_uring) {
            lease = true;  // the backend hands over a pool buffer, or gives the op one of its own
        } else {
            buf = std::malloc(len);
            if (buf == nullptr) throw std::bad_alloc();
            offset = -1;
        }
        return io_awaiter::await_suspend(h);
    }

    net::received_bytes await_resume() {
        const int n = result_or_throw();
        if (n == 0) return {};
        lease_home* home = offset >= 0 ? backend_->leases() : nullptr;
        net::received_bytes r(static_cast<char*>(std::exchange(buf, nullptr)), static_cast<std::size_t>(n), home,
                              static_cast<std::int32_t>(offset));
        return r;
    }

private:
    // The bytes were not handed over (an error, a cancel, the end of the stream).
    void drop() noexcept {
        if (buf == nullptr) return;
        if (offset >= 0 && backend_ != nullptr && backend_->leases() != nullptr)
            backend_->leases()->give_back(backend_->leases(), static_cast<std::int32_t>(offset));
        else if (offset < 0)
            std::free(buf);
        buf = nullptr;
    }

    backend* backend_ = nullptr;
};

}  // namespace corio::detail

namespace corio::net {

/// Which direction tcp_stream::shutdown ends: receive (SHUT_RD), send (SHUT_WR) or both.
enum class shutdown_how { receive = SHUT_RD, send = SHUT_WR, both = SHUT_RDWR };

/// A connected TCP socket. Move-only; the destructor closes it. Reads and writes are
/// awaitables: `co_await` them on the loop's thread.
/// @code
/// auto s = co_await corio::net::tcp_stream::connect("example.com", 80);
/// co_await s.write_all(std::string_view("GET / HTTP/1.0\r\n\r\n"));
/// std::array<char, 4096> buf;
/// while (std::size_t n = co_await s.read_some(buf)) std::fwrite(buf.data(), 1, n, stdout);
/// @endcode
class tcp_stream {
public:
    /// A stream that is not connected (is_open() is false).
    tcp_stream() = default;

    /// Connects to ep. Refused, unreachable, cancelled: std::system_error naming the
    /// endpoint, or cancelled_error. Wrap in wait_for for a deadline.
    static task<tcp_stream> connect(endpoint ep);
    /// Resolves host and tries its addresses in turn; the last failure is thrown.
    static task<tcp_stream> connect(std::string host, std::uint16_t port);

    /// Up to buf.size bytes, as soon as any arrive; 0 means the peer has shut down its side.
    detail::transfer_awaiter read_some(mutable_buffer buf) const noexcept {
        return {detail::io_kind::recv, fd(), buf.data, buf.size, "tcp_stream::read_some"};
    }
    /// The next bytes to arrive, handed over without a copy where the backend can (see
    /// received_bytes); empty at the end of the stream. Cancel it or give it a deadline
    /// (wait_for) like read_some: nothing that arrives is lost.
    detail::receive_awaiter receive() const noexcept { return detail::receive_awaiter(fd()); }
    /// Exactly buf.size bytes; if the stream ends first, std::system_error with
    /// io_errc::end_of_stream.
    detail::exact_awaiter read_exact(mutable_buffer buf) const noexcept {
        return {detail::io_kind::recv, fd(), buf.data, buf.size, "tcp_stream::read_exact"};
    }
    /// Some of buf (at least one byte); the count.
    detail::transfer_awaiter write_some(const_buffer buf) const noexcept {
        return {detail::io_kind::send, fd(), const_cast<void*>(buf.data), buf.size, "tcp_stream::write_some"};
    }
    /// All of buf. A peer that has gone: std::system_error (EPIPE or ECONNRESET).
    detail::exact_awaiter write_all(const_buffer buf) const noexcept {
        return {detail::io_kind::send, fd(), buf.data, buf.size, "tcp_stream::write_all"};
    }

    /// Ends one or both directions (send: the peer reads end of stream).
    void shutdown(shutdown_how how = shutdown_how::send) const {
        if (::shutdown(fd(), static_cast<int>(how)) < 0) detail::throw_errno("tcp_stream::shutdown");
    }
    /// Closes the socket now (the destructor does it too). A read or write still pending
    /// ends promptly with std::system_error(EBADF) "...: the socket was closed".
    void close() noexcept { socket_.close(); }

    /// Disables Nagle's algorithm: small writes go out at once.
    void set_nodelay(bool on = true) const {
        const int v = on ? 1 : 0;
        if (::setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0)
            detail::throw_errno("tcp_stream::set_nodelay");
    }
    /// This side's address and port (getsockname).
    [[nodiscard]] endpoint local_endpoint() const { return detail::socket_name(fd(), false); }
    /// The peer's address and port (getpeername).
    [[nodiscard]] endpoint remote_endpoint() const { return detail::socket_name(fd(), true); }
    /// False for a default-constructed, moved-from or closed stream.
    [[nodiscard]] bool is_open() const noexcept { return socket_.is_open(); }
    /// The descriptor, still owned here (do not close it). Its mode depends on the
    /// backend: blocking on io_uring (the kernel waits for readiness itself: one trip per
    /// operation), non-blocking on epoll. Code other than corio's that is given it (a TLS
    /// or database library driven by wait_readable / wait_writable) expects non-blocking:
    /// call set_nonblocking() first, on either backend.
    [[nodiscard]] int native_handle() const noexcept { return socket_.fd(); }
    /// Puts the socket in non-blocking mode (O_NONBLOCK) for good, as code given
    /// native_handle() expects. corio's own operations keep working on both backends
    /// (on io_uring, a kernel that answers such a socket's reads with EAGAIN costs them
    /// a readiness wait and a retry).
    void set_nonblocking() const { socket_.set_nonblocking("tcp_stream::set_nonblocking"); }

    /// Internal: adopts a connected socket.
    explicit tcp_stream(detail::socket_handle s) noexcept : socket_(std::move(s)) {}

private:
    [[nodiscard]] int fd() const noexcept { return socket_.fd(); }
    detail::socket_handle socket_;
};

}  // namespace corio::net

namespace corio::detail {

class [[nodiscard]] connect_awaiter : public io_awaiter {
public:
    connect_awaiter(int fd, const net::endpoint& ep) noexcept : io_awaiter("tcp_stream::connect") {
        kind = io_kind::connect;
        this->fd = fd;
        addr = const_cast<sockaddr*>(ep.data());
        addrlen = ep.size();
    }
    void await_resume() const { (void)result_or_throw(); }
};

class [[nodiscard]] accept_awaiter : public io_awaiter {
public:
    explicit accept_awaiter(int fd) noexcept : io_awaiter("tcp_listener::accept") {
        kind = io_kind::accept;
        this->fd = fd;
    }
    net::tcp_stream await_resume() const {
        int s = -1;
        try {
            s = result_or_throw();
        } catch (const std::system_error& e) {
            // A closed listener's number may belong to another socket by now: no address.
            // (Compared by value: an error_condition comparison makes a virtual call, which
            // UBSan checks by writing to a pipe, and out of descriptors (EMFILE) it cannot.)
            if (e.code().value() == EBADF && e.code().category() == std::system_category()) throw;
            throw_naming_listener(e.code());
        }
        return net::tcp_stream(socket_handle(s, event_loop::current(), true));
    }

private:
    // "corio: tcp_listener::accept on 127.0.0.1:8080: Too many open files": the listener's
    // address, when it still has one (getsockname needs no new descriptor, so EMFILE too).
    [[noreturn]] void throw_naming_listener(std::error_code code) const {
        std::string what = "corio: tcp_listener::accept";
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        auto* sa = reinterpret_cast<sockaddr*>(&ss);
        if (fd >= 0 && ::getsockname(fd, sa, &len) == 0) {
            what += " on ";
            what += net::endpoint::from_sockaddr(sa, len).to_string();
        }
        throw std::system_error(code, what);
    }
};

}  // namespace corio::detail

namespace corio::net {

inline task<tcp_stream> tcp_stream::connect(endpoint ep) {
    tcp_stream s(detail::open_socket(ep.family(), SOCK_STREAM, "tcp_stream::connect"));
    std::error_code failed;
    try {
        co_await detail::connect_awaiter(s.fd(), ep);
    } catch (const std::system_error& e) {
        failed = e.code();
    }
    if (failed) throw std::system_error(failed, "corio: tcp_stream::connect to " + ep.to_string());
    co_return s;
}

inline task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port) {
    const std::vector<endpoint> eps = co_await resolve(host, port);
    std::error_code failed;
    for (const endpoint& ep : eps) {
        try {
            co_return co_await connect(ep);
        } catch (const std::system_error& e) {
            failed = e.code();
        }
    }
    throw std::system_error(failed, "corio: tcp_stream::connect to " + host + ":" + std::to_string(port));
}

/// Options of tcp_listener::bind.
struct listen_options {
    /// Connections the kernel queues before accept() takes them (listen(2)).
    int backlog = SOMAXCONN;
    bool reuse_address = true;  ///< SO_REUSEADDR: rebind at once after a restart
    bool reuse_port = false;    ///< SO_REUSEPORT: several listeners share the port
};

/// A listening TCP socket. Move-only; the destructor closes it.
/// @code
/// auto listener = corio::net::tcp_listener::bind(corio::net::endpoint::loopback(8080));
/// while (true) {
///     corio::net::tcp_stream client = co_await listener.accept();
///     corio::spawn(serve(std::move(client)));  // serve(tcp_stream) returns corio::task<>
/// }
/// @endcode
class tcp_listener {
public:
    tcp_listener() = default;

    /// Binds and listens. Port 0 picks a free port (see local_endpoint()). Must be
    /// called on the loop's thread while it runs.
    static tcp_listener bind(const endpoint& ep, listen_options options = {}) {
        tcp_listener l;
        l.socket_ = detail::open_socket(ep.family(), SOCK_STREAM, "tcp_listener::bind");
        const int fd = l.socket_.fd();
        const int one = 1;
        if (options.reuse_address && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
            detail::throw_errno("tcp_listener::bind: SO_REUSEADDR");
        if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            detail::throw_errno("tcp_listener::bind: SO_REUSEPORT");
        if (::bind(fd, ep.data(), ep.size()) < 0) detail::throw_errno("tcp_listener::bind", ep.to_string());
        if (::listen(fd, options.backlog) < 0) detail::throw_errno("tcp_listener::bind: listen on", ep.to_string());
        l.socket_.mark_listening();
        return l;
    }

    /// The next connection.
    [[nodiscard]] detail::accept_awaiter accept() const noexcept { return detail::accept_awaiter(socket_.fd()); }

    /// The address and port it listens on (the port bind() picked, for port 0).
    [[nodiscard]] endpoint local_endpoint() const { return detail::socket_name(socket_.fd(), false); }
    /// Closes the listener now (the destructor does it too): it stops listening at once (a
    /// new listener can bind its endpoint right after), and a pending accept ends with
    /// std::system_error(EBADF) "tcp_listener::accept: the socket was closed".
    void close() noexcept { socket_.close(); }
    /// False for a default-constructed, moved-from or closed listener.
    [[nodiscard]] bool is_open() const noexcept { return socket_.is_open(); }
    /// The descriptor, still owned here (do not close it). Its mode depends on the
    /// backend: blocking on io_uring (the kernel waits for readiness itself: one trip per
    /// operation), non-blocking on epoll. Code other than corio's that is given it (a TLS
    /// or database library driven by wait_readable / wait_writable) expects non-blocking:
    /// call set_nonblocking() first, on either backend.
    [[nodiscard]] int native_handle() const noexcept { return socket_.fd(); }
    /// Puts the socket in non-blocking mode (O_NONBLOCK) for good, as code given
    /// native_handle() expects. corio's own operations keep working on both backends
    /// (on io_uring, a kernel that answers such a socket's accepts with EAGAIN costs them
    /// a readiness wait and a retry).
    void set_nonblocking() const { socket_.set_nonblocking("tcp_listener::set_nonblocking"); }

private:
    detail::socket_handle socket_;
};

}  // namespace corio::net
