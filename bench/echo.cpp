// Echo throughput and latency: the same load client against corio (io_uring and epoll),
// hand-written raw liburing and raw epoll loops, Asio coroutines, and blocking
// thread-per-connection. Server and client run on different cores where there are two.
//
// One iteration is one wave: every connection sends a message of `size` bytes, then
// waits for its echo. Counters: msgs_per_s (echoes per second), p50_us / p99_us (round
// trip of one message, from the send to the last byte of its echo).

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <corio/corio.hpp>

#include "common.hpp"
#include "external_server.hpp"

#if CORIO_BENCH_ASIO
#include <asio.hpp>
#endif
#if CORIO_HAS_IO_URING
#include <liburing.h>
#endif

namespace {

using steady = std::chrono::steady_clock;
bool quick = false;

void pin_to(unsigned cpu) {
    if (std::thread::hardware_concurrency() < 2) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}
constexpr unsigned server_cpu = 0;
constexpr unsigned client_cpu = 1;

// Counting mode (`--serve=NAME`, see count_mode): the server process is watched by
// callgrind, whose threads share one lock that a thread blocked in io_uring_enter keeps.
// So each server's own thread prints its port and watches stdin for the end, and no other
// thread has to run meanwhile.
bool serve_mode = false;
void announce(std::uint16_t port) {
    if (!serve_mode) return;
    std::printf("%u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
}

[[noreturn]] void die(const char* what) { throw std::system_error(errno, std::system_category(), what); }

// A listening socket on a free loopback port (blocking; servers change that as they like).
int listen_socket(std::uint16_t& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(fd, 4096) < 0) die("listen");
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return fd;
}

// ---- the servers --------------------------------------------------------------------

struct server {
    virtual ~server() = default;
    virtual std::uint16_t port() const = 0;
    /// A server in a process of its own: its CPU time so far (user + system, seconds).
    /// Negative: the server runs in this process (its CPU is the process's minus the client's).
    virtual double own_cpu_seconds() const { return -1; }
};

// Variants of the corio server. batched: waits collect completions (loop_options::batch_wait, 50 us).
// unregistered / plain_accept: io_uring without the table of registered files, without
// multishot accept (the backend's test hooks play a kernel that refuses them).
struct corio_variant {
    bool batched = false;
    bool unregistered = false;
    bool plain_accept = false;
};

// corio: exactly what examples/echo_server.cpp does.
class corio_server final : public server {
public:
    // timeouts: every read and write under a 30 s deadline, as a real server has them.
    // plain_reads: io_uring without the receive pool, a submission per read.
    // leased: reads with receive(), the kernel's buffer written back without a copy.
    explicit corio_server(corio::backend_kind backend, bool timeouts = false, bool plain_reads = false,
                          bool leased = false, corio_variant v = {}) {
        std::promise<std::uint16_t> started;
        auto port = started.get_future();
        refuse_ = v.unregistered || v.plain_accept;
#if CORIO_HAS_IO_URING
        if (v.unregistered)
            corio::detail::uring_request_fault = [](corio::detail::uring_request r) {
                return r == corio::detail::uring_request::register_file;
            };
        if (v.plain_accept)
            corio::detail::uring_request_fault = [](corio::detail::uring_request r) {
                return r == corio::detail::uring_request::multishot_accept;
            };
#endif
        thread_ = std::thread([this, backend, timeouts, plain_reads, leased, v, &started] {
            pin_to(server_cpu);
            corio::loop_options o;
            o.backend = backend;
            if (plain_reads) o.recv_buffers = 0;
            if (v.batched) o.batch_wait = std::chrono::microseconds(50);
            corio::event_loop loop(o);
            loop_ = &loop;
            try {
                loop.run([&]() -> corio::task<> {
                    auto listener =
                        corio::net::tcp_listener::bind(corio::net::endpoint::loopback(0), {.backlog = 4096});
                    started.set_value(listener.local_endpoint().port());
                    announce(listener.local_endpoint().port());
                    co_await corio::with_task_group([&](corio::task_group& g) -> corio::task<> {
                        if (serve_mode) g.spawn(stop_at_end_of_stdin());
                        for (;;) {
                            auto s = co_await listener.accept();
                            g.spawn(timeouts ? echo_with_timeouts(std::move(s))
                                    : leased ? echo_leased(std::move(s))
                                             : echo(std::move(s)));
                        }
                    });
                });
            } catch (const corio::cancelled_error&) {
                // stopped
            }
        });
        port_ = port.get();
    }
    ~corio_server() override {
        if (!serve_mode) loop_->call_soon_threadsafe([l = loop_] { l->stop(); });
        thread_.join();
#if CORIO_HAS_IO_URING
        if (refuse_) corio::detail::uring_request_fault = nullptr;
#endif
    }
    std::uint16_t port() const override { return port_; }

private:
    static corio::task<> stop_at_end_of_stdin() {
        co_await corio::wait_readable(0);
        corio::event_loop::current().stop();
    }
    static corio::task<> echo(corio::net::tcp_stream s) {
        std::array<char, 16384> buf;
        try {
            for (std::size_t n; (n = co_await s.read_some(buf)) > 0;)
                co_await s.write_all(corio::const_buffer(buf.data(), n));
        } catch (const std::system_error&) {
        }
    }
    // The kernel's buffer echoed as it is: receive() hands it over without a copy.
    static corio::task<> echo_leased(corio::net::tcp_stream s) {
        try {
            for (;;) {
                corio::net::received_bytes r = co_await s.receive();
                if (r.empty()) break;
                co_await s.write_all(r.buffer());
            }
        } catch (const std::system_error&) {
        }
    }
    static corio::task<> echo_with_timeouts(corio::net::tcp_stream s) {
        using namespace std::chrono_literals;
        std::array<char, 16384> buf;
        try {
            for (std::size_t n; (n = co_await corio::wait_for(s.read_some(buf), 30s)) > 0;)
                co_await corio::wait_for(s.write_all(corio::const_buffer(buf.data(), n)), 30s);
        } catch (const std::exception&) {
        }
    }
    std::thread thread_;
    corio::event_loop* loop_ = nullptr;
    std::uint16_t port_ = 0;
    bool refuse_ = false;
};

// A hand-written loop on a thread of its own, told to stop through an eventfd.
class raw_server : public server {
public:
    std::uint16_t port() const override { return port_; }

protected:
    // In counting mode stdin's end is the stop: the read end of a pipe polls readable then.
    raw_server()
        : lfd_(listen_socket(port_)), stop_(serve_mode ? ::dup(0) : ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
    ~raw_server() override {
        ::close(stop_);
        ::close(lfd_);
    }
    // Derived constructors start the thread; derived destructors call stop() first.
    void start() {
        thread_ = std::thread([this] {
            pin_to(server_cpu);
            announce(port_);
            loop();
        });
    }
    void stop() {
        const std::uint64_t one = 1;
        (void)!::write(stop_, &one, sizeof one);
        thread_.join();
    }
    virtual void loop() = 0;

    std::uint16_t port_ = 0;
    int lfd_;
    int stop_;

private:
    std::thread thread_;
};

// Raw epoll: edge-triggered, non-blocking, two syscalls per echoed message. A short read
// drained the socket (edge-triggered: the next data brings a new event), so it does not
// read again to meet EAGAIN; an event that shows the end (EPOLLRDHUP) reads on to it.
class epoll_server final : public raw_server {
public:
    epoll_server() { start(); }
    ~epoll_server() override { stop(); }

private:
    struct conn {
        int fd;
        std::string pending;  // echo bytes the socket did not take yet
    };
    void loop() override {
        const int ep = ::epoll_create1(EPOLL_CLOEXEC);
        ::fcntl(lfd_, F_SETFL, O_NONBLOCK);
        epoll_event ev{EPOLLIN, {.ptr = nullptr}};
        ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd_, &ev);
        ev.data.ptr = &stop_;
        ::epoll_ctl(ep, EPOLL_CTL_ADD, stop_, &ev);
        std::vector<std::unique_ptr<conn>> conns;
        std::array<epoll_event, 256> events;
        std::array<char, 16384> buf;
        for (bool running = true; running;) {
            const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
            for (int i = 0; i < n; ++i) {
                void* p = events[static_cast<std::size_t>(i)].data.ptr;
                if (p == &stop_) {
                    running = false;
                } else if (p == nullptr) {
                    for (int fd; (fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                        conns.push_back(std::make_unique<conn>(conn{fd, {}}));
                        epoll_event cev{EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, {.ptr = conns.back().get()}};
                        ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                    }
                } else {
                    auto* c = static_cast<conn*>(p);
                    if (c->fd < 0) continue;
                    const bool ending =
                        (events[static_cast<std::size_t>(i)].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
                    bool closed = !flush(*c);
                    while (!closed && c->pending.empty()) {
                        const ssize_t r = ::recv(c->fd, buf.data(), buf.size(), 0);
                        if (r < 0 && errno == EAGAIN) break;
                        if (r <= 0) {
                            closed = true;
                            break;
                        }
                        c->pending.assign(buf.data(), static_cast<std::size_t>(r));
                        closed = !flush(*c);
                        if (static_cast<std::size_t>(r) < buf.size() && !ending) break;  // drained
                    }
                    if (closed) {
                        ::close(c->fd);
                        c->fd = -1;
                    }
                }
            }
        }
        for (auto& c : conns)
            if (c->fd >= 0) ::close(c->fd);
        ::close(ep);
    }
    // Sends what is pending; false when the connection is dead.
    static bool flush(conn& c) {
        while (!c.pending.empty()) {
            const ssize_t w = ::send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
            if (w < 0) return errno == EAGAIN;
            c.pending.erase(0, static_cast<std::size_t>(w));
        }
        return true;
    }
};

#if CORIO_HAS_IO_URING
// Raw liburing: SINGLE_ISSUER|DEFER_TASKRUN, multishot accept, multishot recv into a
// provided-buffer ring, one send in flight per connection, buffers recycled after their send.
class uring_server final : public raw_server {
public:
    uring_server() { start(); }
    ~uring_server() override { stop(); }

private:
    static constexpr unsigned buffers = 1024;
    static constexpr unsigned buffer_size = 16384;
    static constexpr int group = 1;
    enum : std::uint64_t { tag_accept = 1, tag_stop = 2, tag_recv = 3, tag_send = 4, tag_mask = 7 };

