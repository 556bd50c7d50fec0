// Filled in by the commit that adds its cases.
#include <catch2/catch.hpp>
