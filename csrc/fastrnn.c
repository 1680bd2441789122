/* fastrnn.c - the public C API: sizes, and the kernel set each call runs. */
#include "internal.h"
#include "matmul.h"

/* The one place the SIMD level picks the kernels of the time loops: the set
 * of the dtype compiled for the level in use (simd.h), or the baseline set
 * where the build has no copy for it. The products and activations those
 * call follow the same level (matmul.c, vmath.c). */
static const fr_kernels *kernels(fr_dtype dtype)
{
    const int f32 = dtype == FR_F32;
#if FR_SIMD_COPIES
    switch (fr_simd_level()) {
    case FR_SIMD_AVX512: return f32 ? &fr_kernels_f32_avx512 : &fr_kernels_f64_avx512;
    case FR_SIMD_AVX2: return f32 ? &fr_kernels_f32_avx2 : &fr_kernels_f64_avx2;
    default: break;
    }
#endif
    return f32 ? &fr_kernels_f32 : &fr_kernels_f64;
}

int fr_gates(fr_cell cell)
{
    return cell == FR_LSTM ? 4 : cell == FR_GRU ? 3 : 1;
}

int fr_output_size(const fr_layer *L)
{
    return fr_proj(L) ? fr_proj(L) : L->hidden_size;
}

size_t fr_packed_size(int rows, int cols)
{
    return fr_pack_size_f32(rows, cols); /* the same panels in either dtype */
}

void fr_pack(fr_dtype dtype, int rows, int cols, const void *W, void *packed)
{
    kernels(dtype)->pack(rows, cols, W, packed);
}

size_t fr_work_size(const fr_layer *L, int T, int B)
{
    return kernels(L->dtype)->work_size(L, T, B);
}

size_t fr_cache_size(const fr_layer *L, int T, int B)
{
    size_t H = (size_t)L->hidden_size, R = (size_t)fr_output_size(L), rows = (size_t)T * B;
    size_t n = rows * ((size_t)fr_gates(L->cell) * H + R);
    if (L->cell == FR_LSTM) /* c's T + 1 slots, hraw */
        n += (rows + (size_t)B) * H + (fr_proj(L) ? rows * H : 0);
    if (L->cell == FR_GRU)
        n += rows * H;
    return n;
}

void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)
{
    kernels(L->dtype)->forward(L, seq, blas);
}

size_t fr_backward_work_size(const fr_layer *L, int T, int B)
{
    return kernels(L->dtype)->backward_work_size(L, T, B);
}

void fr_backward(const fr_layer *L, const fr_sequence *seq, const fr_sequence_grad *d,
                 const fr_grads *g, const fr_blas *blas)
{
    kernels(L->dtype)->backward(L, seq, d, g, blas);
}

/* ---- streaming (stream.inc) ---- */

int fr_stream_check(const fr_layer *layers, int num_layers, int B)
{
    if (!layers || num_layers < 1 || B < 1)
        return -1;
    const fr_layer *L0 = &layers[0];
    if (L0->input_size < 1 || L0->hidden_size < 1 || (L0->dtype != FR_F32 && L0->dtype != FR_F64))
        return -1;
    const int proj = fr_proj(L0);
    for (int l = 0; l < num_layers; l++) {
        const fr_layer *L = &layers[l];
        if (L->dtype != L0->dtype || L->cell != L0->cell || L->hidden_size != L0->hidden_size ||
            L->peephole != L0->peephole || L->linear_before_reset != L0->linear_before_reset ||
            fr_proj(L) != proj || L->input_size != (l ? fr_output_size(L0) : L0->input_size))
            return -1;
        if ((!L->w_ih && !L->w_ih_packed) || (!L->w_hh && !L->w_hh_packed) ||
            (L->peephole && L->cell == FR_LSTM && !L->w_peep) ||
            (proj && !L->w_hr && !L->w_hr_packed))
            return -1;
    }
    return 0;
}

size_t fr_stream_memory_size(const fr_layer *layers, int num_layers, int B)
{
    return kernels(layers[0].dtype)->stream_memory_size(layers, num_layers, B);
}

int fr_stream_init(fr_stream *s, const fr_layer *layers, int num_layers, int B, void *memory,
                   const fr_blas *blas)
{
    if (fr_stream_check(layers, num_layers, B))
        return -1;
    kernels(layers[0].dtype)->stream_init(s, layers, num_layers, B, memory, blas);
    return 0;
}

int fr_stream_set_weights(fr_stream *s, const fr_layer *layers)
{
    if (fr_stream_check(layers, s->num_layers, s->batch))
        return -1;
    const fr_layer *old = &s->layers[0].layer;
    if (layers[0].dtype != old->dtype || layers[0].cell != old->cell ||
        layers[0].input_size != old->input_size || layers[0].hidden_size != old->hidden_size ||
        layers[0].peephole != old->peephole || fr_output_size(&layers[0]) != fr_output_size(old) ||
        layers[0].linear_before_reset != old->linear_before_reset)
        return -1;
    kernels(old->dtype)->stream_set_weights(s, layers);
    return 0;
}

void fr_stream_step(const fr_stream *s, const void *x, void *y)
{
    kernels(s->layers[0].layer.dtype)->stream_step(s, x, y);
}

void fr_stream_run(const fr_stream *s, int T, const void *x, void *y)
{
    kernels(s->layers[0].layer.dtype)->stream_run(s, T, x, y);
}

void fr_stream_reset(const fr_stream *s, int row)
{
    kernels(s->layers[0].layer.dtype)->stream_reset(s, row);
}