    struct conn {
        int fd;
        std::vector<std::pair<unsigned, unsigned>> queue;  // (buffer id, length) waiting to be sent
        unsigned sent = 0;                                 // of the front entry
        bool sending = false;
        bool dead = false;
    };

    static std::uint64_t data(conn* c, std::uint64_t tag) { return reinterpret_cast<std::uint64_t>(c) | tag; }

    void loop() override {
        io_uring ring;
        io_uring_params params{};
        params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        if (io_uring_queue_init_params(4096, &ring, &params) < 0) {
            params.flags = 0;
            if (io_uring_queue_init_params(4096, &ring, &params) < 0) return;
        }
        ring_ = &ring;
        std::vector<char> memory(std::size_t{buffers} * buffer_size);
        memory_ = memory.data();
        // The provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring).
        const std::size_t ring_bytes = buffers * sizeof(io_uring_buf);
        void* ring_mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        br_ = static_cast<io_uring_buf_ring*>(ring_mem);
        io_uring_buf_ring_init(br_);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_mem);
        reg.ring_entries = buffers;
        reg.bgid = group;
        if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) return;
        for (unsigned i = 0; i < buffers; ++i) give_back(i);
        arm_accept();
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_poll_add(sqe, stop_, POLLIN);
        io_uring_sqe_set_data64(sqe, tag_stop);
        std::vector<std::unique_ptr<conn>> conns;
        for (bool running = true; running;) {
            io_uring_submit_and_wait(&ring, 1);
            io_uring_cqe* cqe;
            unsigned head;
            unsigned seen = 0;
            io_uring_for_each_cqe(&ring, head, cqe) {
                ++seen;
                const std::uint64_t d = cqe->user_data;
                auto* c = reinterpret_cast<conn*>(d & ~tag_mask);
                switch (d & tag_mask) {
                    case tag_stop:
                        running = false;
                        break;
                    case tag_accept:
                        if (cqe->res >= 0) {
                            conns.push_back(std::make_unique<conn>(conn{cqe->res, {}, 0, false, false}));
                            arm_recv(conns.back().get());
                        }
                        if ((cqe->flags & IORING_CQE_F_MORE) == 0U) arm_accept();
                        break;
                    case tag_recv:
                        if (cqe->res <= 0) {
                            if (cqe->res == -ENOBUFS) {
                                arm_recv(c);
                                break;
                            }
                            c->dead = true;
                            break;
                        }
                        c->queue.emplace_back(cqe->flags >> IORING_CQE_BUFFER_SHIFT, static_cast<unsigned>(cqe->res));
                        if (!c->sending) send_front(c);
                        if ((cqe->flags & IORING_CQE_F_MORE) == 0U) arm_recv(c);
                        break;
                    case tag_send:
                        c->sending = false;
                        if (cqe->res < 0) {
                            c->dead = true;
                            break;
                        }
                        c->sent += static_cast<unsigned>(cqe->res);
                        if (c->sent == c->queue.front().second) {
                            give_back(c->queue.front().first);
                            c->queue.erase(c->queue.begin());
                            c->sent = 0;
                        }
                        if (!c->queue.empty()) send_front(c);
                        break;
                }
            }
            io_uring_cq_advance(&ring, seen);
        }
        for (auto& c : conns) ::close(c->fd);
        io_uring_unregister_buf_ring(&ring, group);
        ::munmap(ring_mem, ring_bytes);
        io_uring_queue_exit(&ring);
    }

