# The ISA tier table (dispatch.h), included by every kernel module but charrnn._isa: the
# tiers are compiled once, into charrnn._isa, and this module takes a pointer to its table
# at import (setup.py compiles it with CHARRNN_TIERS_IMPORTED). Importing this module
# therefore imports charrnn._isa first, which sets the table to the CPU's best tier;
# charrnn.isa switches it for every module at once (CHARRNN_ISA, tests).
cdef extern from "cellmath.h":
    int cr_tiers_import() except -1
    int cr_isa_current()

cr_tiers_import()


def _current_isa():
    """The tier this module's kernels run on now (charrnn._isa's, always)."""
    return cr_isa_current()
