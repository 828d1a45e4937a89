// IEEE binary16 ("half") values held as their 16 bits, read as float32.
#pragma once
#include <cmath>
#include <cstdint>

namespace lowbit {

// binary16 bits -> float32, exactly (every binary16 value is a float32 value).
inline float half_to_float(uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);  // zero, subnormal
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
}

}  // namespace lowbit