    void give_back(unsigned bid) {
        io_uring_buf_ring_add(br_, memory_ + std::size_t{bid} * buffer_size, buffer_size,
                              static_cast<unsigned short>(bid), io_uring_buf_ring_mask(buffers), 0);
        io_uring_buf_ring_advance(br_, 1);
    }
    void arm_accept() {
        io_uring_sqe* sqe = io_uring_get_sqe(ring_);
        io_uring_prep_multishot_accept(sqe, lfd_, nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, tag_accept);
    }
    void arm_recv(conn* c) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring_);
        io_uring_prep_recv_multishot(sqe, c->fd, nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = group;
        io_uring_sqe_set_data64(sqe, data(c, tag_recv));
    }
    void send_front(conn* c) {
        const auto [bid, len] = c->queue.front();
        io_uring_sqe* sqe = io_uring_get_sqe(ring_);
        io_uring_prep_send(sqe, c->fd, memory_ + std::size_t{bid} * buffer_size + c->sent, len - c->sent, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, data(c, tag_send));
        c->sending = true;
    }

    io_uring* ring_ = nullptr;
    io_uring_buf_ring* br_ = nullptr;
    char* memory_ = nullptr;
};
#endif

#if CORIO_BENCH_ASIO
// Asio: one io_context thread, a coroutine per connection.
class asio_server final : public server {
public:
    asio_server() : acceptor_(ctx_, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
        port_ = acceptor_.local_endpoint().port();
        asio::co_spawn(ctx_, accept_loop(), asio::detached);
        thread_ = std::thread([this] {
            pin_to(server_cpu);
            ctx_.run();
        });
    }
    ~asio_server() override {
        ctx_.stop();
        thread_.join();
    }
    std::uint16_t port() const override { return port_; }

private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto s = co_await acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(ctx_, echo(std::move(s)), asio::detached);
        }
    }
    static asio::awaitable<void> echo(asio::ip::tcp::socket s) {
        std::array<char, 16384> buf;
        try {
            for (;;) {
                const std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
                co_await asio::async_write(s, asio::buffer(buf.data(), n), asio::use_awaitable);
            }
        } catch (const std::exception&) {
        }
    }
    asio::io_context ctx_{1};
    asio::ip::tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::thread thread_;
};
#endif

