#pragma once
/// @file
/// corio::pg::connection: one PostgreSQL connection driven by libpq's asynchronous API on
/// the loop (PQconnectPoll, PQsendQueryParams, PQflush, PQconsumeInput, PQisBusy, each
/// wait a wait_readable / wait_writable on libpq's socket).
///
/// Cancellation: a query whose task is cancelled (or whose wait_for runs out) sends the
/// server a cancel request (PQcancel, which blocks, on corio's thread pool), then reads
/// what is left of the query's answer so that the connection is ready for the next one;
/// only then does the task see cancelled_error (timeout_error from wait_for). Both steps
/// run shielded, bounded by the connection's cancel timeout; past it, the connection is
/// marked broken rather than left half-read.

#include <libpq-fe.h>
#include <poll.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <corio/cancel.hpp>
#include <corio/errors.hpp>
#include <corio/outcome.hpp>
#include <corio/poll.hpp>
#include <corio/postgres/error.hpp>
#include <corio/postgres/result.hpp>
#include <corio/postgres/statement.hpp>
#include <corio/task.hpp>
#include <corio/thread_pool.hpp>
#include <corio/time.hpp>

namespace corio::pg {

/// Where connection::pipeline puts its sync points (PQpipelineSync), which decides what
/// one failing query does to the others.
enum class pipeline_sync {
    /// A sync after every query: each query is a transaction of its own, and a failing
    /// query fails alone; the others' results are unaffected.
    per_query,
    /// One sync at the end: the whole pipeline is one implicit transaction. After a failing
    /// query the server skips every later one (each reported as an error with aborted()),
    /// and rolls back the earlier ones' changes, though their results are still returned.
    at_end,
};

/// @cond CORIO_INTERNAL
namespace detail {
struct conn_deleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct cancel_deleter {
    void operator()(PGcancel* c) const noexcept { PQfreeCancel(c); }
};
}  // namespace detail
/// @endcond

/// One connection to a PostgreSQL server. Move-only; one query at a time (a pool gives
/// concurrency). The connection must outlive the tasks that query on it, and stay where
/// it is while one runs.
/// @code
/// auto conn = co_await corio::pg::connection::connect("host=/run/postgresql dbname=app");
/// corio::pg::result r = co_await conn.query("SELECT $1::int + $2", 1, 2);
/// int three = r[0][0].as<int>();
/// @endcode
class connection {
public:
    /// Not connected: every query throws pg::error.
    connection() = default;
    /// Takes over o's connection; o is left closed.
    connection(connection&& o) noexcept = default;
    /// Closes this connection and takes over o's.
    connection& operator=(connection&& o) noexcept = default;
    ~connection() = default;

    /// Connects with a libpq connection string ("host=... port=... dbname=... user=...")
    /// or URI. A refused connection, a wrong password, an unknown database throw pg::error
    /// with step "connect" and libpq's message. libpq's connect_timeout does not apply to
    /// an asynchronous connect: put the connect under wait_for for a deadline.
    static task<connection> connect(std::string conninfo) {
        connection conn;
        conn.c_.reset(PQconnectStart(conninfo.c_str()));
        if (!conn.c_) throw std::bad_alloc();
        PGconn* c = conn.c_.get();
        if (PQstatus(c) == CONNECTION_BAD) throw detail::error_from_connection("connect", c);
        // PQconnectStart counts as PGRES_POLLING_WRITING; the socket may change between
        // polls (another host, another address), so it is asked for each time.
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (st != PGRES_POLLING_OK) {
            if (st == PGRES_POLLING_FAILED) throw detail::error_from_connection("connect", c);
            const int fd = PQsocket(c);
            if (fd < 0) throw detail::error_from_connection("connect", c);
            if (st == PGRES_POLLING_READING)
                co_await corio::wait_readable(fd);
            else
                co_await corio::wait_writable(fd);
            st = PQconnectPoll(c);
        }
        if (PQsetnonblocking(c, 1) != 0) throw detail::error_from_connection("connect", c);
        co_return conn;
    }

