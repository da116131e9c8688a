// vecadd: the smallest CUDA program whose answer can be checked. Built with
// `nvcc -cudart static` so the container needs only the driver userspace
// (libcuda.so.1) and the device nodes, nothing from the CUDA toolkit.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void add(const float *a, const float *b, float *c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

static int fail(const char *what, cudaError_t err) {
  std::printf("FAIL: %s: %s (%s)\n", what, cudaGetErrorString(err), cudaGetErrorName(err));
  return 1;
}

int main() {
  const int n = 1 << 24;
  int driver = 0, devices = 0;
  cudaError_t err = cudaDriverGetVersion(&driver);
  if (err != cudaSuccess) return fail("cudaDriverGetVersion", err);
  err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) return fail("cudaGetDeviceCount", err);
  cudaDeviceProp prop;
  if ((err = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) return fail("cudaGetDeviceProperties", err);

  float *a, *b, *c;
  size_t bytes = n * sizeof(float);
  float *ha = new float[n], *hb = new float[n], *hc = new float[n];
  for (int i = 0; i < n; i++) { ha[i] = i * 0.5f; hb[i] = 1.0f + (i % 7); }
  if ((err = cudaMalloc(&a, bytes)) || (err = cudaMalloc(&b, bytes)) || (err = cudaMalloc(&c, bytes)))
    return fail("cudaMalloc", err);
  cudaMemcpy(a, ha, bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(b, hb, bytes, cudaMemcpyHostToDevice);
  add<<<(n + 255) / 256, 256>>>(a, b, c, n);
  if ((err = cudaDeviceSynchronize()) != cudaSuccess) return fail("kernel", err);
  if ((err = cudaMemcpy(hc, c, bytes, cudaMemcpyDeviceToHost)) != cudaSuccess) return fail("cudaMemcpy", err);
  long bad = 0;
  for (int i = 0; i < n; i++)
    if (hc[i] != ha[i] + hb[i]) bad++;
  if (bad) {
    std::printf("FAIL: %ld of %d sums wrong\n", bad, n);
    return 1;
  }
  std::printf("PASS: %d sums checked on %s (%d device(s), CUDA driver API %d.%d)\n", n, prop.name, devices,
              driver / 1000, (driver % 1000) / 10);
  return 0;
}
