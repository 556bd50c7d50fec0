# Runs a command and checks both its exit status and its output; a ctest test registered
# through this script fails unless the command exits 0 AND its output matches.
# (PASS_REGULAR_EXPRESSION alone makes ctest ignore the exit status, so a program that prints
# the expected text and then dies with a sanitizer report would pass.)
#
#   cmake [-DEXPECT=<regex>] [-DEXIT=<status>|nonzero]
#         [-DNUMBER<i>=<regex with one capture group> [-DNUMBER<i>_MIN=<x>] [-DNUMBER<i>_MAX=<x>]]...
#         -P run_and_match.cmake -- <command> [<arg>...]
#
# EXIT            the exit status the command must end with (default 0); `nonzero` for any
#                 failure (a configure step that must refuse, say).
# EXPECT          the combined stdout and stderr must match this regex (CMake syntax; '.'
#                 matches a newline too, '^' and '$' are the start and end of the whole output).
# NUMBER<i>       i = 1..9: the first match of this regex in the output must exist, and its
#                 capture group 1 is a number that must be >= NUMBER<i>_MIN and/or
#                 <= NUMBER<i>_MAX when those are given.
#
# The command's output is echoed as it runs.

cmake_minimum_required(VERSION 3.23)

set(cmd)
set(shown_cmd "")
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 1 ${last})
  if(seen_separator)
    string(REPLACE ";" "\\;" arg "${CMAKE_ARGV${i}}")  # keeps an argument with ';' whole
    list(APPEND cmd "${arg}")
    if(CMAKE_ARGV${i} MATCHES "[ \t\n;'\"]")
      string(APPEND shown_cmd " '${CMAKE_ARGV${i}}'")
    else()
      string(APPEND shown_cmd " ${CMAKE_ARGV${i}}")
    endif()
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(seen_separator TRUE)
  endif()
endforeach()
if(NOT cmd)
  message(FATAL_ERROR "run_and_match: no command given; usage: cmake [-D...] -P run_and_match.cmake -- <command> [<arg>...]")
endif()

execute_process(COMMAND ${cmd}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output ERROR_VARIABLE output
  ECHO_OUTPUT_VARIABLE ECHO_ERROR_VARIABLE)

# Regexes as written in CMake, for the messages.
function(shown regex out)
  string(REPLACE "\n" "\\n" regex "${regex}")
  string(REPLACE "\t" "\\t" regex "${regex}")
  set(${out} "'${regex}'" PARENT_SCOPE)
endfunction()
set(failures)
if(NOT DEFINED EXIT)
  set(EXIT 0)
endif()
if(EXIT STREQUAL "nonzero")
  if(result STREQUAL "0")
    list(APPEND failures "the command exited with 0, not with a failure")
  endif()
elseif(NOT result STREQUAL "${EXIT}")
  list(APPEND failures "the command exited with '${result}', not ${EXIT}")
endif()
if(DEFINED EXPECT AND NOT output MATCHES "${EXPECT}")
  shown("${EXPECT}" expect)
  list(APPEND failures "the output does not match the regex ${expect}")
endif()
foreach(i RANGE 1 9)
  if(NOT DEFINED NUMBER${i})
    continue()
  endif()
  shown("${NUMBER${i}}" regex)
  if(NOT output MATCHES "${NUMBER${i}}")
    list(APPEND failures "the output has no match for ${regex}")
    continue()
  endif()
  set(value "${CMAKE_MATCH_1}")
  if(NOT value MATCHES "^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)$")
    list(APPEND failures "${regex} captured '${value}', which is not a number")
    continue()
  endif()
  if(DEFINED NUMBER${i}_MIN AND value LESS "${NUMBER${i}_MIN}")
    list(APPEND failures "${regex} captured ${value}, below the minimum ${NUMBER${i}_MIN}")
  elseif(DEFINED NUMBER${i}_MAX AND value GREATER "${NUMBER${i}_MAX}")
    list(APPEND failures "${regex} captured ${value}, above the maximum ${NUMBER${i}_MAX}")
  endif()
endforeach()

if(failures)
  list(JOIN failures "\n  " text)
  message(FATAL_ERROR "run_and_match:${shown_cmd}\n  ${text}")
endif()