    /// Runs `sql` with `args` as its parameters ($1, $2...; see statement) and returns its
    /// result. A query the server rejects throws pg::error with its SQLSTATE; the
    /// connection stays usable. A lost server throws pg::error with connection_lost().
    template <class... Args>
    task<result> query(std::string sql, const Args&... args) {
        return query(statement(std::move(sql), args...));
    }
    /// Runs a statement made beforehand.
    task<result> query(statement s) {
        PGconn* c = begin("query");
        busy_scope busy(*this);
        send(s, "query");
        std::exception_ptr stopped;
        result last;
        result failed;
        bool lost = false;
        try {
            co_await flush("query");
            for (;;) {
                result r;
                try {
                    r = co_await next_result("query");
                } catch (const error&) {
                    if (!failed.native_handle()) throw;
                    lost = true;  // the server sent its error and then closed: report the error
                    break;
                }
                PGresult* p = r.native_handle();
                if (p == nullptr) break;
                const ExecStatusType st = PQresultStatus(p);
                if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) {
                    if (!failed.native_handle()) failed = std::move(r);
                } else if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                    broken_ = true;
                    throw detail::client_error("query", "COPY is not supported by corio::pg (the connection is closed)",
                                               true);
                } else {
                    last = std::move(r);
                }
            }
        } catch (const cancelled_error&) {
            stopped = std::current_exception();
        } catch (...) {
            broken_ = true;  // cut off in the middle of an answer: the connection cannot be trusted
            throw;
        }
        if (stopped) {
            co_await recover();
            std::rethrow_exception(stopped);
        }
        if (failed.native_handle() != nullptr) {
            error e = detail::error_from_result("query", failed.native_handle(), c, lost);
            if (e.connection_lost()) broken_ = true;
            throw e;
        }
        co_return last;
    }

    /// Runs a command (INSERT, UPDATE, CREATE...) and returns the number of rows it
    /// affected; failures as query().
    template <class... Args>
    task<std::int64_t> execute(std::string sql, const Args&... args) {
        return execute(statement(std::move(sql), args...));
    }
    /// Runs a statement made beforehand as a command.
    task<std::int64_t> execute(statement s) {
        result r = co_await query(std::move(s));
        co_return r.affected_rows();
    }

    /// Pipeline mode, the fast path for many small queries: every statement is sent
    /// before any answer is read (one round trip instead of one per query), and each one's
    /// outcome comes back in order, a result or the pg::error of that query. With
    /// pipeline_sync::per_query a failing query fails alone; with pipeline_sync::at_end the
    /// queries after it are skipped by the server (errors with aborted()). A lost
    /// connection throws, as query() does.
    /// @code
    /// std::vector<corio::pg::statement> batch;
    /// for (int i = 0; i < 1000; ++i) batch.emplace_back("SELECT $1::int * 2", i);
    /// auto outcomes = co_await conn.pipeline(std::move(batch));
    /// int doubled = outcomes[10].value()[0][0].as<int>();  // value() rethrows that query's error
    /// @endcode
    task<std::vector<outcome<result>>> pipeline(std::vector<statement> batch,
                                                pipeline_sync sync = pipeline_sync::per_query) {
        PGconn* c = begin("pipeline");
        busy_scope busy(*this);
        std::vector<outcome<result>> out;
        out.reserve(batch.size());
        if (batch.empty()) co_return out;
        if (PQenterPipelineMode(c) == 0) throw detail::error_from_connection("pipeline", c);
        pending_syncs_ = 0;
        std::exception_ptr stopped;
        try {
            for (std::size_t i = 0; i < batch.size(); ++i) {
                send(batch[i], "pipeline");
                if (sync == pipeline_sync::per_query || i + 1 == batch.size()) {
                    if (PQpipelineSync(c) == 0) throw fail("pipeline");
                    ++pending_syncs_;
                }
                // Start sending while the rest is queued, without waiting: the server
                // works on the first queries meanwhile.
                if (i % 64 == 63 && PQflush(c) < 0) throw fail("pipeline");
            }
            co_await flush("pipeline");
            std::size_t failed_at = 0;  // the query that made the server skip the rest of its sync group
            while (pending_syncs_ > 0) {
                result r = co_await next_result("pipeline");
                PGresult* p = r.native_handle();
                if (p == nullptr) continue;  // the end of one query's results
                switch (PQresultStatus(p)) {
                    case PGRES_PIPELINE_SYNC:
                        --pending_syncs_;
                        break;
                    case PGRES_PIPELINE_ABORTED:
                        out.emplace_back(std::make_exception_ptr(skipped(out.size(), failed_at)));
                        break;
                    case PGRES_FATAL_ERROR:
                    case PGRES_BAD_RESPONSE:
                        failed_at = out.size();
                        out.emplace_back(std::make_exception_ptr(
                            detail::error_from_result("pipeline[" + std::to_string(out.size()) + "]", p, c, false)));
                        break;
                    default:
                        out.emplace_back(std::move(r));
                        break;
                }
            }
            if (out.size() != batch.size()) {
                broken_ = true;
                throw detail::client_error(
                    "pipeline",
                    "the server answered " + std::to_string(out.size()) + " queries of " + std::to_string(batch.size()),
                    true);
            }
            if (PQexitPipelineMode(c) == 0) throw fail("pipeline");
        } catch (const cancelled_error&) {
            stopped = std::current_exception();
        } catch (...) {
            broken_ = true;  // the pipeline's state is unknown: the connection cannot be trusted
            throw;
        }
        if (stopped) {
            co_await recover();
            std::rethrow_exception(stopped);
        }
        co_return out;
    }

    /// True while connected and not broken: a query may be sent.
    [[nodiscard]] bool is_open() const noexcept { return c_ && !is_broken(); }
    /// True once a failure ended the connection (a lost server, a cancel that could not be
    /// completed): every query on it throws pg::error. A pool drops such a connection.
    [[nodiscard]] bool is_broken() const noexcept { return c_ && (broken_ || PQstatus(c_.get()) == CONNECTION_BAD); }
    /// Reads, without waiting, what the server sent while the connection sat idle (its end,
    /// when it terminated the session); false once the connection is known to be gone.
    /// The pool asks this before it lends an idle connection.
    bool alive() noexcept {
        if (!c_ || busy_) return c_ != nullptr && !is_broken();
        if (is_broken()) return false;
        // Twice: a read that finds the server's last message stops there, and only the
        // next one meets the end of the stream.
        for (int i = 0; i < 2 && !broken_; ++i)
            if (PQconsumeInput(c_.get()) == 0) broken_ = true;
        return !is_broken();
    }
    /// True inside a transaction block (BEGIN without COMMIT or ROLLBACK yet), or while a
    /// query runs.
    [[nodiscard]] bool in_transaction() const noexcept { return c_ && PQtransactionStatus(c_.get()) != PQTRANS_IDLE; }
    /// The server process serving this connection (pg_stat_activity.pid); 0 when closed.
    [[nodiscard]] int backend_pid() const noexcept { return c_ ? PQbackendPID(c_.get()) : 0; }
    /// The SQLSTATE the server ended the last cancelled query with: "57014" (query
    /// cancelled) when the cancel request reached it while it ran; empty when it had
    /// finished first, or no query on this connection was cancelled.
    [[nodiscard]] const std::string& last_cancel_sqlstate() const noexcept { return cancel_sqlstate_; }
    /// How long a cancelled query may take to send its cancel request and read the rest of
    /// its answer before the connection is given up as broken (default 10 s).
    void set_cancel_timeout(std::chrono::milliseconds d) noexcept { cancel_timeout_ = d; }
    /// The libpq connection, still owned by this object (for PQserverVersion, PQparameterStatus...).
    [[nodiscard]] PGconn* native_handle() const noexcept { return c_.get(); }
    /// Closes the connection (PQfinish). Not while a query runs on it: usage_error.
    void close() {
        if (busy_) throw usage_error("corio::pg: connection::close while a query runs on it");
        c_.reset();
    }

