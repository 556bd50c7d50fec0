#pragma once
/// @file
/// corio's version. These lines are the only place it is written: CMakeLists.txt reads the
/// three numbers from here for `project(VERSION)`, so the CMake package, corio.pc and the
/// headers cannot disagree.

/// The major version: it changes when code that compiled against corio may no longer compile.
#define CORIO_VERSION_MAJOR 0
/// The minor version: new features; while the major version is 0, a minor version may also
/// change the API.
#define CORIO_VERSION_MINOR 1
/// The patch version: fixes only.
#define CORIO_VERSION_PATCH 0

/// The version as one number, major * 10000 + minor * 100 + patch, for `#if`.
/// @code
/// #if CORIO_VERSION_NUMBER >= 100  // 0.1.0 or later
/// #endif
/// @endcode
#define CORIO_VERSION_NUMBER (CORIO_VERSION_MAJOR * 10000 + CORIO_VERSION_MINOR * 100 + CORIO_VERSION_PATCH)

/// The version as text, "major.minor.patch".
#define CORIO_VERSION "0.1.0"