// Blocking sockets, one thread per connection.
class blocking_server final : public server {
public:
    blocking_server() {
        lfd_ = listen_socket(port_);
        acceptor_ = std::thread([this] {
            pin_to(server_cpu);
            for (int fd; (fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
                std::lock_guard lock(mutex_);
                workers_.emplace_back([fd] {
                    pin_to(server_cpu);
                    std::array<char, 16384> buf;
                    for (ssize_t n; (n = ::recv(fd, buf.data(), buf.size(), 0)) > 0;)
                        for (ssize_t off = 0; off < n;) {
                            const ssize_t w =
                                ::send(fd, buf.data() + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
                            if (w <= 0) {
                                n = 0;
                                break;
                            }
                            off += w;
                        }
                    ::close(fd);
                });
            }
        });
    }
    ~blocking_server() override {
        ::shutdown(lfd_, SHUT_RDWR);  // wakes accept
        acceptor_.join();
        for (auto& t : workers_) t.join();  // the clients have closed: every worker has ended
        ::close(lfd_);
    }
    std::uint16_t port() const override { return port_; }

private:
    int lfd_ = -1;
    std::uint16_t port_ = 0;
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> workers_;
};

#ifdef CORIO_BENCH_TOKIO_ECHO
// Tokio's current_thread runtime (bench/tokio/), the peer from Rust, in a process of its own.
class tokio_server final : public server {
public:
    tokio_server() : proc_({CORIO_BENCH_TOKIO_ECHO}, static_cast<int>(server_cpu)) {}
    std::uint16_t port() const override { return proc_.port(); }
    double own_cpu_seconds() const override {
        // /proc/PID/stat: utime and stime are fields 14 and 15, after the parenthesised name.
        const std::string path = "/proc/" + std::to_string(proc_.pid()) + "/stat";
        std::FILE* f = std::fopen(path.c_str(), "r");
        if (f == nullptr) die("tokio_server: /proc/PID/stat");
        char line[1024] = {};
        const std::size_t n = std::fread(line, 1, sizeof line - 1, f);
        std::fclose(f);
        const char* p = std::strrchr(line, ')');
        if (n == 0 || p == nullptr) die("tokio_server: reading /proc/PID/stat");
        unsigned long utime = 0;
        unsigned long stime = 0;
        // After ") ": state, then fields 4..13, then utime and stime.
        if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
            die("tokio_server: parsing /proc/PID/stat");
        return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }

private:
    bench::external_server proc_;
};
#endif

// ---- the client ---------------------------------------------------------------------

class client {
public:
    client(std::uint16_t port, int connections, std::size_t size) : out_(size, 'e'), in_(size) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        ep_ = ::epoll_create1(EPOLL_CLOEXEC);
        for (int i = 0; i < connections; ++i) {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("client connect");
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fds_.push_back(fd);
            if (connections > 1) {
                ::fcntl(fd, F_SETFL, O_NONBLOCK);
                epoll_event ev{EPOLLIN, {.u32 = static_cast<std::uint32_t>(i)}};
                ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
            }
        }
        got_.resize(fds_.size());
    }
    ~client() {
        for (int fd : fds_) ::close(fd);
        ::close(ep_);
    }

    // One wave; appends each message's round trip (µs) to lat.
    void wave(std::vector<float>& lat) {
        const auto t0 = steady::now();
        if (fds_.size() == 1) {  // one connection: plain blocking calls, the lowest-overhead client
            send_all(fds_[0]);
            for (std::size_t got = 0; got < in_.size();) {
                const ssize_t r = ::recv(fds_[0], in_.data() + got, in_.size() - got, 0);
                if (r <= 0) die("client recv");
                got += static_cast<std::size_t>(r);
            }
            lat.push_back(std::chrono::duration<float, std::micro>(steady::now() - t0).count());
            return;
        }
        for (int fd : fds_) send_all(fd);
        std::fill(got_.begin(), got_.end(), 0);
        std::size_t pending = fds_.size();
        std::array<epoll_event, 256> events;
        while (pending > 0) {
            const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 5000);
            if (n <= 0) die("client epoll_wait (server stalled?)");
            for (int i = 0; i < n; ++i) {
                const std::uint32_t c = events[static_cast<std::size_t>(i)].data.u32;
                for (;;) {
                    const ssize_t r = ::recv(fds_[c], in_.data(), in_.size() - got_[c], 0);
                    if (r < 0 && errno == EAGAIN) break;
                    if (r <= 0) die("client recv");
                    got_[c] += static_cast<std::size_t>(r);
                    if (got_[c] == in_.size()) {
                        lat.push_back(std::chrono::duration<float, std::micro>(steady::now() - t0).count());
                        --pending;
                        break;
                    }
                }
            }
        }
    }

private:
    void send_all(int fd) {
        for (std::size_t off = 0; off < out_.size();) {
            const ssize_t w = ::send(fd, out_.data() + off, out_.size() - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EAGAIN) continue;
            if (w <= 0) die("client send");
            off += static_cast<std::size_t>(w);
        }
    }
    std::vector<int> fds_;
    std::vector<std::size_t> got_;
    std::string out_;
    std::vector<char> in_;
    int ep_ = -1;
};

