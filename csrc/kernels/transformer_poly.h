// The constants of the transformer kernels' exp and erf (lowbit/kernels.h, "transformer
// encoders"). Constants only: every transformer__<isa>.cc writes its own code with them, in the
// order the scalar reference (scalar/transformer__scalar.cc) states, so all agree bit for bit.
//
// exp(x), x clamped to [kExpMin, kExpMax]: n = nearbyint(x * kLog2e), r = (x - n * kLn2Hi) -
// n * kLn2Lo, p = ((((((kExp5 * r + kExp4) * r + kExp3) * r + kExp2) * r + kExp1) * r + kExp0) *
// (r * r) + r) + 1 (Cephes' expf polynomial), exp = p * 2^n (n + 127 in the exponent bits).
// erfc(z), z >= 0: t = 1 / (1 + 0.5 * z), c = Horner's (...(kErfc9 * t + kErfc8) * t + ...) * t +
// kErfc0, q = t * exp(-(z * z) + c) (Numerical Recipes' erfcc, relative error < 1.2e-7 for every
// z >= 0), erf(z) = 1 - q; GELU uses q itself for x < 0 (no cancellation). GELU's tanh form is
// computed as x / (1 + exp(-(u + u))) (= 0.5 x (1 + tanh u), without its cancellation for u < 0).
#pragma once

namespace lowbit {
namespace kernels {
namespace poly {

constexpr float kExpMin = -87.0f, kExpMax = 88.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExp0 = 5.0000001201e-1f, kExp1 = 1.6666665459e-1f, kExp2 = 4.1665795894e-2f,
                kExp3 = 8.3334519073e-3f, kExp4 = 1.3981999507e-3f, kExp5 = 1.9875691500e-4f;
constexpr float kErfcC[10] = {-1.26551223f, 1.00002368f, 0.37409196f, 0.09678418f, -0.18628806f,
                              0.27886807f, -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
constexpr float kSqrtHalf = 0.707106781186547524f;        // 1 / sqrt 2
constexpr float kSqrt2OverPi = 0.797884560802865356f;    // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt128 = 0.0883883476483184405f;  // the Hadamard rotation's scale

}  // namespace poly
}  // namespace kernels
}  // namespace lowbit
