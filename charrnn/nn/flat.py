"""Parameters in one flat buffer with named views (llm.c style), shared by every model
(charrnn.nn.network, classifier, seq2seq): the optimizer and gradient clipping are then
single loops over one array, and a checkpoint is just the views.

    flat, grad_flat, params, grads = allocate(shapes, dtype)   # (P,) each, and name -> view
    assign(params, given)                                      # copy checked arrays in
"""
import numpy as np

from charrnn.errors import ShapeError


def views(flat, shapes):
    """name -> the view of flat (P,) shaped shapes[name], laid out in the order of shapes."""
    out, off = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        out[name] = flat[off:off + n].reshape(shape)
        off += n
    return out


def allocate(shapes, dtype):
    """(flat, grad_flat, params, grads): zeroed parameter and gradient buffers (P,) of
    dtype, and their named views."""
    flat = np.zeros(sum(int(np.prod(s)) for s in shapes.values()), dtype)   # (P,)
    grad_flat = np.zeros_like(flat)                                        # (P,)
    return flat, grad_flat, views(flat, shapes), views(grad_flat, shapes)


def assign(params, given):
    """Copy every array of `given` (name -> array) into the view of that name."""
    for name, a in given.items():
        if name not in params or params[name].shape != np.shape(a):
            raise ShapeError(f"parameter {name} with shape {np.shape(a)} does not fit this model")
        params[name][...] = a
