// lowbit_infer: runs a model written by lowbit.export_runtime on an input, with no Python.
//
//   lowbit_infer MODEL.lbrt INPUT.npy OUTPUT.npy
//   lowbit_infer ENCODER.lbrt INPUT_IDS.npy OUTPUT.npy [ATTENTION_MASK.npy]
//
// A model (lowbit/model.h): INPUT.npy float32, C order, shape (M, in_features) (as np.save writes
// it); OUTPUT.npy gets the float32 (M, out_features) result.
// A transformer encoder (lowbit/encoder.h, the file starts "LBTE"): INPUT_IDS.npy int64 or int32
// (batch, tokens), ATTENTION_MASK.npy the same shape (1 valid, 0 padding; default all valid);
// OUTPUT.npy gets the last hidden states, float32 (batch, tokens, hidden), as
// lowbit.models.Encoder computes them.
// Exit code 0 on success, 1 with a message on any error.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lowbit/encoder.h"
#include "lowbit/model.h"

namespace {

bool read_file(const char* path, std::vector<uint8_t>* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// A minimal .npy reader for 2-D little-endian C-order arrays of one dtype ('<f4', '<i8' or
// '<i4'): the payload copied out (it is not necessarily aligned in the file's buffer).
template <typename T>
bool parse_npy(const std::vector<uint8_t>& b, const char* descr, size_t* rows, size_t* cols,
               std::vector<T>* data, std::string* err) {
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
  if (h.find(std::string("'descr': '") + descr + "'") == std::string::npos)
    return *err = std::string("input must have dtype '") + descr + "'", false;
  if (h.find("'fortran_order': False") == std::string::npos) return *err = "input must be C order", false;
  const size_t p = h.find("'shape': (");
  if (p == std::string::npos) return *err = "no shape in .npy header", false;
  unsigned long long r = 0, c = 0;
  if (std::sscanf(h.c_str() + p, "'shape': (%llu, %llu)", &r, &c) != 2) return *err = "input must be 2-D", false;
  if (r > (1ull << 31) || c > (1ull << 20)) return *err = "input shape too large", false;
  const size_t start = off + hlen;
  if ((b.size() - start) / sizeof(T) < r * c || (b.size() - start) != r * c * sizeof(T))
    return *err = "data size does not match the shape", false;
  *rows = r;
  *cols = c;
  data->resize(r * c);
  std::memcpy(data->data(), b.data() + start, r * c * sizeof(T));
  return true;
}

// Token ids or a mask as int32: '<i8' or '<i4' (what np.save writes for int64 / int32 arrays).
bool parse_ints(const std::vector<uint8_t>& b, size_t* rows, size_t* cols, std::vector<int32_t>* out,
                std::string* err) {
  std::vector<int64_t> wide;
  if (parse_npy(b, "<i4", rows, cols, out, err)) return true;
  if (!parse_npy(b, "<i8", rows, cols, &wide, err)) return *err = "input must be int64 or int32", false;
  out->resize(wide.size());
  for (size_t i = 0; i < wide.size(); i++) {
    if (wide[i] < INT32_MIN || wide[i] > INT32_MAX) return *err = "value out of range", false;
    (*out)[i] = static_cast<int32_t>(wide[i]);
  }
  return true;
}

bool write_npy(const char* path, const float* data, const std::string& shape, size_t count) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  const char magic[] = "\x93NUMPY\x01\x00";
  f.write(magic, 8);
  const uint16_t n = static_cast<uint16_t>(h.size());
  f.put(static_cast<char>(n & 0xff)).put(static_cast<char>(n >> 8));
  f.write(h.data(), h.size());
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * 4));
  return static_cast<bool>(f);
}

// An encoder file: ids (batch, tokens), optional mask -> hidden states (batch, tokens, hidden).
int run_encoder(const std::vector<uint8_t>& model_bytes, char** argv, int argc) {
  std::string err;
  lowbit::Encoder enc;
  if (!enc.load(model_bytes.data(), model_bytes.size(), &err))
    return std::fprintf(stderr, "%s: %s\n", argv[1], err.c_str()), 1;
  std::vector<uint8_t> bytes;
  std::vector<int32_t> ids, mask;
  size_t B, T, mb, mt;
  if (!read_file(argv[2], &bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[2]), 1;
  if (!parse_ints(bytes, &B, &T, &ids, &err)) return std::fprintf(stderr, "%s: %s\n", argv[2], err.c_str()), 1;
  std::vector<uint8_t> valid;
  if (argc == 5) {
    if (!read_file(argv[4], &bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[4]), 1;
    if (!parse_ints(bytes, &mb, &mt, &mask, &err)) return std::fprintf(stderr, "%s: %s\n", argv[4], err.c_str()), 1;
    if (mb != B || mt != T) return std::fprintf(stderr, "the mask's shape differs from the ids'\n"), 1;
    valid.resize(mask.size());
    for (size_t i = 0; i < mask.size(); i++) {
      if (mask[i] != 0 && mask[i] != 1) return std::fprintf(stderr, "the mask must hold 0 and 1\n"), 1;
      valid[i] = static_cast<uint8_t>(mask[i]);
    }
  }
  std::vector<size_t> start(B + 1);
  for (size_t b = 0; b <= B; b++) start[b] = b * T;
  const size_t h = enc.config().hidden;
  std::vector<float> y(B * T * h);
  if (!enc.forward(ids.data(), nullptr, start.data(), B, valid.empty() ? nullptr : valid.data(), y.data(), &err))
    return std::fprintf(stderr, "%s\n", err.c_str()), 1;
  const std::string shape = std::to_string(B) + ", " + std::to_string(T) + ", " + std::to_string(h);
  if (!write_npy(argv[3], y.data(), shape, y.size())) return std::fprintf(stderr, "cannot write %s\n", argv[3]), 1;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL.lbrt INPUT.npy OUTPUT.npy\n"
                         "       %s ENCODER.lbrt INPUT_IDS.npy OUTPUT.npy [ATTENTION_MASK.npy]\n", argv[0], argv[0]);
    return 1;
  }
  std::vector<uint8_t> model_bytes, input_bytes;
  if (!read_file(argv[1], &model_bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[1]), 1;
  if (model_bytes.size() >= 4 && std::memcmp(model_bytes.data(), "LBTE", 4) == 0)
    return run_encoder(model_bytes, argv, argc);
  if (argc != 4) return std::fprintf(stderr, "a mask is for encoder files only\n"), 1;
  if (!read_file(argv[2], &input_bytes)) return std::fprintf(stderr, "cannot read %s\n", argv[2]), 1;
  size_t rows, cols;
  std::vector<float> input;
  std::string err;
  if (!parse_npy(input_bytes, "<f4", &rows, &cols, &input, &err)) return std::fprintf(stderr, "%s: %s\n", argv[2], err.c_str()), 1;
  lowbit::Model model;
  if (!model.load(model_bytes.data(), model_bytes.size(), rows ? rows : 1, &err))
    return std::fprintf(stderr, "%s: %s\n", argv[1], err.c_str()), 1;
  if (cols != model.in_features())
    return std::fprintf(stderr, "input has %zu columns, the model takes %zu\n", cols, model.in_features()), 1;
  std::vector<float> y(rows * model.out_features());
  if (rows && !model.forward(input.data(), rows, y.data()))
    return std::fprintf(stderr, "input holds NaN or Inf\n"), 1;
  const std::string shape = std::to_string(rows) + ", " + std::to_string(model.out_features());
  if (!write_npy(argv[3], y.data(), shape, y.size()))
    return std::fprintf(stderr, "cannot write %s\n", argv[3]), 1;
  return 0;
}
