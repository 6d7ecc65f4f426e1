# Included by _decoder.pyx (training's loop) and _decode.pyx (decoding's): the attention
# step (_attn_core.pxi) and the names both use. Each module sets KERNEL, its name in
# messages, before including this.

cdef enum:
    BAHDANAU = 0
    LUONG = 1

include "_attn_core.pxi"

cdef enum:
    LSTM = 0
    GRU = 1
CELLS = {"lstm": LSTM, "gru": GRU}


cdef int _need(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"{KERNEL} kernel: inconsistent shapes ({what})")
    return 0
