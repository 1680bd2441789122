/* fastrnn.c - the public C API: sizes and the dtype dispatch. */
#include "internal.h"
#include "matmul.h"

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
    return fr_pack_size_f32(rows, cols);        /* the same panels in either dtype */
}

void fr_pack(fr_dtype dtype, int rows, int cols, const void *W, void *packed)
{
    if (dtype == FR_F32)
        fr_pack_f32(rows, cols, W, packed);
    else
        pack_rows_f64(rows, cols, W, packed);
}

size_t fr_work_size(const fr_layer *L, int T, int B)
{
    return L->dtype == FR_F32 ? fr_work_size_f32(L, T, B) : fr_work_size_f64(L, T, B);
}

size_t fr_cache_size(const fr_layer *L, int T, int B)
{
    size_t H = (size_t)L->hidden_size, R = (size_t)fr_output_size(L), rows = (size_t)T * B;
    size_t n = rows * ((size_t)fr_gates(L->cell) * H + R);
    if (L->cell == FR_LSTM)                     /* c's T + 1 slots, hraw */
        n += (rows + (size_t)B) * H + (fr_proj(L) ? rows * H : 0);
    if (L->cell == FR_GRU)
        n += rows * H;
    return n;
}

void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)
{
    if (L->dtype == FR_F32)
        fr_forward_f32(L, seq, blas);
    else
        fr_forward_f64(L, seq, blas);
}

size_t fr_backward_work_size(const fr_layer *L, int T, int B)
{
    return L->dtype == FR_F32 ? fr_backward_work_size_f32(L, T, B)
                              : fr_backward_work_size_f64(L, T, B);
}

void fr_backward(const fr_layer *L, const fr_sequence *seq, const fr_sequence_grad *d,
                 const fr_grads *g, const fr_blas *blas)
{
    if (L->dtype == FR_F32)
        fr_backward_f32(L, seq, d, g, blas);
    else
        fr_backward_f64(L, seq, d, g, blas);
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
            fr_proj(L) != proj ||
            L->input_size != (l ? fr_output_size(L0) : L0->input_size))
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
    return layers[0].dtype == FR_F32 ? fr_stream_memory_size_f32(layers, num_layers, B)
                                     : fr_stream_memory_size_f64(layers, num_layers, B);
}

int fr_stream_init(fr_stream *s, const fr_layer *layers, int num_layers, int B, void *memory,
                   const fr_blas *blas)
{
    if (fr_stream_check(layers, num_layers, B))
        return -1;
    if (layers[0].dtype == FR_F32)
        fr_stream_init_f32(s, layers, num_layers, B, memory, blas);
    else
        fr_stream_init_f64(s, layers, num_layers, B, memory, blas);
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
    if (old->dtype == FR_F32)
        fr_stream_set_weights_f32(s, layers);
    else
        fr_stream_set_weights_f64(s, layers);
    return 0;
}

void fr_stream_step(const fr_stream *s, const void *x, void *y)
{
    if (s->layers[0].layer.dtype == FR_F32)
        fr_stream_step_f32(s, x, y);
    else
        fr_stream_step_f64(s, x, y);
}

void fr_stream_run(const fr_stream *s, int T, const void *x, void *y)
{
    if (s->layers[0].layer.dtype == FR_F32)
        fr_stream_run_f32(s, T, x, y);
    else
        fr_stream_run_f64(s, T, x, y);
}

void fr_stream_reset(const fr_stream *s, int row)
{
    if (s->layers[0].layer.dtype == FR_F32)
        fr_stream_reset_f32(s, row);
    else
        fr_stream_reset_f64(s, row);
}
