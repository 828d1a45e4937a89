# Cross-build for 32-bit ARM (armv7-a, hard float) with Debian's g++-arm-linux-gnueabihf; tests run
# under qemu-arm. Kernels are scalar only on this target (see cmake/kernels.cmake).
#   cmake -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/arm-linux-gnueabihf.cmake && cmake --build build-armhf
#   ctest --test-dir build-armhf
# The compiler's default target is Debian's armhf baseline (armv7-a, VFPv3-D16, no NEON), so the
# binaries run on any armv7 board.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# -Wno-psabi: GCC's informational note that std::vector<double>::iterator is passed differently than
# by GCC < 7.1 (an ABI change of 2017, irrelevant unless linking objects built by GCC 6); it is not
# a diagnostic about lowbit's code and would bury real warnings.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm;-L;/usr/arm-linux-gnueabihf)
