// Issue: the runtime under faults.
#include <catch2/catch.hpp>

#include <corio/corio.hpp>

#include "test_util.hpp"
