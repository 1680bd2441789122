/* fastrnn.c - the public C API: sizes and the dtype dispatch. */
#include "internal.h"

int fr_gates(fr_cell cell)
{
    return cell == FR_LSTM ? 4 : cell == FR_GRU ? 3 : 1;
}

size_t fr_work_size(const fr_layer *L, int T, int B)
{
    return L->dtype == FR_F32 ? fr_work_size_f32(L, T, B) : fr_work_size_f64(L, T, B);
}

size_t fr_cache_size(const fr_layer *L, int T, int B)
{
    size_t H = (size_t)L->hidden_size, rows = (size_t)T * B;
    size_t extra = L->cell == FR_LSTM ? 2 : L->cell == FR_GRU ? 1 : 0;
    return rows * ((size_t)fr_gates(L->cell) * H + H + extra * H);
}

void fr_forward(const fr_layer *L, const fr_sequence *seq, const fr_blas *blas)
{
    if (L->dtype == FR_F32)
        fr_forward_f32(L, seq, blas);
    else
        fr_forward_f64(L, seq, blas);
}
