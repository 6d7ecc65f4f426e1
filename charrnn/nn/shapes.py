"""The parameters of a CharRNN by name and shape: PyTorch's RNNModel naming.

    encoder.weight       (V, E)
    rnn.weight_ih_l{k}   (G*H, E if k == 0 else H)   G gates: 4 LSTM, 3 GRU, 1 RNN
    rnn.weight_hh_l{k}   (G*H, H)
    rnn.bias_ih_l{k}     (G*H,)
    rnn.bias_hh_l{k}     (G*H,)
    decoder.weight       (V, H)
    decoder.bias         (V,)

Pure Python: checkpoints and run listings read it without loading any kernel.
"""
from charrnn.errors import ConfigError, short

GATES = {"lstm": 4, "gru": 3, "rnn": 1}   # gate blocks per cell, in PyTorch's order
SIZE_KEYS = ("hidden", "layers", "embed", "vocab_size")


def expected_shapes(config):
    """Tensor name -> shape of a model with this config (PyTorch RNNModel naming).

    Raises ConfigError if config lacks cell/hidden/layers/embed/vocab_size or has bad
    values there (or a dropout outside [0, 1)).
    """
    check_config(config)
    G, H, L = GATES[config["cell"]], config["hidden"], config["layers"]
    E, V = config["embed"], config["vocab_size"]
    shapes = {"encoder.weight": (V, E)}
    for k in range(L):
        shapes[f"rnn.weight_ih_l{k}"] = (G * H, E if k == 0 else H)
        shapes[f"rnn.weight_hh_l{k}"] = (G * H, H)
        shapes[f"rnn.bias_ih_l{k}"] = (G * H,)
        shapes[f"rnn.bias_hh_l{k}"] = (G * H,)
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def check_config(config):
    """Raise ConfigError unless config (a dict, as read from a file) names a known cell,
    positive integer sizes and a dropout in [0, 1)."""
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a JSON object, not {type(config).__name__}")
    missing = [k for k in ("cell",) + SIZE_KEYS if k not in config]
    if missing:
        raise ConfigError(f"config lacks {', '.join(missing)}")
    if not isinstance(config["cell"], str) or config["cell"] not in GATES:
        raise ConfigError(f"config cell is {short(config['cell'])}; expected one of "
                          f"{', '.join(GATES)}")
    for key in SIZE_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config {key} is {short(value)}; "
                              f"expected a positive integer")
    dropout = config.get("dropout", 0.0)
    if (isinstance(dropout, bool) or not isinstance(dropout, (int, float))
            or not 0.0 <= dropout < 1.0):
        raise ConfigError(f"config dropout is {short(dropout)}; "
                          f"expected a number in [0, 1)")
