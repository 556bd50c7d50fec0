#pragma once
/// @file
/// corio::pg::pool: at most N connections to one server, shared by the tasks of a loop. A
/// semaphore bounds the connections out at once; a queue keeps the idle ones.

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include <corio/postgres/connection.hpp>
#include <corio/sync/queue.hpp>
#include <corio/sync/semaphore.hpp>
#include <corio/task.hpp>

namespace corio::pg {

/// A pool of connections made on demand, at most max_size at once. `co_await acquire()`
/// waits for a free slot (FIFO), takes an idle connection or connects a new one, and
/// returns a lease; the lease gives the connection back when it is destroyed. A broken
/// connection (a lost server, a cancel that could not finish) or one left inside a
/// transaction is closed instead of returned. The pool must outlive its leases.
/// @code
/// corio::pg::pool db("host=/run/postgresql dbname=app", 8);
/// corio::task<std::string> name_of(int id) {
///     auto conn = co_await db.acquire();
///     auto r = co_await conn->query("SELECT name FROM users WHERE id = $1", id);
///     co_return r[0][0].as<std::string>();
/// }   // the connection goes back to the pool here
/// @endcode
class pool {
public:
    /// A pool for `conninfo` (as connection::connect takes it) of at most max_size connections.
    pool(std::string conninfo, std::size_t max_size)
        : conninfo_(std::move(conninfo)), slots_(max_size), idle_(0), max_size_(max_size) {}
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// A connection on loan from a pool: use it through -> or *; destroying the lease (or
    /// release()) gives it back. Move-only.
    class [[nodiscard]] lease {
    public:
        lease() = default;
        /// Takes over o's connection; o holds none afterwards.
        lease(lease&& o) noexcept
            : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)), permit_(std::move(o.permit_)) {}
        /// Gives back the connection held, then takes over o's.
        lease& operator=(lease&& o) noexcept {
            if (this != &o) {
                release();
                pool_ = std::exchange(o.pool_, nullptr);
                conn_ = std::move(o.conn_);
                permit_ = std::move(o.permit_);
            }
            return *this;
        }
        ~lease() { release(); }

        /// The connection.
        connection& operator*() noexcept { return conn_; }
        /// The connection's members.
        connection* operator->() noexcept { return &conn_; }
        /// True while this lease holds a connection.
        explicit operator bool() const noexcept { return pool_ != nullptr; }

        /// Gives the connection back now: to the idle queue if it is open and outside a
        /// transaction, else closed; then frees its slot for the next acquire().
        void release() noexcept {
            if (pool_ == nullptr) return;
            pool* p = std::exchange(pool_, nullptr);
            if (conn_.is_open() && !conn_.in_transaction()) {
                // The idle queue is unbounded: try_push always takes it.
                p->idle_.try_push(std::move(conn_));
            } else {
                try {
                    conn_.close();
                } catch (...) {  // a query still running on it: a misuse the connection reports itself
                }
                --p->open_;
            }
            conn_ = connection();
            permit_.release();  // after the connection is back, so that the next holder finds it
        }

    private:
        friend class pool;
        lease(pool& p, connection c, semaphore::permit permit) noexcept
            : pool_(&p), conn_(std::move(c)), permit_(std::move(permit)) {}
        pool* pool_ = nullptr;
        connection conn_;
        semaphore::permit permit_;
    };

    /// Waits for a slot, then lends an idle connection (a broken idle one is closed and
    /// skipped) or connects a new one. A failed connect throws its pg::error and frees the
    /// slot. A cancellation point.
    task<lease> acquire() {
        semaphore::permit permit = co_await slots_.acquire();
        while (std::optional<connection> c = idle_.try_pop()) {
            if (c->alive()) co_return lease(*this, std::move(*c), std::move(permit));
            --open_;  // gone while idle (the server ended it): dropped
        }
        connection fresh = co_await connection::connect(conninfo_);
        ++open_;
        co_return lease(*this, std::move(fresh), std::move(permit));
    }

    /// The most connections the pool holds at once.
    [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }
    /// Connections open now, idle or lent.
    [[nodiscard]] std::size_t open() const noexcept { return open_; }
    /// Connections open and idle now.
    [[nodiscard]] std::size_t idle() const noexcept { return idle_.size(); }

private:
    std::string conninfo_;
    semaphore slots_;
    queue<connection> idle_;
    std::size_t max_size_;
    std::size_t open_ = 0;
};

}  // namespace corio::pg
