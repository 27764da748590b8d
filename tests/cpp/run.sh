#!/usr/bin/env bash
# Real C++ clients of libtickscore, run by scripts/test:
#   1. include/tickscore.h is what cbindgen (pinned) generates from ffi/src;
#   2. tests/cpp/test_abi.cpp, built with g++ -std=c++17 -Wall -Wextra -Werror
#      -pthread, linked against libtickscore.so and against libtickscore.a;
#   3. the same test under valgrind (0 errors, 0 bytes definitely or
#      indirectly lost), linked against a system-allocator build of the
#      library, since valgrind cannot see inside mimalloc.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
ffi_version=$(sed -n 's/^version = "\(.*\)"/\1/p' ffi/Cargo.toml | head -n 1)
[ "$version" = "$ffi_version" ] || { echo "ffi/Cargo.toml version $ffi_version != $version" >&2; exit 1; }
out=target/cpp
mkdir -p "$out/sysalloc"

echo "-- header is up to date (cbindgen $(cbindgen --version | cut -d' ' -f2))"
cbindgen --quiet --config ffi/cbindgen.toml --crate tickscore-ffi --output "$out/tickscore.h" ffi
diff -u include/tickscore.h "$out/tickscore.h" || { echo "include/tickscore.h is stale: regenerate it (see ffi/cbindgen.toml)" >&2; exit 1; }
grep -q "#define TICKSCORE_VERSION \"$version\"" include/tickscore.h || { echo "TICKSCORE_VERSION != $version" >&2; exit 1; }

echo "-- build libtickscore (system allocator for valgrind, then mimalloc)"
cargo build --release -p tickscore-ffi --no-default-features
cp target/release/libtickscore.so "$out/sysalloc/"
cargo build --release -p tickscore-ffi

CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pthread -Iinclude "-DEXPECTED_VERSION=\"$version\"")
# tract-linalg's assembly objects carry no .note.GNU-stack: keep the stack non-executable.
STATIC_LIBS=(-Wl,-z,noexecstack -ldl -lm -lrt -lgcc_s)
g++ "${CXXFLAGS[@]}" -O2 tests/cpp/test_abi.cpp -Ltarget/release -ltickscore \
  -Wl,-rpath,"$PWD/target/release" -o "$out/test_abi_shared"
g++ "${CXXFLAGS[@]}" -O2 tests/cpp/test_abi.cpp target/release/libtickscore.a "${STATIC_LIBS[@]}" \
  -o "$out/test_abi_static"
g++ "${CXXFLAGS[@]}" -O1 -g tests/cpp/test_abi.cpp -L"$out/sysalloc" -ltickscore \
  -Wl,-rpath,"$PWD/$out/sysalloc" -o "$out/test_abi_valgrind"

echo "-- install, then build a consumer with pkg-config and with CMake"
prefix="$PWD/$out/prefix"
scripts/install-lib "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
g++ -std=c++17 -Wall -Wextra -Werror examples/cmake/main.cpp $(pkg-config --cflags --libs tickscore) -pthread \
  -o "$out/score_row_pkgconfig"
"$out/score_row_pkgconfig" models/german_logreg/model.onnx
cmake -S examples/cmake -B "$out/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out/cmake-build" >/dev/null
"$out/cmake-build/score_row" models/german_logreg/model.onnx

echo "-- C++ against libtickscore.so"
"$out/test_abi_shared" models
echo "-- C++ against libtickscore.a"
"$out/test_abi_static" models
echo "-- C++ under valgrind"
TICKSCORE_UNDER_VALGRIND=1 valgrind --quiet --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect "$out/test_abi_valgrind" models

