"""Text for language-model sweeps (``data=text``): a local file or folder, or text that ships with Python, cut
into sequences of ``seq_len`` tokens. Nothing is downloaded.

Tokens come from a tokenizer saved in a local directory (``tokenizer=DIR``, e.g. the model's own
``save_pretrained`` directory; needs ``transformers``), else they are the text's UTF-8 bytes (a vocabulary of
256). Sequences are consecutive and do not overlap (the tail shorter than ``seq_len`` is dropped); an item is
``(ids, ids)``: the labels are the inputs, which ``task=causal_lm`` shifts by one.

``path="python:docs"`` reads the docstrings of a fixed list of pure-Python standard-library modules (about
380 KB of English prose): real text that every Python installation has, for the ``tiny_lm`` experiment.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from .errors import ConfigError, require_indices

__all__ = ["TextSequences", "python_docs", "TEXT_SUFFIXES", "DOC_MODULES"]

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
# pure-Python stdlib modules whose docstrings are the built-in corpus (fixed order: the same text everywhere)
DOC_MODULES = ("argparse", "textwrap", "json", "json.decoder", "json.encoder", "string", "fractions", "statistics",
               "calendar", "difflib", "pprint", "shlex", "configparser", "csv", "functools", "heapq", "bisect",
               "collections", "dataclasses", "enum", "fnmatch", "glob", "gettext", "imaplib", "inspect",
               "logging", "netrc", "optparse", "pathlib", "pickletools", "platform", "queue", "random", "sched",
               "shutil", "smtplib", "tarfile", "tempfile", "threading", "timeit", "tokenize", "traceback",
               "typing", "uuid", "wave", "zipfile")


def python_docs() -> str:
    """The docstrings in the source files of :data:`DOC_MODULES` (the module's, then each top-level function's,
    class's and method's, in source order), read from the files themselves so that no process's imports or
    patches change them: the same text wherever the same Python version is installed."""
    parts = []
    for name in DOC_MODULES:
        origin = importlib.util.find_spec(name).origin
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
        nodes = [tree, *[n for top in tree.body if isinstance(top, (ast.FunctionDef, ast.ClassDef))
                         for n in (top, *(m for m in getattr(top, "body", []) if isinstance(m, ast.FunctionDef)))]]
        parts += [doc for node in nodes if (doc := ast.get_docstring(node))]
    return "\n\n".join(parts)


def _read(path: str) -> str:
    if path == "python:docs":
        return python_docs()
    where = Path(path).expanduser()
    if where.is_file():
        files = [where]
    elif where.is_dir():
        files = sorted(p for p in where.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    else:
        files = []
    if not files:
        raise ConfigError("no text found", expected=f"a text file, or a folder of {'/'.join(TEXT_SUFFIXES)} files, "
                          "or python:docs", found=f"nothing at {where}", fix="set data.path to local text")
    return "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


class TextSequences(Dataset):
    """``seq_len``-token sequences of local text (see the module docstring); ``vocab_size`` says how many token
    ids there are (256 for bytes), :meth:`decode` turns ids back into text (the page shows items so)."""

    def __init__(self, path: str = "python:docs", seq_len: int = 64, tokenizer: str | None = None,
                 max_sequences: int | None = None) -> None:
        if seq_len < 2:
            raise ConfigError("sequences too short", expected="data.seq_len >= 2 (a next token to predict)",
                              found=str(seq_len), fix="set data.seq_len=64")
        self.path, self.seq_len = path, int(seq_len)
        self.tokenizer = None
        text = _read(path)
        if tokenizer is not None:
            from .hf import require_transformers

            transformers = require_transformers()
            if not (Path(tokenizer).expanduser() / "tokenizer_config.json").is_file() and not \
                    (Path(tokenizer).expanduser() / "tokenizer.json").is_file():
                raise ConfigError(f"no tokenizer in {tokenizer}", expected="a directory a tokenizer was saved to "
                                  "(tokenizer.save_pretrained)", found="no tokenizer files there",
                                  fix="point data.tokenizer at the model's directory, or drop it for bytes")
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(Path(tokenizer).expanduser()),
                                                                        local_files_only=True)
            ids = torch.tensor(self.tokenizer(text)["input_ids"], dtype=torch.long)
            self.vocab_size = int(len(self.tokenizer))
        else:
            ids = torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).to(torch.long)
            self.vocab_size = 256
        n = ids.numel() // self.seq_len
        if max_sequences is not None:
            n = min(n, int(max_sequences))
        if n < 1:
            raise ConfigError("the text is shorter than one sequence", expected=f"at least {self.seq_len} tokens",
                              found=f"{ids.numel()} tokens", fix="lower data.seq_len or add text")
        self.sequences = ids[:n * self.seq_len].reshape(n, self.seq_len)

    def __len__(self) -> int:
        return int(self.sequences.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        require_indices([index], len(self), fix="pick sequence indices below the dataset length")
        ids = self.sequences[index]
        return ids, ids.clone()

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Each token's text (bytes: the character, or ``\\xNN`` for a byte that is not printable ASCII)."""
        if self.tokenizer is not None:
            return [self.tokenizer.decode([int(t)]) for t in ids]
        return [chr(int(t)) if 32 <= int(t) < 127 or int(t) in (9, 10) else f"\\x{int(t):02x}" for t in ids]
