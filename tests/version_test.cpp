#include <catch2/catch.hpp>

#include <string>

#include <corio/corio.hpp>

// CORIO_PROJECT_VERSION is CMake's PROJECT_VERSION, given to this test alone by
// tests/CMakeLists.txt: the test fails if the header and the CMake project disagree.
#ifndef CORIO_PROJECT_VERSION
#error "tests/CMakeLists.txt defines CORIO_PROJECT_VERSION for this file"
#endif

TEST_CASE("the version macros are the CMake project version") {
    const std::string parts = std::to_string(CORIO_VERSION_MAJOR) + "." + std::to_string(CORIO_VERSION_MINOR) + "." +
                              std::to_string(CORIO_VERSION_PATCH);
    CHECK(parts == CORIO_PROJECT_VERSION);
    CHECK(std::string(CORIO_VERSION) == CORIO_PROJECT_VERSION);
}

TEST_CASE("CORIO_VERSION_NUMBER is one number with two digits each for minor and patch") {
    STATIC_REQUIRE(CORIO_VERSION_NUMBER ==
                   CORIO_VERSION_MAJOR * 10000 + CORIO_VERSION_MINOR * 100 + CORIO_VERSION_PATCH);
    // Two digits each for minor and patch: beyond 99 one part would spill into the next.
    STATIC_REQUIRE(CORIO_VERSION_MINOR < 100);
    STATIC_REQUIRE(CORIO_VERSION_PATCH < 100);
#if CORIO_VERSION_NUMBER < 100
    FAIL("CORIO_VERSION_NUMBER is usable in #if and says 0.1.0 or later");
#endif
}
