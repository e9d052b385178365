"""Load a `catena export` directory (model.safetensors, config.json, tokenizer.json) and run it with numpy.

    import catena_colm
    m = catena_colm.load("exported/")
    m.logits([15, 7, 42], chains=1)       # [T, vocab] logits of the 1-chain sub-model
    m.generate("In the beginning", max_new_tokens=40)   # temperature 0: greedy, the same ids as `catena generate`

PyTorch is optional: `m.torch_state_dict()` hands the tensors to torch; the forward needs numpy only.
Format: docs/EXPORT.md in the Catena repository.
"""

from .model import Config, Model, load
from .tokenizer import Tokenizer

__all__ = ["Config", "Model", "Tokenizer", "load"]
