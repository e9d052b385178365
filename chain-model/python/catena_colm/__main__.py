"""python3 -m catena_colm DIR --prompt "..." [--chains k] [--max-new-tokens N] [--temperature T] [--top-k K] [--seed S]"""

import argparse
import json
import sys

from .model import load


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m catena_colm",
                                description="Generate text with a `catena export` directory (numpy forward pass).")
    p.add_argument("dir", help="the --out directory of `catena export`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text (encoded with the export's tokenizer.json)")
    src.add_argument("--ids", help="prompt token ids, comma-separated (for an export without tokenizer.json)")
    p.add_argument("--chains", type=int, default=None, help="number of chains k to run (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default), the same ids as `catena generate`")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print {prompt_ids, ids, text} as JSON instead of the text")
    a = p.parse_args(argv)
    try:
        model = load(a.dir)
        if a.prompt is not None:
            if model.tokenizer is None:
                raise ValueError(f"{a.dir} has no tokenizer.json (exported with --no-tokenizer); pass --ids instead of --prompt")
            prompt_ids = model.tokenizer.encode(a.prompt)
        else:
            prompt_ids = [int(x) for x in a.ids.split(",") if x.strip()]
        ids = model.generate_ids(prompt_ids, a.max_new_tokens, a.temperature, top_k=a.top_k, chains=a.chains, seed=a.seed)
    except (ValueError, OSError) as e:
        print(f"catena_colm: {e}", file=sys.stderr)
        return 2
    text = model.tokenizer.decode(ids) if model.tokenizer is not None else None
    if a.json:
        print(json.dumps({"prompt_ids": prompt_ids, "ids": ids, "text": text}))
    elif text is None:
        print(",".join(str(i) for i in ids))
    else:
        print((a.prompt or "") + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
