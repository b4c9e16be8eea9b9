# CMake toolchain file: cross-build libcsp for aarch64 Linux with Debian's
# gcc-aarch64-linux-gnu, and run what ctest runs under qemu-user.
#
#   cmake -S . -B build/aarch64 \
#         -DCMAKE_TOOLCHAIN_FILE=src/cmake/aarch64-linux-gnu.cmake
#
# Debian packages (`.ci/aarch64` installs them):
#   gcc-aarch64-linux-gnu libc6-dev-arm64-cross   compiler, cross libc in /usr/aarch64-linux-gnu
#   qemu-user                                     qemu-aarch64
#   libcmocka-dev:arm64                           tests; multiarch (dpkg --add-architecture arm64),
#                                                 in /usr/lib/aarch64-linux-gnu, header in /usr/include
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_ASM_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Target libraries and headers come from the cross libc's root and from
# Debian's multiarch directories (<root>/usr/lib/aarch64-linux-gnu, with the
# architecture-independent headers in /usr/include); programs (bash, qemu) from
# the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: the arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")

# add_test() commands that name a target run through this.
#
# -L makes qemu load the cross libc's dynamic loader. LD_LIBRARY_PATH then
# makes that loader take libc.so.6 from the same package: otherwise
# /etc/ld.so.cache sends it to the multiarch /lib/aarch64-linux-gnu/libc.so.6
# (libc6:arm64, pulled in by libcmocka-dev:arm64), whose version can differ from
# libc6-arm64-cross's, and such a mixed pair hangs in the first pthread_create
# (seen with 2.36-8cross1 + 2.36-9+deb12u14). Other libraries (libcmocka.so.0)
# are still found in the multiarch directories.
set(CMAKE_CROSSCOMPILING_EMULATOR
    "qemu-aarch64;-L;/usr/aarch64-linux-gnu;-E;LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib")