double cpu_seconds(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void run_echo(benchmark::State& state, const std::function<std::unique_ptr<server>()>& make, int connections,
              std::size_t size) {
    pin_to(client_cpu);
    std::vector<float> lat;
    double server_cpu = 0;
    {
        auto srv = make();
        client c(srv->port(), connections, size);
        for (int i = 0; i < 200; ++i) c.wave(lat);  // warm-up: caches, buffers, the server's pools
        lat.clear();
        lat.reserve(1 << 20);
        const double proc0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        const double mine0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        const double own0 = srv->own_cpu_seconds();
        for (auto _ : state) c.wave(lat);
        // Everything but this (client) thread is the server: its CPU per echoed message
        // is the fair comparison when the client saturates its core.
        server_cpu = own0 >= 0 ? srv->own_cpu_seconds() - own0
                               : (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - proc0) -
                                     (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - mine0);
    }  // the client closes first: every server sees end of stream, then stops
    std::sort(lat.begin(), lat.end());
    const auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[static_cast<std::size_t>(p * (lat.size() - 1))]; };
    state.SetItemsProcessed(state.iterations() * connections);
    state.counters["msgs_per_s"] =
        benchmark::Counter(static_cast<double>(state.iterations() * connections), benchmark::Counter::kIsRate);
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.counters["server_cpu_us_per_msg"] =
        server_cpu * 1e6 / static_cast<double>(std::max<std::int64_t>(1, state.iterations() * connections));
}

