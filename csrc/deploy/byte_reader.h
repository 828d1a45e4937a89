// The runtime files' bounds-checked little-endian reader (model.cc, encoder.cc): every read says
// whether the bytes were there.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lowbit {

struct ByteReader {
  const uint8_t* p;
  size_t left;
  bool take(void* out, size_t n) {
    if (n > left) return false;
    if (n == 0) return true;  // out may be an empty vector's null data()
    std::memcpy(out, p, n);
    p += n;
    left -= n;
    return true;
  }
  // A u32 into any unsigned field.
  template <typename T>
  bool u32(T* v) {
    uint32_t x;
    if (!take(&x, 4)) return false;
    *v = x;
    return true;
  }
  bool f32(float* v) { return take(v, 4); }
  // n floats (n in 64 bits: no wrap on 32-bit hosts).
  bool floats(std::vector<float>* v, uint64_t n) {
    if (n > left / 4) return false;
    v->resize(static_cast<size_t>(n));
    return take(v->data(), 4 * v->size());
  }
};

}  // namespace lowbit
