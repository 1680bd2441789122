/* test_kernels.c - the C kernels through fastrnn.h alone, against a naive
 * float64 reference (common.h), over a sweep of sizes and options chosen
 * by a seeded random generator (checks.h says what each check covers).
 *
 *   ./test_kernels [seed] [rounds]
 *
 * Built by the Makefile beside it with AddressSanitizer and UBSan (what
 * .ci/sanitize runs), or without them (make SAN=). Exit status 0: all passed. */
#include "checks.h"
#include "fma_peak.h"

static const struct {
    fr_cell cell;
    int peephole, lbr;
} KINDS[] = {{FR_RNN_TANH, 0, 1}, {FR_RNN_RELU, 0, 1}, {FR_LSTM, 0, 1},
             {FR_LSTM, 1, 1},     {FR_GRU, 0, 1},      {FR_GRU, 0, 0}};
#define NKINDS ((int)(sizeof KINDS / sizeof KINDS[0]))

/* a random layer case of kind k; big: sizes where the time loop runs on
 * two threads (B*G*H*H >= 2 * 65536) */
static layer_case random_case(rng_t *r, int k, int big)
{
    layer_case c;
    memset(&c, 0, sizeof c);
    c.cell = KINDS[k].cell;
    c.peephole = KINDS[k].peephole;
    c.lbr = KINDS[k].lbr;
    c.bias = rng_int(r, 0, 3) != 0;
    if (big) {
        c.I = rng_int(r, 1, 24);
        c.H = rng_int(r, 64, 100);
        c.T = rng_int(r, 1, 5);
        c.B = rng_int(r, 8, 12);
        c.threads = 2;
    } else {
        static const int hs[] = {1, 2, 3, 5, 8, 31, 32, 33, 40};
        c.I = rng_int(r, 1, 9);
        c.H = hs[rng_int(r, 0, 8)];
        c.T = rng_int(r, 0, 6);
        c.B = rng_int(r, 0, 5);
        c.threads = rng_int(r, 1, 2);
    }
    c.reverse = rng_int(r, 0, 1);
    c.use_lengths = rng_int(r, 0, 1);
    c.use_h0 = rng_int(r, 0, 1);
    c.use_c0 = rng_int(r, 0, 1);
    c.packed_hh = rng_int(r, 0, 1);
    c.packed_ih = rng_int(r, 0, 1);
    c.x_extra = rng_int(r, 0, 2) ? 0 : rng_int(r, 1, 3);
    c.y_extra = rng_int(r, 0, 2) ? 0 : rng_int(r, 1, c.H + 1);
    case_fill(&c, r);
    return c;
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    rng_t r = {seed};
    int checks = 0;

    for (int dt = 0; dt < 2; dt++) {
        static const int ns[] = {1, 31, 32, 33, 70}, ks[] = {1, 5, 17};
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 3; b++, checks++)
                check_pack(&r, (fr_dtype)dt, ns[a], ks[b]);
    }

    for (int level = FR_SIMD_GENERIC; level <= FR_SIMD_AVX512; level++) {
        if (fr_set_simd_level(level) < 0)
            continue;
        for (int i = 0; i < 100 * rounds; i++, checks++) {
            int M = rng_int(&r, 0, 20), N = rng_int(&r, 1, 100), K = rng_int(&r, 0, 70);
            int n0 = rng_int(&r, 0, N), n1 = rng_int(&r, n0, N);
            if (rng_int(&r, 0, 1)) { /* block-aligned ranges, the fast case */
                n0 = n0 / 32 * 32;
                n1 = rng_int(&r, 0, 1) ? N : (n1 + 31) / 32 * 32 < N ? (n1 + 31) / 32 * 32 : N;
            }
            static const float betas[] = {0.0f, 1.0f, 0.5f};
            check_matmul(&r, level, i & 1, M, N, K, n0, n1, betas[rng_int(&r, 0, 2)],
                         rng_int(&r, 0, 3), rng_int(&r, 0, 3));
        }
        for (int i = 0; i < 4; i++, checks++) { /* A transposed: K in blocks of 1024 rows */
            int N = rng_int(&r, 1, 70);
            check_matmul(&r, level, 1, rng_int(&r, 1, 20), N, rng_int(&r, 1000, 2100), 0, N,
                         i & 1 ? 0.5f : 0.0f, rng_int(&r, 0, 3), rng_int(&r, 0, 3));
        }
    }
    fr_set_simd_level(FR_SIMD_AUTO);

    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < NKINDS; k++) {
            for (int i = 0; i < 8; i++, checks++) {
                layer_case c = random_case(&r, k, 0);
                check_forward(&c);
                case_free(&c);
            }
            for (int i = 0; i < 4; i++, checks++) {
                layer_case c = random_case(&r, k, 0);
                check_backward(&c, &r, rng_int(&r, 0, 3) ? 0 : rng_int(&r, 0, 255),
                               rng_int(&r, 0, 3) != 0, rng_int(&r, 0, 1), rng_int(&r, 0, 1),
                               rng_int(&r, 0, 1) ? 0 : rng_int(&r, 1, 4),
                               rng_int(&r, 0, 1) ? 0 : rng_int(&r, 1, 4));
                case_free(&c);
            }
            for (int dt = 0; dt < 2; dt++, checks++)
                check_stream(&r, (fr_dtype)dt, KINDS[k].cell, KINDS[k].peephole, KINDS[k].lbr,
                             rng_int(&r, 0, 3) != 0, rng_int(&r, 1, 3), rng_int(&r, 1, 9),
                             rng_int(&r, 1, 40), rng_int(&r, 1, 4), rng_int(&r, 0, 5),
                             rng_int(&r, 0, 1));
        }

    /* forward, backward and stream under every SIMD level (at the AVX-512
     * level the float32 LSTM and GRU forwards are one pass of their own,
     * vmath.h; built with FR_NO_SIMD_COPIES, as here, every level runs the
     * baseline kernel set around the level's products and activations) */
    for (int level = FR_SIMD_GENERIC; level <= FR_SIMD_AVX512; level++) {
        if (fr_set_simd_level(level) < 0)
            continue;
        for (int k = 0; k < NKINDS; k++, checks += 3) {
            layer_case c = random_case(&r, k, 0);
            check_forward(&c);
            check_backward(&c, &r, 0, 1, 1, 0, 0, 0);
            case_free(&c);
            check_stream(&r, FR_F32, KINDS[k].cell, KINDS[k].peephole, KINDS[k].lbr, 1,
                         rng_int(&r, 1, 2), rng_int(&r, 1, 9), rng_int(&r, 1, 40),
                         rng_int(&r, 1, 4), rng_int(&r, 1, 5), rng_int(&r, 0, 1));
        }
    }
    fr_set_simd_level(FR_SIMD_AUTO);

    /* the FMA peak of every level: a rate, whatever the machine's load */
    for (int level = FR_SIMD_GENERIC; level <= FR_SIMD_AVX512; level++) {
        if (fr_set_simd_level(level) < 0)
            continue;
        snprintf(g_case, sizeof g_case, "fma_peak %s", fr_simd_level_name(level));
        const double flops = fr_fma_peak(0.005);
        CHECK(flops > 0 && isfinite(flops), "fr_fma_peak = %g FLOP/s", flops);
        checks++;
    }
    fr_set_simd_level(FR_SIMD_AUTO);

    /* the threaded time loop (two OpenMP threads), forward and backward */
    for (int k = 0; k < NKINDS; k++, checks++) {
        layer_case c = random_case(&r, k, 1);
        check_forward(&c);
        check_backward(&c, &r, 0, 1, 1, 0, 0, 0);
        case_free(&c);
    }

    if (g_failures) {
        fprintf(stderr, "test_kernels: %d failure(s) in %d checks (seed %llu)\n", g_failures,
                checks, (unsigned long long)seed);
        return 1;
    }
    printf("test_kernels: %d checks passed (seed %llu, %d rounds)\n", checks,
           (unsigned long long)seed, rounds);
    return 0;
}