// Connection churn: one connection per request (connect, one byte each way, close), one
// after another, as a server meets clients without keep-alive. Counters: conns_per_s and
// the server's CPU per connection (its accept, its echo and its close).
void run_churn(benchmark::State& state, const std::function<std::unique_ptr<server>()>& make) {
    pin_to(client_cpu);
    double server_cpu = 0;
    {
        auto srv = make();
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(srv->port());
        const auto one_connection = [&] {
            const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) die("churn connect");
            char c = 'c';
            if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1 || ::recv(fd, &c, 1, 0) != 1) die("churn round trip");
            // An abortive close (RST): no TIME_WAIT piles up on the client's side over a run.
            const linger l{1, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            ::close(fd);
        };
        for (int i = 0; i < 200; ++i) one_connection();  // warm-up
        const double proc0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        const double mine0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        const double own0 = srv->own_cpu_seconds();
        for (auto _ : state) one_connection();
        server_cpu = own0 >= 0 ? srv->own_cpu_seconds() - own0
                               : (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - proc0) -
                                     (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - mine0);
    }
    state.counters["conns_per_s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["server_cpu_us_per_conn"] =
        server_cpu * 1e6 / static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}

using server_list = std::vector<std::pair<std::string, std::function<std::unique_ptr<server>()>>>;

server_list all_servers() {
    server_list servers;
#if CORIO_HAS_IO_URING
    servers.emplace_back("corio_io_uring",
                         [] { return std::make_unique<corio_server>(corio::backend_kind::io_uring); });
    servers.emplace_back("corio_io_uring_plain_reads",
                         [] { return std::make_unique<corio_server>(corio::backend_kind::io_uring, false, true); });
    servers.emplace_back("corio_io_uring_receive", [] {
        return std::make_unique<corio_server>(corio::backend_kind::io_uring, false, false, true);
    });
    servers.emplace_back("corio_io_uring_timeouts",
                         [] { return std::make_unique<corio_server>(corio::backend_kind::io_uring, true); });
    servers.emplace_back("corio_io_uring_batched", [] {
        return std::make_unique<corio_server>(corio::backend_kind::io_uring, false, false, false,
                                              corio_variant{.batched = true});
    });
    servers.emplace_back("corio_io_uring_unregistered", [] {
        return std::make_unique<corio_server>(corio::backend_kind::io_uring, false, false, false,
                                              corio_variant{.unregistered = true});
    });
    servers.emplace_back("corio_io_uring_plain_accept", [] {
        return std::make_unique<corio_server>(corio::backend_kind::io_uring, false, false, false,
                                              corio_variant{.plain_accept = true});
    });
    servers.emplace_back("raw_io_uring", [] { return std::make_unique<uring_server>(); });
#endif
    servers.emplace_back("corio_epoll", [] { return std::make_unique<corio_server>(corio::backend_kind::epoll); });
    servers.emplace_back("corio_epoll_timeouts",
                         [] { return std::make_unique<corio_server>(corio::backend_kind::epoll, true); });
    servers.emplace_back("raw_epoll", [] { return std::make_unique<epoll_server>(); });
#if CORIO_BENCH_ASIO
    servers.emplace_back("asio", [] { return std::make_unique<asio_server>(); });
#endif
#ifdef CORIO_BENCH_TOKIO_ECHO
    servers.emplace_back("tokio_current_thread", [] { return std::make_unique<tokio_server>(); });
#endif
    servers.emplace_back("blocking_threads", [] { return std::make_unique<blocking_server>(); });
    return servers;
}

