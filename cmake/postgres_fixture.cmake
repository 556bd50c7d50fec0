# The PostgreSQL server of corio::pg's tests and example: a ctest fixture (corio_postgres_server)
# that starts a throw-away server before the tests that need it and stops it after.
#
#   include(postgres_fixture)   then   corio_postgres_fixture(<out-var>)
#
# sets <out-var> to the server's connection string (empty when CORIO_POSTGRES_TESTS is OFF,
# and then no fixture is defined). The fixture's tests are added once, by the first caller.
# The server (tests/postgres/server.sh) lives in /tmp/corio-pg-<hash of the build dir>: a
# short path (a Unix socket path has at most 107 bytes), its own per build tree.
option(CORIO_POSTGRES_TESTS
       "Run corio::pg's tests and example against a throw-away PostgreSQL server (needs its binaries)" ON)

function(corio_postgres_fixture out)
  if(NOT CORIO_POSTGRES_TESTS)
    set(${out} "" PARENT_SCOPE)
    return()
  endif()
  string(MD5 build_hash "${PROJECT_BINARY_DIR}")
  string(SUBSTRING "${build_hash}" 0 10 build_hash)
  set(dir "/tmp/corio-pg-${build_hash}")
  set(port 55432)
  set(${out} "host=${dir} port=${port} dbname=postgres user=postgres" PARENT_SCOPE)
  get_property(defined GLOBAL PROPERTY corio_postgres_fixture_defined)
  if(defined)
    return()
  endif()
  set_property(GLOBAL PROPERTY corio_postgres_fixture_defined TRUE)
  set(script "${PROJECT_SOURCE_DIR}/tests/postgres/server.sh")
  add_test(NAME postgres.server.start COMMAND bash ${script} start ${dir} ${port})
  set_tests_properties(postgres.server.start PROPERTIES FIXTURES_SETUP corio_postgres_server LABELS postgres
                                                        TIMEOUT 120)
  add_test(NAME postgres.server.stop COMMAND bash ${script} stop ${dir})
  set_tests_properties(postgres.server.stop PROPERTIES FIXTURES_CLEANUP corio_postgres_server LABELS postgres
                                                       TIMEOUT 120)
endfunction()
