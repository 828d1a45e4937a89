// The C entry points of lowbit/lowbit.h over lowbit::Model. Nothing here lets an exception cross
// into C: allocation failure while loading becomes a NULL model with a message.
#include "lowbit/lowbit.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#include "lowbit/model.h"
#include "lowbit/runtime.h"

struct lowbit_model {
  lowbit::Model model;
};

namespace {

void set_error(char* err, size_t err_size, const std::string& msg) {
  if (!err || err_size == 0) return;
  std::snprintf(err, err_size, "%s", msg.c_str());
}

}  // namespace

extern "C" {

lowbit_model* lowbit_model_load(const void* data, size_t size, size_t max_batch, char* err,
                                size_t err_size) {
  if (!data && size) {
    set_error(err, err_size, "data is NULL");
    return nullptr;
  }
  try {
    auto* m = new lowbit_model;
    std::string msg;
    if (!m->model.load(static_cast<const uint8_t*>(data), size, max_batch, &msg)) {
      delete m;
      set_error(err, err_size, msg);
      return nullptr;
    }
    set_error(err, err_size, "");
    return m;
  } catch (const std::bad_alloc&) {
    set_error(err, err_size, "out of memory while loading the model");
    return nullptr;
  }
}

lowbit_model* lowbit_model_load_file(const char* path, size_t max_batch, char* err,
                                     size_t err_size) {
  if (!path) {
    set_error(err, err_size, "path is NULL");
    return nullptr;
  }
  try {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      set_error(err, err_size, std::string("cannot open ") + path);
      return nullptr;
    }
    const std::vector<char> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
    return lowbit_model_load(bytes.data(), bytes.size(), max_batch, err, err_size);
  } catch (const std::bad_alloc&) {
    set_error(err, err_size, "out of memory while reading the model file");
    return nullptr;
  }
}

void lowbit_model_free(lowbit_model* model) { delete model; }

size_t lowbit_model_in_features(const lowbit_model* model) {
  return model ? model->model.in_features() : 0;
}
size_t lowbit_model_out_features(const lowbit_model* model) {
  return model ? model->model.out_features() : 0;
}
size_t lowbit_model_max_batch(const lowbit_model* model) {
  return model ? model->model.max_batch() : 0;
}

int lowbit_model_forward(lowbit_model* model, const float* x, size_t rows, float* y) {
  if (!model || !x || !y) return -1;
  if (rows == 0) return 0;
  try {
    return model->model.forward(x, rows, y) ? 0 : -1;
  } catch (const std::bad_alloc&) {  // only after set_num_threads raised the thread count
    return -1;
  }
}

const char* lowbit_isa(void) { return lowbit::active_isa(); }

void lowbit_set_num_threads(int n) { lowbit::set_num_threads(n < 1 ? 1 : n); }

}  // extern "C"
