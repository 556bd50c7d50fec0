#pragma once
/// @file
/// corio::pg: PostgreSQL through libpq's asynchronous API, on the loop. An optional part:
/// compiled only where libpq is found (CMake target corio::postgres, which links libpq);
/// the core needs none of it.
///
/// - connection::connect(conninfo), query(sql, args...), execute(sql, args...),
///   pipeline(statements): connection.hpp
/// - result, row, value (text format, typed access): result.hpp
/// - statement (a query and its parameters): statement.hpp
/// - error (step, server message, SQLSTATE, connection_lost): error.hpp
/// - pool (at most N connections, leases): pool.hpp

#include <corio/postgres/connection.hpp>
#include <corio/postgres/error.hpp>
#include <corio/postgres/pool.hpp>
#include <corio/postgres/result.hpp>
#include <corio/postgres/statement.hpp>

/// @namespace corio::pg
/// PostgreSQL through libpq's asynchronous API: connections, queries with parameters,
/// pipelines, a connection pool, and errors carrying the server's SQLSTATE.