void register_all() {
    const server_list servers = all_servers();
    const std::vector<std::size_t> sizes = quick ? std::vector<std::size_t>{128} : std::vector<std::size_t>{128, 1024};
    const std::vector<int> conns = quick ? std::vector<int>{1, 50} : std::vector<int>{1, 50, 256};
    for (std::size_t size : sizes)
        for (int c : conns)
            for (auto& [name, make] : servers) {
                const std::string bench_name =
                    "echo/" + std::to_string(size) + "B/conns=" + std::to_string(c) + "/" + name;
                benchmark::RegisterBenchmark(
                    bench_name.c_str(), [make = make, c, size](benchmark::State& s) { run_echo(s, make, c, size); })
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond)
                    ->MinTime(quick ? 0.2 : 0.5)
                    ->Repetitions(quick ? 1 : 3)
                    ->ReportAggregatesOnly(!quick);
            }
    // Connection churn, for the servers whose accept path differs.
    for (auto& [name, make] : servers) {
        if (name.find("timeouts") != std::string::npos || name.find("plain_reads") != std::string::npos ||
            name.find("receive") != std::string::npos || name.find("batched") != std::string::npos ||
            name == "blocking_threads")
            continue;
        const std::string bench_name = "churn/" + name;
        benchmark::RegisterBenchmark(bench_name.c_str(), [make = make](benchmark::State& s) { run_churn(s, make); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond)
            ->MinTime(quick ? 0.2 : 0.5)
            ->Repetitions(quick ? 1 : 3)
            ->ReportAggregatesOnly(!quick);
    }
}

}  // namespace

// Counting mode, for bench/count.py (callgrind and syscall tracepoints see one process):
//   bench_echo --servers                  lists the servers
//   bench_echo --serve=NAME               prints the port, serves until stdin ends
//   bench_echo --client=PORT C B W        C connections, B bytes, W waves; prints the messages
int count_mode(std::string_view arg, int argc, char** argv) {
    if (arg == "--servers") {
        for (const auto& entry : all_servers()) std::printf("%s\n", entry.first.c_str());
        return 0;
    }
    if (arg.starts_with("--serve=")) {
        const std::string name(arg.substr(8));
        for (const auto& [n, make] : all_servers()) {
            if (n != name) continue;
            serve_mode = true;
            const auto srv = make();
            if (name == "asio" || name == "blocking_threads") announce(srv->port());
            char c;
            while (::read(0, &c, 1) > 0) {
            }
            return 0;
        }
        std::fprintf(stderr, "bench_echo: no server named '%s' (see --servers)\n", name.c_str());
        return 2;
    }
    if (argc != 5) {
        std::fprintf(stderr, "usage: bench_echo --client=PORT CONNECTIONS BYTES WAVES\n");
        return 2;
    }
    pin_to(client_cpu);
    const int conns = std::stoi(argv[2]);
    const long waves = std::stol(argv[4]);
    client c(static_cast<std::uint16_t>(std::stoi(std::string(arg.substr(9)))), conns, std::stoul(argv[3]));
    std::vector<float> lat;
    for (long i = 0; i < waves; ++i) {
        c.wave(lat);
        lat.clear();
    }
    std::printf("%ld\n", waves * conns);
    return 0;
}

int main(int argc, char** argv) {
    if (argc > 1) {
        const std::string_view arg = argv[1];
        if (arg == "--servers" || arg.starts_with("--serve=") || arg.starts_with("--client=")) try {
                return count_mode(arg, argc, argv);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench_echo: %s\n", e.what());
                return 1;
            }
    }
    if (!bench::initialize(argc, argv, quick)) return 1;
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
