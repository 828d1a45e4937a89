// libFuzzer target for the runtime file loaders (lowbit::Model's "LBRT" files and
// lowbit::Encoder's "LBTE" files, both given every input): any bytes must either load (and then
// run) or be refused with a message; never crash, hang, or read out of bounds (built with ASan +
// UBSan).
//
//   cmake -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DLOWBIT_FUZZ=ON
//   cmake --build build-fuzz && build-fuzz/fuzz_model_load -max_total_time=3600 corpus/
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/encoder.h"
#include "lowbit/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lowbit::Model m;
  std::string err;
  // Half the inputs get a valid checksum appended, so the fuzzer reaches the parser behind it.
  std::vector<uint8_t> buf(data, data + size);
  if (size >= 8 && (data[size - 1] & 1)) {
    const uint32_t c = lowbit::crc32(buf.data(), buf.size());
    const uint8_t* cb = reinterpret_cast<const uint8_t*>(&c);
    buf.insert(buf.end(), cb, cb + 4);
  }
  if (m.load(buf.data(), buf.size(), 3, &err)) {
    std::vector<float> x(3 * m.in_features(), 0.25f), y(3 * m.out_features());
    m.forward(x.data(), 3, y.data());
  } else if (err.empty()) {
    __builtin_trap();  // a refusal must say why
  }
  lowbit::Encoder e;
  err.clear();
  if (e.load(buf.data(), buf.size(), &err)) {  // two sequences of token 0, types 0
    const size_t n = std::min<size_t>(3, e.config().max_positions);
    std::vector<int32_t> ids(2 * n, 0);
    const size_t start[3] = {0, n, 2 * n};
    std::vector<float> h(2 * n * e.config().hidden);
    e.forward(ids.data(), nullptr, start, 2, nullptr, h.data(), &err);
  } else if (err.empty()) {
    __builtin_trap();
  }
  return 0;
}
