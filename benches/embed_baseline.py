# Named so as not to shadow the sentence_transformers package it imports.
"""sentence-transformers (PyTorch) side of `palaver bench embed --baseline-python PYTHON`.

Loads the model Palaver measures: a sentence-transformers folder given with --model-dir
(multilingual-e5-small written out by Palaver from the file it runs, with its prompts; texts
take the prompt --prompt-name, as Palaver prefixes them), or all-MiniLM-L6-v2 from the files
Palaver uses (--config, --weights, --tokenizer; mean pooling, L2 normalisation, inputs truncated
at 256 tokens, as the published model does). Then it answers on stdin:

  run   embeds every sentence once, prints {"seconds": ...}
  quit  writes the vectors of the last run to --out (little-endian f32) and exits

The first line printed is {"ready": true, ...} with the library versions, thread count and
the prompt texts take.
Palaver alternates its own timed runs with these, so both see the same machine load.
"""

import argparse
import json
import os
import sys
import tempfile
import time


def model_dir(root, config, weights, tokenizer):
    """A sentence-transformers model folder over the given files (symlinks, no copies)."""
    for src, name in ((config, "config.json"), (weights, "model.safetensors"), (tokenizer, "tokenizer.json")):
        os.symlink(os.path.abspath(src), os.path.join(root, name))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    files = {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": False},
        "tokenizer_config.json": {
            "do_lower_case": True,
            "model_max_length": 512,
            "tokenizer_class": "BertTokenizer",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
        },
        "1_Pooling/config.json": {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True},
    }
    os.makedirs(os.path.join(root, "1_Pooling"))
    os.makedirs(os.path.join(root, "2_Normalize"))
    for name, value in files.items():
        with open(os.path.join(root, name), "w", encoding="utf-8") as f:
            json.dump(value, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", help="a sentence-transformers folder, used as it is")
    p.add_argument("--prompt-name", help="the folder's prompt every text takes")
    p.add_argument("--config", help="all-MiniLM-L6-v2's config.json (without --model-dir)")
    p.add_argument("--weights", help="all-MiniLM-L6-v2's model.safetensors")
    p.add_argument("--tokenizer", help="all-MiniLM-L6-v2's tokenizer.json")
    p.add_argument("--sentences", required=True, help="UTF-8 file, one sentence per line")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if not args.model_dir and not (args.config and args.weights and args.tokenizer):
        p.error("give --model-dir, or --config, --weights and --tokenizer")

    # Everything is local; never reach for the Hugging Face Hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import sentence_transformers
    import torch

    torch.set_num_threads(args.threads)
    with open(args.sentences, encoding="utf-8") as f:
        sentences = f.read().splitlines()

    with tempfile.TemporaryDirectory() as root:
        if args.model_dir:
            root = args.model_dir
        else:
            model_dir(root, args.config, args.weights, args.tokenizer)
        model = sentence_transformers.SentenceTransformer(root, device="cpu")
        prompt = model.prompts[args.prompt_name] if args.prompt_name else ""
        model.encode(sentences[:32][::-1], batch_size=args.batch_size, prompt_name=args.prompt_name)
        ready = {
            "ready": True,
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "threads": torch.get_num_threads(),
            "prompt": prompt,
        }
        print(json.dumps(ready), flush=True)

        vectors = None
        for line in sys.stdin:
            command = line.strip()
            if command == "run":
                started = time.perf_counter()
                vectors = model.encode(
                    sentences,
                    batch_size=args.batch_size,
                    prompt_name=args.prompt_name,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
                print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
            elif command == "quit":
                break
        if vectors is not None:
            vectors.astype("<f4").tofile(args.out)


if __name__ == "__main__":
    main()
