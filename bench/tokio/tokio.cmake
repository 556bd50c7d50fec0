# The Tokio peer of bench/echo.cpp: bench/tokio/, a Rust echo server, built offline from
# Debian's crate sources (cargo, librust-tokio-dev), never from a registry on the internet.
# Where those are missing the peer is skipped with a note, and the C++ benchmarks build as
# before. Included from bench/CMakeLists.txt, after bench_echo and the report targets.

option(CORIO_BENCH_TOKIO "Build the Tokio echo peer of bench_echo (needs Debian's cargo and librust-tokio-dev)" ON)
set(CORIO_CARGO_REGISTRY /usr/share/cargo/registry CACHE PATH "Debian's crate sources, for the Tokio peer")
if(NOT CORIO_BENCH_TOKIO)
  message(STATUS "bench: Tokio peer off (CORIO_BENCH_TOKIO=OFF)")
  return()
endif()
# Debian's cargo and rustc, not a rustup toolchain earlier in PATH: CI has only Debian's,
# and the crate sources are written for that compiler.
find_program(CORIO_CARGO cargo PATHS /usr/bin NO_DEFAULT_PATH)
if(CORIO_CARGO)
  get_filename_component(corio_cargo_dir "${CORIO_CARGO}" DIRECTORY)
  find_program(CORIO_RUSTC rustc PATHS "${corio_cargo_dir}" NO_DEFAULT_PATH)
endif()
file(GLOB corio_tokio_crates LIST_DIRECTORIES true "${CORIO_CARGO_REGISTRY}/tokio-[0-9]*")

set(corio_tokio_missing "")
if(NOT CORIO_CARGO)
  set(corio_tokio_missing "no cargo in /usr/bin")
elseif(NOT EXISTS "${CORIO_CARGO}")
  set(corio_tokio_missing "no cargo at ${CORIO_CARGO}")
elseif(NOT CORIO_RUSTC OR NOT EXISTS "${CORIO_RUSTC}")
  set(corio_tokio_missing "no rustc beside ${CORIO_CARGO}")
elseif(NOT corio_tokio_crates)
  set(corio_tokio_missing "no tokio crate in ${CORIO_CARGO_REGISTRY}")
endif()

if(corio_tokio_missing)
  message(STATUS "bench: Tokio peer skipped (${corio_tokio_missing}; Debian: apt-get install cargo librust-tokio-dev)")
  return()
endif()
message(STATUS "bench: Tokio peer with ${CORIO_CARGO} and ${corio_tokio_crates}")

# The crate is copied into the build directory and built there: cargo writes Cargo.lock
# beside Cargo.toml, and that lock belongs to this machine's Debian crates, not to the
# source tree. CARGO_HOME there holds only the generated config, so no ~/.cargo is read.
set(corio_tokio_dir "${CMAKE_CURRENT_BINARY_DIR}/tokio")
set(corio_tokio_src "${CMAKE_CURRENT_LIST_DIR}")
set(corio_tokio_bin "${CMAKE_CURRENT_BINARY_DIR}/corio_bench_tokio_echo")
configure_file("${corio_tokio_src}/cargo-config.toml.in" "${corio_tokio_dir}/cargo-home/config.toml" @ONLY)
add_custom_command(
  OUTPUT "${corio_tokio_bin}"
  COMMAND ${CMAKE_COMMAND} -E copy_if_different "${corio_tokio_src}/Cargo.toml" "${corio_tokio_dir}/Cargo.toml"
  COMMAND ${CMAKE_COMMAND} -E copy_if_different "${corio_tokio_src}/src/main.rs" "${corio_tokio_dir}/src/main.rs"
  COMMAND ${CMAKE_COMMAND} -E env "CARGO_HOME=${corio_tokio_dir}/cargo-home" "CARGO_TARGET_DIR=${corio_tokio_dir}/target"
          "RUSTC=${CORIO_RUSTC}" ${CORIO_CARGO} build --release --offline
  # copy, not copy_if_different: the output must be newer than what it was built from.
  COMMAND ${CMAKE_COMMAND} -E copy "${corio_tokio_dir}/target/release/corio_bench_tokio_echo" "${corio_tokio_bin}"
  WORKING_DIRECTORY "${corio_tokio_dir}"
  DEPENDS "${corio_tokio_src}/Cargo.toml" "${corio_tokio_src}/src/main.rs"
          "${corio_tokio_dir}/cargo-home/config.toml"
  USES_TERMINAL
  COMMENT "Building the Tokio echo peer (cargo --offline, Debian's crates)"
  VERBATIM)
add_custom_target(bench_tokio_echo ALL DEPENDS "${corio_tokio_bin}")

# bench_echo runs the peer from here; building bench_echo builds the peer, and so do the reports.
target_compile_definitions(bench_echo PRIVATE "CORIO_BENCH_TOKIO_ECHO=\"${corio_tokio_bin}\"")
add_dependencies(bench_echo bench_tokio_echo)
add_dependencies(bench-report bench_tokio_echo)
add_dependencies(bench-report-full bench_tokio_echo)
