# Runs an example with a given command line and checks how it ends: its exit status, and
# what it printed on stdout and on stderr. For the examples' command-line tests (--help,
# a bad argument, a loop that cannot start), whose exit status is not always 0.
#
#   cmake -DEXPECT_RC=<n> [-DEXPECT_STDOUT=<regex>] [-DEXPECT_STDERR=<regex>]
#         -P cli_check.cmake -- <command> [<arg>...]
#
# The regexes are CMake's ('.' matches a newline too, '^' and '$' are the start and end of
# the whole stream). Whatever the test, a sanitizer report or std::terminate fails it: an
# exit status of 1 alone could be ASan's.

cmake_minimum_required(VERSION 3.23)

set(cmd)
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 1 ${last})
  if(seen_separator)
    string(REPLACE ";" "\\;" arg "${CMAKE_ARGV${i}}")
    list(APPEND cmd "${arg}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(seen_separator TRUE)
  endif()
endforeach()
if(NOT cmd OR NOT DEFINED EXPECT_RC)
  message(FATAL_ERROR "usage: cmake -DEXPECT_RC=<n> [-DEXPECT_STDOUT=<regex>] [-DEXPECT_STDERR=<regex>] -P cli_check.cmake -- <command> [<arg>...]")
endif()

execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("--- stdout:\n${out}--- stderr:\n${err}---")

function(shown regex result)
  string(REPLACE "\n" "\\n" regex "${regex}")
  set(${result} "'${regex}'" PARENT_SCOPE)
endfunction()
set(failures)
if(NOT rc STREQUAL "${EXPECT_RC}")
  list(APPEND failures "the command exited with '${rc}', not ${EXPECT_RC}")
endif()
foreach(stream stdout stderr)
  string(TOUPPER ${stream} upper)
  if(stream STREQUAL "stdout")
    set(text "${out}")
  else()
    set(text "${err}")
  endif()
  if(DEFINED EXPECT_${upper} AND NOT text MATCHES "${EXPECT_${upper}}")
    shown("${EXPECT_${upper}}" regex)
    list(APPEND failures "${stream} does not match the regex ${regex}")
  endif()
endforeach()
if("${out}${err}" MATCHES "Sanitizer|runtime error:|terminate called")
  list(APPEND failures "the output has a sanitizer report or a std::terminate")
endif()

if(failures)
  list(JOIN failures "\n  " text)
  list(JOIN cmd " " shown_cmd)
  message(FATAL_ERROR "cli_check: ${shown_cmd}\n  ${text}")
endif()