private:
    // One query at a time; the flag also keeps close() from pulling the socket from under
    // a pending wait (io_uring's poll holds the file).
    struct busy_scope {
        explicit busy_scope(connection& c) noexcept : c_(c) { c_.busy_ = true; }
        busy_scope(const busy_scope&) = delete;
        busy_scope& operator=(const busy_scope&) = delete;
        ~busy_scope() { c_.busy_ = false; }
        connection& c_;
    };

    PGconn* begin(const char* step) {
        if (busy_)
            throw usage_error("corio::pg: a query is already running on this connection (one at a time: use a pool)");
        if (!c_) throw detail::client_error(step, "the connection is closed", true);
        if (is_broken()) {
            broken_ = true;
            throw detail::client_error(step, "the connection is broken: an earlier failure ended it", true);
        }
        return c_.get();
    }

    // libpq's failure on the connection; a lost one marks it broken.
    error fail(const char* step) {
        error e = detail::error_from_connection(step, c_.get());
        if (e.connection_lost()) broken_ = true;
        return e;
    }

    int socket(const char* step) {
        const int fd = PQsocket(c_.get());
        if (fd < 0) {
            broken_ = true;
            throw detail::client_error(step, "the connection has no socket", true);
        }
        return fd;
    }

    void send(const statement& s, const char* step) {
        const auto& params = s.params();
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
        if (PQsendQueryParams(c_.get(), s.sql().c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                              nullptr, nullptr, 0) == 0)
            throw fail(step);
    }

    // Sends what libpq has queued. PQflush returns 1 while some is left: wait for the socket
    // to take more, reading meanwhile (the server may be blocked writing its answers to us).
    task<> flush(const char* step) {
        PGconn* c = c_.get();
        for (;;) {
            const int r = PQflush(c);
            if (r == 0) co_return;
            if (r < 0) throw fail(step);
            const unsigned events = co_await corio::detail::poll_awaiter(socket(step), POLLIN | POLLOUT, "corio::pg");
            if ((events & POLLIN) != 0U && PQconsumeInput(c) == 0) throw fail(step);
        }
    }

    // The next result of what runs (null: the end of one query's results), reading from
    // the socket while libpq needs more.
    task<result> next_result(const char* step) {
        PGconn* c = c_.get();
        while (PQisBusy(c) != 0) {
            co_await corio::wait_readable(socket(step));
            if (PQconsumeInput(c) == 0) throw fail(step);
        }
        co_return result(PQgetResult(c));
    }

    // Pipelining a sync group's skipped query: which one failed, and that the rest waits for the sync.
    static error skipped(std::size_t index, std::size_t failed_at) {
        return detail::client_error(
            "pipeline[" + std::to_string(index) + "]",
            "not run: query " + std::to_string(failed_at) +
                " of the pipeline failed, and the server skips the queries after a failure up to "
                "the next sync point (pipeline_sync::at_end)",
            false, true);
    }

    // After a cancel: tell the server, read the rest of the answer, leave pipeline mode.
    // Shielded, so that a cancel scope's level-triggered cancel does not cut it short, and
    // bounded by cancel_timeout_; whatever goes wrong leaves the connection broken.
    task<> recover() {
        auto shielded = corio::shield(recover_unshielded());  // bound to a local: g++ 12 and temporaries in co_await
        co_await shielded;
    }
    task<> recover_unshielded() {
        cancel_sqlstate_.clear();
        if (is_broken()) co_return;
        try {
            co_await send_cancel();
            auto drained = corio::wait_for(drain(), cancel_timeout_);
            co_await drained;
        } catch (...) {
            broken_ = true;
        }
    }

    // PQcancel connects to the server and waits for it to take the request: a blocking
    // call, made on the thread pool. The server may have finished the query meanwhile; then
    // the request finds the connection idle and does nothing.
    task<> send_cancel() {
        std::unique_ptr<PGcancel, detail::cancel_deleter> handle(PQgetCancel(c_.get()));
        if (!handle) {
            broken_ = true;
            co_return;
        }
        auto sent = corio::to_thread([h = handle.get()] {
            std::array<char, 256> why{};
            return PQcancel(h, why.data(), static_cast<int>(why.size())) != 0;
        });
        // A request that could not be sent still leaves the drain: it ends when the query
        // does, or at the deadline.
        (void)co_await sent;
    }

    task<> drain() {
        PGconn* c = c_.get();
        co_await flush("cancel");
        if (PQpipelineStatus(c) != PQ_PIPELINE_OFF) {
            // The pipeline may have been cut short before its last sync went out: one more
            // closes whatever is open (an extra sync point is harmless).
            if (PQpipelineSync(c) == 0) throw fail("cancel");
            ++pending_syncs_;
            co_await flush("cancel");
            while (pending_syncs_ > 0) {
                result r = co_await next_result("cancel");
                if (r.native_handle() != nullptr && PQresultStatus(r.native_handle()) == PGRES_PIPELINE_SYNC)
                    --pending_syncs_;
                note_cancel(r);
            }
            if (PQexitPipelineMode(c) == 0) throw fail("cancel");
            co_return;
        }
        for (;;) {
            result r = co_await next_result("cancel");
            if (r.native_handle() == nullptr) co_return;
            note_cancel(r);
        }
    }

    // The first error the drain meets is what the cancel did to the query.
    void note_cancel(const result& r) {
        PGresult* p = r.native_handle();
        if (p != nullptr && cancel_sqlstate_.empty() && PQresultStatus(p) == PGRES_FATAL_ERROR)
            cancel_sqlstate_ = detail::field_of(p, PG_DIAG_SQLSTATE);
    }

    std::unique_ptr<PGconn, detail::conn_deleter> c_;
    std::string cancel_sqlstate_;
    std::chrono::milliseconds cancel_timeout_{10'000};
    std::size_t pending_syncs_ = 0;
    bool broken_ = false;
    bool busy_ = false;
};

}  // namespace corio::pg
