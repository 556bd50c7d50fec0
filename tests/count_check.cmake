# harness.test_count: every Catch2 test case of corio_tests must be exactly one ctest entry
# per backend. Catch2 2.13's CatchAddTests splits a test case name at ';'
# (catchorg/Catch2#2674) into several entries that each match no test case; a name can also be
# lost. Either way the number of entries per backend differs from the number of test cases.
#
#   cmake -DTEST_EXECUTABLE=<corio_tests> -DCTEST=<ctest> -DTEST_DIR=<tests build dir>
#         -DBACKENDS=<backend>[,<backend>...] -P count_check.cmake
#
# Each backend's entries are those labelled with it, named "<backend>:" or "<backend>: "
# followed by the test case name.

cmake_minimum_required(VERSION 3.23)

foreach(var TEST_EXECUTABLE CTEST TEST_DIR BACKENDS)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "count_check: -D${var}=... is required")
  endif()
endforeach()
string(REPLACE "," ";" backends "${BACKENDS}")

# Lines of text as a CMake list whose elements are the lines with ';', '[' and ']' encoded
# (a list cannot hold a ';', and brackets change where it splits); empty lines dropped.
function(lines_to_list text out)
  string(REPLACE "@" "@AT@" text "${text}")
  string(REPLACE ";" "@SC@" text "${text}")
  string(REPLACE "[" "@LB@" text "${text}")
  string(REPLACE "]" "@RB@" text "${text}")
  string(REPLACE "\r" "" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  list(FILTER lines EXCLUDE REGEX "^$")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()
function(decode encoded out)
  string(REPLACE "@RB@" "]" text "${encoded}")
  string(REPLACE "@LB@" "[" text "${text}")
  string(REPLACE "@SC@" ";" text "${text}")
  string(REPLACE "@AT@" "@" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
function(describe title encoded_list out)
  set(text "${${out}}")
  if(encoded_list)
    string(APPEND text "\n  ${title}:")
    foreach(item IN LISTS encoded_list)
      decode("${item}" item)
      string(APPEND text "\n    \"${item}\"")
    endforeach()
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The Catch2 test cases (what catch_discover_tests lists too).
execute_process(COMMAND "${TEST_EXECUTABLE}" --list-test-names-only
  OUTPUT_VARIABLE catch_output ERROR_VARIABLE catch_error RESULT_VARIABLE catch_result)
if(NOT catch_result MATCHES "^[0-9]+$")
  message(FATAL_ERROR "count_check: '${TEST_EXECUTABLE} --list-test-names-only' failed (${catch_result}):\n"
                      "${catch_output}${catch_error}")
endif()
lines_to_list("${catch_output}" catch_names)
list(LENGTH catch_names catch_count)
if(catch_count EQUAL 0)
  message(FATAL_ERROR "count_check: ${TEST_EXECUTABLE} lists no test cases")
endif()
set(with_semicolon "${catch_names}")
list(FILTER with_semicolon INCLUDE REGEX "@SC@")

# ctest -N writes Testing/Temporary/LastTest.log under its test directory: list the tests
# from a scratch directory that includes TEST_DIR's, so that a ctest running in TEST_DIR
# keeps its own log.
set(list_dir "${TEST_DIR}/count_check")
file(WRITE "${list_dir}/CTestTestfile.cmake" "include(\"${TEST_DIR}/CTestTestfile.cmake\")\n")

set(report "")
foreach(backend IN LISTS backends)
  execute_process(COMMAND "${CTEST}" --test-dir "${list_dir}" -N -L "^${backend}$"
    OUTPUT_VARIABLE ctest_output ERROR_VARIABLE ctest_error RESULT_VARIABLE ctest_result)
  if(NOT ctest_result STREQUAL "0")
    message(FATAL_ERROR "count_check: 'ctest --test-dir ${list_dir} -N -L ^${backend}$' failed (${ctest_result}):\n"
                        "${ctest_output}${ctest_error}")
  endif()
  lines_to_list("${ctest_output}" ctest_lines)
  list(FILTER ctest_lines INCLUDE REGEX "^ *Test +#[0-9]+: ")
  set(entries "")
  foreach(line IN LISTS ctest_lines)
    string(REGEX REPLACE "^ *Test +#[0-9]+: " "" name "${line}")
    if(name MATCHES "^${backend}: ?(.*)$")
      set(name "${CMAKE_MATCH_1}")
    else()
      set(name "(no '${backend}:' prefix) ${name}")
    endif()
    list(APPEND entries "${name}")
  endforeach()
  list(LENGTH entries entry_count)

  set(missing "${catch_names}")
  if(entries)
    list(REMOVE_ITEM missing ${entries})
  endif()
  set(extra "${entries}")
  if(catch_names)
    list(REMOVE_ITEM extra ${catch_names})
  endif()
  if(NOT entry_count EQUAL catch_count OR missing OR extra)
    string(APPEND report "\n${backend}: ${entry_count} ctest entries (label '${backend}'), "
                         "but ${catch_count} Catch2 test cases")
    describe("test cases without an entry of their own" "${missing}" report)
    describe("entries that are no test case" "${extra}" report)
  endif()
endforeach()

if(report)
  set(hint "")
  if(with_semicolon)
    set(hint "\nCatch2 2.13 splits a test case name at ';' (catchorg/Catch2#2674): rename")
    describe("these test cases" "${with_semicolon}" hint)
  endif()
  message(FATAL_ERROR "count_check: the ctest entries do not match the Catch2 test cases:${report}${hint}")
endif()
message(STATUS "count_check: ${catch_count} Catch2 test cases, one ctest entry each for: ${BACKENDS}")
