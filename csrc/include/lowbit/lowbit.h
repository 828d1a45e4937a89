/* lowbit's C entry points: load a model written by lowbit.export_runtime and run it, from C or
 * any language with a C FFI. A thin layer over lowbit::Model (lowbit/model.h); link lowbit_core
 * (and the C++ standard library and pthreads, which lowbit_core needs).
 *
 *   char err[256];
 *   lowbit_model* m = lowbit_model_load_file("model.lbrt", 64, err, sizeof err);
 *   if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *   lowbit_model_forward(m, x, rows, y);   // x: rows * in_features, y: rows * out_features
 *   lowbit_model_free(m);
 *
 * No function throws or aborts on bad input; forward allocates nothing. A model may be used by
 * one thread at a time (its buffers are shared between calls); load one per thread otherwise. */
#ifndef LOWBIT_LOWBIT_H_
#define LOWBIT_LOWBIT_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lowbit_model lowbit_model;

/* Parses `size` bytes of a runtime file; forward() then takes at most `max_batch` rows. Returns
 * NULL if the bytes are not a complete, uncorrupted model of a supported version (or memory runs
 * out), with a NUL-terminated message in err (err_size bytes; err may be NULL). */
lowbit_model* lowbit_model_load(const void* data, size_t size, size_t max_batch, char* err,
                                size_t err_size);
/* The same from a file. */
lowbit_model* lowbit_model_load_file(const char* path, size_t max_batch, char* err, size_t err_size);
/* Frees a model (NULL is ignored). */
void lowbit_model_free(lowbit_model* model);

size_t lowbit_model_in_features(const lowbit_model* model);
size_t lowbit_model_out_features(const lowbit_model* model);
size_t lowbit_model_max_batch(const lowbit_model* model);

/* y (rows x out_features, row-major float32) = the model applied to x (rows x in_features).
 * Returns 0 on success, -1 if rows > max_batch, x holds NaN/Inf, or an argument is NULL. */
int lowbit_model_forward(lowbit_model* model, const float* x, size_t rows, float* y);

/* The kernel set in use ("avx2", "neondot", ...), chosen at run time from the CPU. */
const char* lowbit_isa(void);
/* Threads the kernels may use (the caller included); n < 1 means one. */
void lowbit_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif /* LOWBIT_LOWBIT_H_ */
