/* fuzz_kernels.c - a fuzz target for the C kernels: the input bytes choose
 * the cell, dtype-independent options, sizes, lengths and a seed for the
 * data; one input runs fr_forward (float32 and float64, inference and
 * training), fr_backward (against a central difference) and a stream, with
 * every check of checks.h. Under AddressSanitizer any access outside the
 * exact-size buffers aborts.
 *
 * With libFuzzer (clang -fsanitize=fuzzer,address,undefined -DFR_LIBFUZZER,
 * `make fuzz-libfuzzer`) it is LLVMFuzzerTestOneInput. Without (gcc has no
 * libFuzzer), main() is a random driver that feeds it random inputs:
 *
 *   ./fuzz_kernels [-runs=N] [-seed=S] [file ...]   (files: inputs to replay)
 */
#include "checks.h"

static uint8_t take(const uint8_t **p, const uint8_t *end)
{
    return *p < end ? *(*p)++ : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    layer_case c;
    memset(&c, 0, sizeof c);
    uint8_t kind = take(&p, end), flags = take(&p, end), flags2 = take(&p, end);
    static const fr_cell cells[4] = {FR_RNN_TANH, FR_RNN_RELU, FR_LSTM, FR_GRU};
    c.cell = cells[kind % 4];
    c.peephole = c.cell == FR_LSTM && (kind & 4);
    c.lbr = !(kind & 8);
    c.bias = !(flags & 1);
    c.reverse = (flags >> 1) & 1;
    c.use_lengths = (flags >> 2) & 1;
    c.use_h0 = (flags >> 3) & 1;
    c.use_c0 = (flags >> 4) & 1;
    c.packed_hh = (flags >> 5) & 1;
    c.packed_ih = (flags >> 6) & 1;
    c.threads = 1 + ((flags >> 7) & 1);
    c.I = 1 + take(&p, end) % 24;
    c.H = 1 + take(&p, end) % 72;
    c.T = take(&p, end) % 9;
    c.B = take(&p, end) % 7;
    c.x_extra = flags2 & 3;
    c.y_extra = (flags2 >> 2) & 7;
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    while (p < end)
        seed = (seed ^ *p++) * 0x100000001B3ull; /* the rest seeds the data */
    rng_t r = {seed};
    case_fill(&c, &r);
    check_forward(&c);
    check_backward(&c, &r, (flags2 >> 5) & 1 ? (int)(seed & 255) : 0, !((flags2 >> 6) & 1),
                   (flags2 >> 7) & 1, (int)(seed >> 8) & 1, (int)(seed >> 9) & 3,
                   (int)(seed >> 11) & 3);
    case_free(&c);
    check_stream(&r, (seed >> 13) & 1 ? FR_F64 : FR_F32, c.cell, c.peephole, c.lbr, c.bias,
                 1 + (int)((seed >> 14) % 3), c.I, c.H, c.B ? c.B : 1, c.T, c.packed_hh);
    /* the packed product on the SIMD code in use, and the packing */
    int M = (int)((seed >> 16) % 13), N = 1 + (int)((seed >> 20) % 80);
    int K = (int)((seed >> 28) % 50), n0 = (int)((seed >> 34) % (uint64_t)(N + 1));
    int n1 = n0 + (int)((seed >> 40) % (uint64_t)(N - n0 + 1));
    check_matmul(&r, fr_simd_level(), (int)(seed >> 52) & 1, M, N, K, n0, n1,
                 (seed >> 46) & 1 ? 1.0f : 0.0f, (int)((seed >> 47) & 3), (int)((seed >> 49) & 3));
    check_pack(&r, (seed >> 51) & 1 ? FR_F64 : FR_F32, N, K ? K : 1);
    if (g_failures) {
        FILE *f = fopen("fuzz_kernels-failure.bin", "wb"); /* replay: ./fuzz_kernels FILE */
        if (f) {
            fwrite(data, 1, size, f);
            fclose(f);
        }
        fprintf(stderr, "fuzz_kernels: check failed on this input (saved in "
                        "fuzz_kernels-failure.bin)\n");
        abort(); /* a finding, for libFuzzer and the driver alike */
    }
    return 0;
}

#ifndef FR_LIBFUZZER
int main(int argc, char **argv)
{
    long runs = 500;
    uint64_t seed = 1;
    int files = 0;
    for (int a = 1; a < argc; a++) {
        if (!strncmp(argv[a], "-runs=", 6))
            runs = atol(argv[a] + 6);
        else if (!strncmp(argv[a], "-seed=", 6))
            seed = strtoull(argv[a] + 6, NULL, 10);
        else { /* replay an input file */
            FILE *f = fopen(argv[a], "rb");
            if (!f) {
                perror(argv[a]);
                return 2;
            }
            uint8_t buf[4096];
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            LLVMFuzzerTestOneInput(buf, n);
            files++;
        }
    }
    if (files) {
        printf("fuzz_kernels: %d input(s) replayed\n", files);
        return 0;
    }
    rng_t r = {seed};
    for (long i = 0; i < runs; i++) {
        uint8_t buf[24];
        size_t n = (size_t)rng_int(&r, 0, (int)sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rng_next(&r);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_kernels: %ld random inputs passed (seed %llu)\n", runs, (unsigned long long)seed);
    return 0;
}
#endif
