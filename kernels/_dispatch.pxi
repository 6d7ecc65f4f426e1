# The ISA tier of this extension module's kernel table (dispatch.h), included by every
# kernel module: each has its own table, set to the CPU's best tier at import;
# charrnn.isa sets all of them together (CHARRNN_ISA, tests).
cdef extern from "cellmath.h":
    int cr_isa_set(int isa)
    int cr_isa_current()
    int cr_isa_best()

cr_isa_set(cr_isa_best())


def _set_isa(int isa):
    """Run this module's kernels on tier isa (0 scalar, 1 avx2, 2 avx512, 3 neon).
    Returns 0, -1 if this CPU cannot run it, -2 if this build has no such tier."""
    return cr_isa_set(isa)


def _current_isa():
    """The tier this module's kernels run on now."""
    return cr_isa_current()
