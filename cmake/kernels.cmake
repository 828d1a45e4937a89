# The one place that maps an ISA to its kernel files and their compile flags (the non-kernel
# sources are listed in CMakeLists.txt). Flags go on kernel files only; the ISA actually used is
# chosen at run time (csrc/runtime/dispatch.cc). A kernel file's ISA is the suffix of its name
# (<family>__<isa>.cc, the rule in lowbit/kernels.h): the globs below give it that ISA's flags.

# Scalar references: always built; they are the fallback and the test oracle.
file(GLOB LOWBIT_KERNEL_SOURCES CONFIGURE_DEPENDS csrc/kernels/scalar/*.cc)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(LOWBIT_ARCH_X86 ON)
  file(GLOB _avx2 CONFIGURE_DEPENDS csrc/kernels/x86/*__avx2.cc)
  file(GLOB _avx512 CONFIGURE_DEPENDS csrc/kernels/x86/*__avx512.cc)
  file(GLOB _avx512vnni CONFIGURE_DEPENDS csrc/kernels/x86/*__avx512vnni.cc)
  file(GLOB _avxvnni CONFIGURE_DEPENDS csrc/kernels/x86/*__avxvnni.cc)
  set_source_files_properties(${_avx2} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  set_source_files_properties(${_avx512} PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx2;-mfma;-Wno-uninitialized;$<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>")
  set_source_files_properties(${_avx512vnni} PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx2;-mfma;-Wno-uninitialized;$<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>")
  set_source_files_properties(${_avxvnni} PROPERTIES COMPILE_OPTIONS "-mavxvnni;-mavx2;-mfma;-mf16c")
  list(APPEND LOWBIT_KERNEL_SOURCES ${_avx2} ${_avx512} ${_avx512vnni} ${_avxvnni})
  add_compile_definitions(LOWBIT_HAVE_X86=1)
  # Tests only: the VNNI GEMM kernels built a second time against SIMDe with AVX2 flags (no
  # AVX-512 instruction in the binary), so that lowbit_tests runs them on every AVX2 host
  # (tests/cpp/simde_gemm__*.cc include the kernel files; tests/cpp/test_gemm_simde.cc). Not in
  # the library or the Python module.
  find_path(LOWBIT_SIMDE_INCLUDE_DIR simde/x86/avx512.h)
  if(LOWBIT_SIMDE_INCLUDE_DIR)
    set(_simde_tests tests/cpp/simde_gemm__avx512vnni.cc tests/cpp/simde_gemm__avxvnni.cc)
    set_source_files_properties(${_simde_tests} PROPERTIES
      COMPILE_OPTIONS "-mavx2;-mfma;-ffp-contract=off;-fwrapv;-Wno-psabi" COMPILE_DEFINITIONS LOWBIT_SIMDE=1)
    if(NOT LOWBIT_SIMDE_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      set_source_files_properties(${_simde_tests} PROPERTIES INCLUDE_DIRECTORIES "${LOWBIT_SIMDE_INCLUDE_DIR}")
    endif()
    set_source_files_properties(tests/cpp/test_gemm_simde.cc PROPERTIES COMPILE_DEFINITIONS LOWBIT_TEST_SIMDE=1)
  else()
    message(STATUS "SIMDe headers not found (Debian: libsimde-dev): the AVX-512 VNNI and AVX-VNNI "
                   "GEMM kernels are tested only on CPUs that have them")
  endif()
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(LOWBIT_ARCH_ARM64 ON)
  file(GLOB _neon CONFIGURE_DEPENDS csrc/kernels/arm/*__neon.cc)
  file(GLOB _neondot CONFIGURE_DEPENDS csrc/kernels/arm/*__neondot.cc)
  file(GLOB _i8mm CONFIGURE_DEPENDS csrc/kernels/arm/*__i8mm.cc)
  # Plain NEON is part of armv8-a; dotprod and i8mm only on the files that use them.
  set_source_files_properties(${_neondot} PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod")
  set_source_files_properties(${_i8mm} PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod+i8mm")
  list(APPEND LOWBIT_KERNEL_SOURCES ${_neon} ${_neondot} ${_i8mm})
  add_compile_definitions(LOWBIT_HAVE_ARM64=1)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(arm|armhf|armv[5-8].*)$")
  # 32-bit ARM (arm-linux-gnueabihf, a Raspberry Pi OS armhf build, ...): SCALAR KERNELS ONLY.
  # csrc/kernels/arm/ is AArch64 code (vaddvq, vcvtnq, vmaxvq, ... do not exist on armv7), and
  # armv7 NEON flushes float denormals to zero, so a port would not be bit-exact without extra
  # care. The scalar references are exact, just slower. cpu_note() (lowbit.cpu_info()["note"])
  # says so at run time.
  set(LOWBIT_ARCH_ARM32 ON)
  add_compile_definitions(LOWBIT_HAVE_ARM32=1)
endif()
