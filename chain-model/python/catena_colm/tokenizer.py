"""Byte-level BPE from a HuggingFace tokenizer.json, encoding exactly as Catena does.

Catena's tokenizer (data-pipeline's ByteLevelBpe, and the byte tokenizer exported as a BPE without merges)
pre-tokenizes with GPT-2's pattern
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
over UTF-8 bytes (a byte that does not start a valid UTF-8 sequence is one character of the "other" class, so any
bytes encode and round-trip), turns each piece's bytes into byte tokens and applies merges lowest rank first,
leftmost on ties. Python's `re` has no \\p{L}, so the pattern is hand-written here like Catena's Java
PreTokenizer, with character classes from `unicodedata` (Java and Python may disagree on characters added in
a Unicode version only one of them knows). Text never produces special tokens: "<|endoftext|>" in a prompt is
text, as in Catena (HuggingFace's tokenizers would map it to the special id).
"""

import json
import unicodedata

_LETTER, _NUMBER, _SPACE, _OTHER = 0, 1, 2, 3


def bytes_to_unicode():
    """GPT-2's byte -> printable character table, the alphabet of byte-level vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {}
    shifted = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _class_of_code_point(cp):
    if cp < 0:
        return _OTHER  # an invalid UTF-8 byte
    if 0x09 <= cp <= 0x0D or cp == 0x85:
        return _SPACE
    cat = unicodedata.category(chr(cp))
    if cat in ("Zs", "Zl", "Zp"):
        return _SPACE
    if cat in ("Lu", "Ll", "Lt", "Lm", "Lo"):
        return _LETTER
    if cat in ("Nd", "Nl", "No"):
        return _NUMBER
    return _OTHER


_ASCII_CLASS = [_class_of_code_point(c) for c in range(128)]


def _decode(b, p, to):
    """(code point, length) of the UTF-8 character at p; (-1, 1) for a byte that does not start a valid one."""
    c = b[p]
    if c < 0x80:
        return c, 1
    if 0xC2 <= c <= 0xDF:
        n, cp, low = 2, c & 0x1F, 0x80
    elif 0xE0 <= c <= 0xEF:
        n, cp, low = 3, c & 0x0F, 0x800
    elif 0xF0 <= c <= 0xF4:
        n, cp, low = 4, c & 0x07, 0x10000
    else:
        return -1, 1
    if p + n > to:
        return -1, 1
    for i in range(1, n):
        cc = b[p + i]
        if cc & 0xC0 != 0x80:
            return -1, 1
        cp = (cp << 6) | (cc & 0x3F)
    if cp < low or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        return -1, 1
    return cp, n


def _class(cp):
    return _ASCII_CLASS[cp] if 0 <= cp < 128 else _class_of_code_point(cp)


def _next_piece_end(b, pos, to):
    c0 = b[pos]
    if c0 == 0x27 and pos + 1 < to:  # 's 't 'm 'd 're 've 'll
        c1 = b[pos + 1]
        if c1 in b"stmd":
            return pos + 2
        if pos + 2 < to and bytes((c1, b[pos + 2])) in (b"re", b"ve", b"ll"):
            return pos + 3
    start = pos + 1 if c0 == 0x20 and pos + 1 < to else pos
    cp, n = _decode(b, start, to)
    cls = _class(cp)
    if cls != _SPACE and (start == pos + 1 or c0 != 0x20):  # ' ?\p{L}+' | ' ?\p{N}+' | ' ?[^\s\p{L}\p{N}]+'
        p = start + n
        while p < to:
            cp, n = _decode(b, p, to)
            if _class(cp) != cls:
                break
            p += n
        return p
    p = last_start = pos  # whitespace: '\s+(?!\S)' then '\s+'
    while p < to:
        cp, n = _decode(b, p, to)
        if _class(cp) != _SPACE:
            break
        last_start = p
        p += n
    if p == to:
        return p
    if last_start > pos:
        return last_start  # leave the last whitespace character to prefix the next word
    return p


def pre_tokenize(data):
    """The pieces of `data` (bytes), in order; they tile it."""
    pieces = []
    pos = 0
    while pos < len(data):
        end = _next_piece_end(data, pos, len(data))
        pieces.append(data[pos:end])
        pos = end
    return pieces


class Tokenizer:
    """A byte-level BPE tokenizer: `encode(text) -> ids`, `decode(ids) -> text`."""

    def __init__(self, vocab, merges, added, where="tokenizer.json"):
        size = max(list(vocab.values()) + [a["id"] for a in added]) + 1
        self._token_bytes = [None] * size
        self._special = [False] * size
        char_to_byte = {c: b for b, c in bytes_to_unicode().items()}
        self._byte_id = [None] * 256
        for token, i in vocab.items():
            try:
                self._token_bytes[i] = bytes(char_to_byte[ch] for ch in token)
            except KeyError as e:
                raise ValueError(f"{where}: token {token!r} has a character ({e.args[0]!r}) outside the byte-level alphabet; "
                                 f"expected a byte-level BPE (what catena export writes)") from None
            if len(token) == 1:
                self._byte_id[char_to_byte[token]] = i
        for a in added:
            self._token_bytes[a["id"]] = a["content"].encode("utf-8")
            self._special[a["id"]] = bool(a.get("special", False))
        missing = [i for i, t in enumerate(self._token_bytes) if t is None]
        if missing:
            raise ValueError(f"{where}: no token for id {missing[0]} (ids must be contiguous 0..{size - 1})")
        if None in self._byte_id:
            b = self._byte_id.index(None)
            raise ValueError(f"{where}: the vocabulary lacks the byte token for byte 0x{b:02X}; a byte-level BPE needs all 256")
        self._pairs = {}
        for rank, (left, right) in enumerate(merges):
            try:
                pair = (vocab[left], vocab[right])
                result = vocab[left + right]
            except KeyError:
                raise ValueError(f"{where}: merge #{rank} {left!r} {right!r} names a token not in the vocabulary") from None
            self._pairs.setdefault(pair, (rank, result))
        self._cache = {}
        self.vocab_size = size
        self.eos_id = next((a["id"] for a in added if a["content"] == "<|endoftext|>"), None)

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        model = doc.get("model") or {}
        if model.get("type", "BPE") != "BPE" or "vocab" not in model:
            raise ValueError(f"{path}: model.type is {model.get('type')!r}, expected a BPE model with a vocab")
        pre = doc.get("pre_tokenizer") or {}
        if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space", False) or not pre.get("use_regex", True):
            raise ValueError(f"{path}: pre_tokenizer is {pre!r}, expected ByteLevel with use_regex=true and add_prefix_space=false")
        if doc.get("normalizer") is not None:
            raise ValueError(f"{path}: normalizer is {doc['normalizer']!r}, expected null")
        merges = []
        for m in model.get("merges", []):
            parts = m if isinstance(m, list) else m.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}: merge {m!r} is not a pair \"left right\"")
            merges.append((parts[0], parts[1]))
        return cls(model["vocab"], merges, doc.get("added_tokens", []), where=str(path))

    def encode(self, text):
        """Ids of `text` (str, encoded as UTF-8 like Java does, or bytes)."""
        data = text if isinstance(text, (bytes, bytearray)) else text.encode("utf-8", errors="replace")
        ids = []
        for piece in pre_tokenize(bytes(data)):
            ids.extend(self._merge(piece))
        return ids

    def _merge(self, piece):
        if len(piece) == 1:
            return [self._byte_id[piece[0]]]
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        sym = [self._byte_id[b] for b in piece]
        while len(sym) > 1:
            best = None
            for i in range(len(sym) - 1):
                hit = self._pairs.get((sym[i], sym[i + 1]))
                if hit is not None and (best is None or hit[0] < best[0]):
                    best = (hit[0], i, hit[1])
            if best is None:
                break
            _, i, result = best
            sym[i:i + 2] = [result]
        if len(self._cache) < 1 << 16:
            self._cache[piece] = sym
        return sym

    def decode_bytes(self, ids):
        """The bytes of `ids`; a special token is its content."""
        out = bytearray()
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            out += self._token_bytes[i]
        return bytes(out)

    def decode(self, ids):
        """UTF-8 text of `ids` (a byte sequence cut mid-character becomes U+FFFD)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
