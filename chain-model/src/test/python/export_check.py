"""Test driver for ExportRoundTripTest (chain-model) and ExportedTokenizerTest (data-pipeline): runs the
catena_colm package (chain-model/python, on PYTHONPATH) on what the Java side wrote and writes what it computed.

    export_check.py logits DIR TOKENS.npy OUT_DIR   -> OUT_DIR/logits_k{k}.npy, [T, V] float32, k = 1..num_chains
    export_check.py encode TOKENIZER.json TEXTS.json OUT.json
                                                    -> {"ids": [[...] per text], "decoded": [text per text]}
"""

import json
import os
import sys

import numpy as np

import catena_colm
from catena_colm.tokenizer import Tokenizer


def logits(export_dir, tokens_file, out_dir):
    model = catena_colm.load(export_dir)
    tokens = np.load(tokens_file)
    os.makedirs(out_dir, exist_ok=True)
    for k in range(1, model.config.num_chains + 1):
        np.save(os.path.join(out_dir, f"logits_k{k}.npy"), model.logits(tokens, chains=k).astype(np.float32))


def encode(tokenizer_file, texts_file, out_file):
    tok = Tokenizer.from_file(tokenizer_file)
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    ids = [tok.encode(t) for t in texts]
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump({"ids": ids, "decoded": [tok.decode(i) for i in ids]}, f)


if __name__ == "__main__":
    {"logits": logits, "encode": encode}[sys.argv[1]](*sys.argv[2:])
