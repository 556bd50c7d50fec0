#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <corio/errors.hpp>

// cancelled_error is not a std::exception: tell Catch how to print one that escapes a test.
CATCH_TRANSLATE_EXCEPTION(const corio::cancelled_error& e) { return e.what(); }
