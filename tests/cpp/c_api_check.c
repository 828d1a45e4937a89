/* lowbit/lowbit.h used from C (this file is compiled as C): bad input is refused with a message,
 * a model loads from memory and from a file, runs, and reports its shape. Called by the C++ test
 * c_api_from_c in test_model.cc, which checks the outputs against lowbit::Model. */
#include <stdio.h>
#include <string.h>

#include "lowbit/lowbit.h"

/* Returns 0 when every check holds, else the number of the first failed check. y receives the
 * rows x out_features output of the model in `file` (written to `path` first) for x. */
int lowbit_c_api_check(const unsigned char* file, size_t size, const char* path, const float* x,
                       size_t rows, float* y) {
  char err[128];
  unsigned char junk[64];
  memset(junk, 0xAB, sizeof junk);
  if (lowbit_model_load(junk, sizeof junk, 4, err, sizeof err) != NULL || err[0] == '\0') return 1;
  if (lowbit_model_load(file, size, 0, err, sizeof err) != NULL) return 2; /* max_batch 0 */
  if (lowbit_model_load_file("/nonexistent/model.lbrt", 4, err, sizeof err) != NULL ||
      strstr(err, "cannot open") == NULL)
    return 3;
  FILE* f = fopen(path, "wb");
  if (!f || fwrite(file, 1, size, f) != size) return 4;
  fclose(f);
  lowbit_model* m = lowbit_model_load_file(path, rows, err, sizeof err);
  if (!m) return 5;
  if (lowbit_model_max_batch(m) != rows || lowbit_model_in_features(m) == 0) return 6;
  if (lowbit_model_forward(m, x, rows + 1, y) != -1) return 7; /* over max_batch */
  if (lowbit_model_forward(m, NULL, rows, y) != -1) return 8;
  if (lowbit_model_forward(m, x, rows, y) != 0) return 9;
  lowbit_model_free(m);
  lowbit_model_free(NULL);
  if (lowbit_isa()[0] == '\0') return 10;
  return 0;
}
