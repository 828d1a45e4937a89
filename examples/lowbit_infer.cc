// lowbit_infer: runs a model written by lowbit.export_runtime on an input, with no Python.
//
//   lowbit_infer MODEL.lbrt INPUT.npy OUTPUT.npy
//
// INPUT.npy: float32, C order, shape (M, in_features) (as np.save writes it). OUTPUT.npy gets the
// float32 (M, out_features) result. Exit code 0 on success, 1 with a message on any error.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lowbit/model.h"

namespace {

bool read_file(const char* path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// A minimal .npy reader for 2-D little-endian float32 C-order arrays.
bool parse_npy(const std::vector<uint8_t>& b, size_t* rows, size_t* cols, const float** data,
               std::string* err) {
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) return *err = "not a .npy file", false;
  const int major = b[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = b[8] | (b[9] << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) return *err = "truncated .npy header", false;
    hlen = b[8] | (b[9] << 8) | (size_t(b[10]) << 16) | (size_t(b[11]) << 24);
    off = 12;
  } else {
    return *err = "unsupported .npy version", false;
  }
  if (off + hlen > b.size()) return *err = "truncated .npy header", false;
  const std::string h(reinterpret_cast<const char*>(b.data() + off), hlen);
  if (h.find("'descr': '<f4'") == std::string::npos) return *err = "input must be float32 ('<f4')", false;
  if (h.find("'fortran_order': False") == std::string::npos) return *err = "input must be C order", false;
  const size_t p = h.find("'shape': (");
  if (p == std::string::npos) return *err = "no shape in .npy header", false;
  unsigned long long r = 0, c = 0;
  if (std::sscanf(h.c_str() + p, "'shape': (%llu, %llu)", &r, &c) != 2) return *err = "input must be 2-D", false;
  if (r > (1ull << 31) || c > (1ull << 20)) return *err = "input shape too large", false;
  const size_t start = off + hlen;
  if ((b.size() - start) / 4 < r * c || (b.size() - start) != r * c * 4)
    return *err = "data size does not match the shape", false;
  *rows = r;
  *cols = c;
  *data = reinterpret_cast<const float*>(b.data() + start);
  return true;
}

bool write_npy(const char* path, const float* data, size_t rows, size_t cols) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                  ", " + std::to_string(cols) + "), }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  const char magic[] = "\x93NUMPY\x01\x00";
  f.write(magic, 8);
  const uint16_t n = static_cast<uint16_t>(h.size());
  f.put(static_cast<char>(n & 0xff)).put(static_cast<char>(n >> 8));
  f.write(h.data(), h.size());
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(rows * cols * 4));
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.lbrt INPUT.npy OUTPUT.npy\n", argv[0]);
    return 1;
  }
  std::vector<uint8_t> model_bytes, input_bytes;
  if (!read_file(argv[1], &model_bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[1]), 1;
  if (!read_file(argv[2], &input_bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[2]), 1;
  size_t rows, cols;
  const float* x;
  std::string err;
  // The .npy payload is not necessarily 4-byte aligned in memory: copy it.
  if (!parse_npy(input_bytes, &rows, &cols, &x, &err)) return std::fprintf(stderr, "%s: %s\n", argv[2], err.c_str()), 1;
  std::vector<float> input(x, x + rows * cols);
  lowbit::Model model;
  if (!model.load(model_bytes.data(), model_bytes.size(), rows ? rows : 1, &err))
    return std::fprintf(stderr, "%s: %s\n", argv[1], err.c_str()), 1;
  if (cols != model.in_features())
    return std::fprintf(stderr, "input has %zu columns, the model takes %zu\n", cols, model.in_features()), 1;
  std::vector<float> y(rows * model.out_features());
  if (rows && !model.forward(input.data(), rows, y.data()))
    return std::fprintf(stderr, "input holds NaN or Inf\n"), 1;
  if (!write_npy(argv[3], y.data(), rows, model.out_features()))
    return std::fprintf(stderr, "cannot write %s\n", argv[3]), 1;
  return 0;
}
