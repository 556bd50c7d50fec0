#pragma once
/// @file
/// corio::pg::error: a PostgreSQL failure, with the step that failed, the server's message
/// and its SQLSTATE.

#include <libpq-fe.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace corio::pg {

/// What corio::pg throws: a refused connection, a wrong password, a query the server
/// rejected, a lost server. what() reads "corio::pg: <step>: <message> (SQLSTATE <code>)".
/// @code
/// try {
///     co_await conn.query("SELECT * FROM missing");
/// } catch (const corio::pg::error& e) {
///     if (e.sqlstate() == "42P01") { /* undefined table */ }
/// }
/// @endcode
class error : public std::runtime_error {
public:
    /// What an error carries.
    struct fields {
        std::string step;              ///< "connect", "query", "pipeline", "value"...
        std::string message;           ///< the server's (or libpq's) message
        std::string sqlstate;          ///< five characters, or empty when the server sent none
        std::string detail;            ///< the server's DETAIL line, if any
        bool connection_lost = false;  ///< the connection is gone (the server ended it, or it dropped)
        bool aborted = false;          ///< a pipelined query skipped after an earlier one failed
    };

    /// An error with these fields.
    explicit error(fields f) : std::runtime_error(describe(f)), f_(std::move(f)) {}

    /// The step that failed: "connect", "query", "execute", "pipeline", "value", "pool"...
    [[nodiscard]] const std::string& step() const noexcept { return f_.step; }
    /// The server's primary message (or libpq's, for a failure on the client's side).
    [[nodiscard]] const std::string& server_message() const noexcept { return f_.message; }
    /// The SQLSTATE ("42P01": undefined table; "57014": cancelled), empty when none was sent.
    [[nodiscard]] const std::string& sqlstate() const noexcept { return f_.sqlstate; }
    /// The server's DETAIL line, empty when none was sent.
    [[nodiscard]] const std::string& detail() const noexcept { return f_.detail; }
    /// True when the connection is gone: it cannot run another query.
    [[nodiscard]] bool connection_lost() const noexcept { return f_.connection_lost; }
    /// True for a pipelined query that the server skipped because an earlier query of the
    /// same pipeline (up to its sync point) failed.
    [[nodiscard]] bool aborted() const noexcept { return f_.aborted; }

private:
    static std::string describe(const fields& f) {
        std::string s = "corio::pg: " + f.step + ": " + f.message;
        if (!f.sqlstate.empty()) s += " (SQLSTATE " + f.sqlstate + ")";
        if (!f.detail.empty()) s += ": " + f.detail;
        if (f.connection_lost) s += " [connection lost]";
        return s;
    }
    fields f_;
};

/// @cond CORIO_INTERNAL
namespace detail {

// libpq's messages end in a newline and may span lines ("...failed: No such file\n\tIs the
// server running...?"): one line, without the trailing blank.
inline std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (const char ch : text) {
        if (ch == '\n' || ch == '\t' || ch == '\r') {
            space = true;
            continue;
        }
        if (space && !out.empty()) out += ' ';
        space = false;
        out += ch;
    }
    return out;
}

inline std::string field_of(const PGresult* r, int code) {
    const char* v = PQresultErrorField(r, code);
    return v != nullptr ? std::string(v) : std::string();
}

// The failure a result reports; c (may be null) and lost say whether the connection survived it.
inline error error_from_result(std::string step, const PGresult* r, PGconn* c, bool lost) {
    error::fields f;
    f.step = std::move(step);
    f.message = field_of(r, PG_DIAG_MESSAGE_PRIMARY);
    if (f.message.empty()) f.message = one_line(PQresultErrorMessage(r));
    if (f.message.empty() && c != nullptr) f.message = one_line(PQerrorMessage(c));
    if (f.message.empty()) f.message = std::string("the server answered ") + PQresStatus(PQresultStatus(r));
    f.sqlstate = field_of(r, PG_DIAG_SQLSTATE);
    f.detail = one_line(field_of(r, PG_DIAG_MESSAGE_DETAIL));
    f.connection_lost = lost || c == nullptr || PQstatus(c) == CONNECTION_BAD;
    return error(std::move(f));
}

// A failure found on the client's side: no server message, no SQLSTATE.
inline error client_error(std::string step, std::string message, bool lost, bool aborted = false) {
    error::fields f;
    f.step = std::move(step);
    f.message = std::move(message);
    f.connection_lost = lost;
    f.aborted = aborted;
    return error(std::move(f));
}

// A failure libpq reports on the connection itself (connect, send, receive).
inline error error_from_connection(std::string step, PGconn* c) {
    error::fields f;
    f.step = std::move(step);
    f.message = c != nullptr ? one_line(PQerrorMessage(c)) : std::string();
    if (f.message.empty()) f.message = "libpq reported a failure without a message";
    f.connection_lost = c == nullptr || PQstatus(c) == CONNECTION_BAD;
    return error(std::move(f));
}

}  // namespace detail
/// @endcond

}  // namespace corio::pg
