#pragma once
/// @file
/// UDP: net::udp_socket (send_to, recv_from; or connect, then send and recv).

#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <sys/uio.h>

#include <corio/buffer.hpp>
#include <corio/detail/io_awaiter.hpp>
#include <corio/detail/socket.hpp>
#include <corio/net/endpoint.hpp>

namespace corio::net {

/// One datagram received.
struct datagram {
    std::size_t size = 0;    ///< bytes stored in the buffer
    endpoint from;           ///< the sender
    bool truncated = false;  ///< the datagram was longer than the buffer; the rest is lost
};

}  // namespace corio::net

namespace corio::detail {

// The msghdr points into the awaiter itself, so it is filled in at await_suspend, once
// the awaiter has reached its final place.
class [[nodiscard]] send_to_awaiter : public io_awaiter {
public:
    send_to_awaiter(int fd, const_buffer b, const net::endpoint& to) noexcept
        : io_awaiter("udp_socket::send_to"), to_(to) {
        kind = io_kind::sendmsg;
        this->fd = fd;
        iov_.iov_base = const_cast<void*>(b.data);
        iov_.iov_len = b.size;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        msg_ = msghdr{};
        msg_.msg_name = const_cast<sockaddr*>(to_.data());
        msg_.msg_namelen = to_.size();
        msg_.msg_iov = &iov_;
        msg_.msg_iovlen = 1;
        buf = &msg_;
        return io_awaiter::await_suspend(h);
    }
    /// The count sent; a failure names the destination ("udp_socket::send_to 127.0.0.1:0").
    std::size_t await_resume() const {
        try {
            return static_cast<std::size_t>(result_or_throw());
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), "corio: udp_socket::send_to " + to_.to_string());
        }
    }

private:
    net::endpoint to_;
    iovec iov_{};
    msghdr msg_{};
};

class [[nodiscard]] recv_from_awaiter : public io_awaiter {
public:
    recv_from_awaiter(int fd, mutable_buffer b) noexcept : io_awaiter("udp_socket::recv_from") {
        kind = io_kind::recvmsg;
        this->fd = fd;
        iov_.iov_base = b.data;
        iov_.iov_len = b.size;
    }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        msg_ = msghdr{};
        msg_.msg_name = &from_;
        msg_.msg_namelen = sizeof from_;
        msg_.msg_iov = &iov_;
        msg_.msg_iovlen = 1;
        buf = &msg_;
        return io_awaiter::await_suspend(h);
    }
    net::datagram await_resume() const {
        const int n = result_or_throw();
        return {static_cast<std::size_t>(n),
                net::endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&from_), msg_.msg_namelen),
                (msg_.msg_flags & MSG_TRUNC) != 0};
    }

private:
    sockaddr_storage from_{};
    iovec iov_{};
    msghdr msg_{};
};

}  // namespace corio::detail

namespace corio::net {

/// A UDP socket. Move-only; the destructor closes it.
/// @code
/// auto sock = corio::net::udp_socket::bind(corio::net::endpoint::loopback(0));
/// std::array<char, 1500> buf;
/// auto d = co_await sock.recv_from(buf);             // d.size bytes from d.from
/// co_await sock.send_to(corio::const_buffer(buf.data(), d.size), d.from);  // echo it back
/// @endcode
class udp_socket {
public:
    udp_socket() = default;

    /// A socket bound to ep (port 0: any free port).
    static udp_socket bind(const endpoint& ep) {
        udp_socket s = open(ep.family());
        if (::bind(s.fd(), ep.data(), ep.size()) < 0) detail::throw_errno("udp_socket::bind", ep.to_string());
        return s;
    }
    /// An unbound socket (AF_INET or AF_INET6): the kernel picks a port at the first send.
    static udp_socket open(int family = AF_INET) {
        udp_socket s;
        s.socket_ = detail::open_socket(family, SOCK_DGRAM, "udp_socket::open");
        return s;
    }

    /// Sends one datagram to `to`; the count sent.
    detail::send_to_awaiter send_to(const_buffer buf, const endpoint& to) const noexcept { return {fd(), buf, to}; }
    /// Receives one datagram and its sender.
    detail::recv_from_awaiter recv_from(mutable_buffer buf) const noexcept { return {fd(), buf}; }

    /// Fixes the peer: send() and recv() then need no address, and only its datagrams arrive.
    void connect(const endpoint& peer) const {
        if (::connect(fd(), peer.data(), peer.size()) < 0) detail::throw_errno("udp_socket::connect", peer.to_string());
    }
    /// Sends one datagram to the connected peer; the count sent.
    detail::transfer_awaiter send(const_buffer buf) const noexcept {
        return {detail::io_kind::send, fd(), const_cast<void*>(buf.data), buf.size, "udp_socket::send"};
    }
    /// Receives one datagram from the connected peer; its size (the rest of a longer one
    /// is lost).
    detail::transfer_awaiter recv(mutable_buffer buf) const noexcept {
        return {detail::io_kind::recv, fd(), buf.data, buf.size, "udp_socket::recv"};
    }

    /// The address and port it is bound to (getsockname).
    [[nodiscard]] endpoint local_endpoint() const { return detail::socket_name(fd(), false); }
    /// Closes the socket now (the destructor does it too). A receive or send still pending
    /// ends promptly with std::system_error(EBADF) "...: the socket was closed".
    void close() noexcept { socket_.close(); }
    /// False for a default-constructed, moved-from or closed socket.
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
    void set_nonblocking() const { socket_.set_nonblocking("udp_socket::set_nonblocking"); }

private:
    [[nodiscard]] int fd() const noexcept { return socket_.fd(); }
    detail::socket_handle socket_;
};

}  // namespace corio::net
