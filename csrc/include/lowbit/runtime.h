// lowbit runtime: CPU features, the one kernel table, and (lowbit/parallel.h) the thread pool.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "lowbit/kernels.h"
#include "lowbit/parallel.h"

namespace lowbit {

// "x86_64", "aarch64", "arm" (32-bit) or "unknown".
const char* cpu_arch();
// What this build's kernel coverage lacks on this architecture, e.g. that 32-bit ARM runs scalar
// kernels only; "" when the SIMD kernel sets are built.
const char* cpu_note();
// Features detected on this CPU (and enabled by the OS), e.g. "avx2", "avx512vnni", "dotprod".
const std::vector<std::string>& cpu_features();

// Kernel sets this build has and this CPU runs, lowest first ("scalar" always comes first).
std::vector<std::string> supported_isas();
// The kernel set in use. Chosen once: the best supported, or LOWBIT_ISA when it names a supported
// one (an environment override can only downgrade).
const KernelTable& active_kernels();
const char* active_isa();
// Switches the kernel set; returns false (and changes nothing) if `isa` is not supported here.
bool set_isa(const std::string& isa);
// The table of one supported kernel set, or nullptr.
const KernelTable* kernel_table(const std::string& isa);

}  // namespace lowbit
