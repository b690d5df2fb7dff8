"""Text documents for language pretraining (BERT MLM+NSP, GPT): sources, cleaning, splits.

A document is `{"id": str, "title": str, "text": str}` with one paragraph per line ("\\n"
between paragraphs), so sentence splitting for NSP never crosses a paragraph. Sources return
raw documents; `clean_documents` normalises and filters them, counting every drop, and
`split_documents` holds out whole articles so no held-out text leaks into training.
"""
import bz2
import functools
import hashlib
import json
import os
import pathlib
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

Document = dict[str, str]

# --- Embedded Wikipedia sample ---------------------------------------------------------------

# About 100 English Wikipedia articles (CC BY-SA) shipped with gensim's tests, in the MediaWiki
# export format; 206 pages in namespace 0, of which 100 are redirects.
_WIKI_SAMPLE = ("test", "test_data",
                "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
_MEDIAWIKI_NS = "{http://www.mediawiki.org/xml/export-0.10/}"
# Everything from the first of these headings to the end is citations and links, not prose.
_BACK_MATTER = frozenset({"see also", "references", "notes", "further reading", "external links",
                          "bibliography", "footnotes", "sources", "citations",
                          "notes and references"})
_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$")
# Gallery entries ("File:x.jpg|caption", "x.jpg|caption") are picture captions, not prose.
_GALLERY_LINE = re.compile(
    r"^\s*(?:(?:File|Image)\s*:|[^|]*\.(?:jpe?g|png|gif|svg|tiff?|og[gv])\s*\|)", re.IGNORECASE)
# filter_wiki keeps image options after a caption: "|alt=..." runs to the end of the line,
# "|thumb" and "|220x220px" may be followed by the next paragraph.
_ALT_TEXT = re.compile(r"\|\s*alt=.*$")
_IMAGE_OPTION = re.compile(r"\|\s*(?:(?:thumb|upright|left|right|center)\b|\d+(?:x\d+)?px)")
# Bold ''' and italic '' quotes survive filter_wiki.
_EMPHASIS = re.compile(r"'{2,}")
# List and indentation markers at the start of a line: * bullets, # numbers, : ; indents.
_LIST_MARKER = re.compile(r"^[\s*#:;]+")
# Removed templates (pronunciations, conversions) leave "()", "(, )" and "30px".
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)")
_IMAGE_SIZE = re.compile(r"\b\d+(?:x\d+)?px\b")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:])")
_SPACES = re.compile(r"[^\S\n]+")
# Lines left with fewer words are table cells, image sizes or lone symbols.
_MIN_LINE_WORDS = 3


def _clean_wiki_line(line: str) -> str:
  """Removes the markup filter_wiki leaves on one line of article text."""
  line = _IMAGE_OPTION.sub(" ", _ALT_TEXT.sub("", line))
  line = _EMPHASIS.sub("", line)
  line = _LIST_MARKER.sub("", line)
  line = _EMPTY_PARENS.sub("", line)
  line = _IMAGE_SIZE.sub("", line)
  line = _SPACES.sub(" ", line)
  return _SPACE_BEFORE_PUNCT.sub(r"\1", line).strip()


def _clean_wiki_text(text: str) -> str:
  """Plain paragraphs, one per line, from filter_wiki output.

  Headings are dropped (one-word "sentences" only add noise to NSP) and the article is cut at
  the first back-matter heading (See also, References, ...).
  """
  paragraphs = []
  for line in text.split("\n"):
    heading = _HEADING.match(line)
    if heading:
      if heading.group(2).lower() in _BACK_MATTER:
        break
      continue
    if _GALLERY_LINE.match(line):
      continue
    line = _clean_wiki_line(line)
    if len(line.split()) >= _MIN_LINE_WORDS:
      paragraphs.append(line)
  return "\n".join(paragraphs)


def _wiki_pages(stream: Iterable[tuple[str, ET.Element]]) -> Iterable[tuple[str, str, str]]:
  """(id, title, wikitext) of every article page: namespace 0 and not a redirect."""
  for _, element in stream:
    if element.tag != f"{_MEDIAWIKI_NS}page":
      continue
    if (element.findtext(f"{_MEDIAWIKI_NS}ns") == "0"
        and element.find(f"{_MEDIAWIKI_NS}redirect") is None):
      yield (element.findtext(f"{_MEDIAWIKI_NS}id"), element.findtext(f"{_MEDIAWIKI_NS}title"),
             element.findtext(f"{_MEDIAWIKI_NS}revision/{_MEDIAWIKI_NS}text") or "")
    element.clear()  # Pages are parsed one at a time, never the whole tree.


@functools.cache
def _wikipedia_articles() -> tuple[tuple[str, str, str], ...]:
  """Parses gensim's Wikipedia sample once per process."""
  try:
    import gensim
    from gensim.corpora.wikicorpus import filter_wiki
  except ModuleNotFoundError:
    raise ModuleNotFoundError(
        "wikipedia_sample reads the articles shipped with gensim: pip install gensim.") from None
  path = os.path.join(os.path.dirname(gensim.__file__), *_WIKI_SAMPLE)
  with bz2.open(path) as stream:
    return tuple((page_id, title, _clean_wiki_text(filter_wiki(wikitext)))
                 for page_id, title, wikitext in _wiki_pages(ET.iterparse(stream)))


def wikipedia_sample() -> list[Document]:
  """The default offline text: gensim's sample of English Wikipedia articles as plain text.

  Markup is stripped with gensim's `filter_wiki` and a few regexes for what it leaves; ids are
  the Wikipedia page ids. Each call returns fresh dicts, so callers may edit them.
  """
  return [{"id": page_id, "title": title, "text": text}
          for page_id, title, text in _wikipedia_articles()]


# --- Local files ----------------------------------------------------------------------------

_TEXT_SUFFIXES = (".txt", ".jsonl")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def _read_txt(path: pathlib.Path, name: str) -> list[Document]:
  """Documents separated by one or more blank lines; without any, the whole file is one."""
  # Undecodable bytes become U+FFFD instead of failing: the cleaning filter drops garbled text.
  text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
  chunks = [chunk for chunk in _BLANK_LINES.split(text) if chunk.strip()]
  return [{"id": f"{name}:{index}", "title": path.stem, "text": chunk}
          for index, chunk in enumerate(chunks)]


def _read_jsonl(path: pathlib.Path, name: str) -> list[Document]:
  """One JSON object per line with a string "text"; malformed lines are skipped and counted."""
  documents, malformed = [], 0
  with path.open(encoding="utf-8", errors="replace") as lines:
    for number, line in enumerate(lines, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        record = None
      if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        malformed += 1
        continue
      documents.append({"id": str(record.get("id", f"{name}:{number}")),
                        "title": str(record.get("title", "")), "text": record["text"]})
  if malformed:
    logging.warning("Skipped %d malformed lines in %s (each needs a JSON object with a string "
                    "\"text\").", malformed, path)
  return documents


def _read_file(path: pathlib.Path, name: str) -> list[Document]:
  return _read_txt(path, name) if path.suffix.lower() == ".txt" else _read_jsonl(path, name)


def read_text_files(path: str | os.PathLike) -> list[Document]:
  """Documents from a .txt file, a .jsonl file or a folder of them (recursively, sorted).

  In a .txt file one or more empty lines separate documents; a file without empty lines is one
  document. A .jsonl line is an object with "text" and optional "id" and "title". Default ids
  are "<file>:<index>" (.txt) or "<file>:<line>" (.jsonl), file paths relative to `path`.
  """
  root = pathlib.Path(path)
  if not root.exists():
    raise FileNotFoundError(f"{root} does not exist: pass a .txt or .jsonl file, or a folder "
                            "holding them.")
  if root.is_dir():
    files = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in _TEXT_SUFFIXES and p.is_file())
    documents = [doc for file in files for doc in _read_file(file, str(file.relative_to(root)))]
  elif root.suffix.lower() in _TEXT_SUFFIXES:
    documents = _read_file(root, root.name)
  else:
    raise ValueError(f"{root} is neither .txt nor .jsonl: rename it or pass its folder.")
  if not documents:
    raise ValueError(f"No documents in {root}: it needs non-empty .txt files or .jsonl lines "
                     "with a \"text\" field.")
  return documents


# --- Cleaning -------------------------------------------------------------------------------

# C0/C1 controls (line breaks are turned into "\n" before), zero-width and bidirectional marks
# and the BOM: invisible characters that only split or glue tokens.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u2064\ufeff]")


def normalise_text(text: str) -> str:
  """NFKC, invisible characters removed, runs of spaces collapsed, one paragraph per line."""
  text = unicodedata.normalize("NFKC", text)
  text = _INVISIBLE.sub("", "\n".join(text.splitlines()))
  lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
  return "\n".join(line for line in lines if line)


# Frequent English function words; other languages that use the Latin alphabet share few of
# them ("in", "also"), so their share of the words separates English from the rest.
_STOPWORDS = frozenset("""
a about after all also an and are as at be been but by can could for from had has have he her
his however if in into is it its more most not of on one only or other over she such than that
the their there these they this to was were when which while who will with would
""".split())
_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)?")


def looks_english(text: str, min_ascii_letters: float = 0.9,
                  min_stopwords: float = 0.15) -> bool:
  """Whether `text` reads as English prose rather than another language or garbage.

  Needs at least `min_ascii_letters` of its letters in a-z/A-Z (rejects other scripts and
  mojibake) and at least `min_stopwords` of its words among common English function words
  (rejects other Latin-script languages, word lists and random strings). In gensim's Wikipedia
  sample the median article has 39% of these words and the lowest one with prose (a list of
  film credits under an introduction) 17%; German and French paragraphs have under 5%.
  """
  letters = sum(map(str.isalpha, text))  # map over C methods, not a Python generator.
  if not letters:
    return False
  ascii_letters = sum(map(str.isalpha, text.encode("ascii", "ignore").decode("ascii")))
  words = _WORDS.findall(text.lower())
  stopwords = sum(map(_STOPWORDS.__contains__, words))
  return (ascii_letters / letters >= min_ascii_letters
          and stopwords >= min_stopwords * max(len(words), 1))


_SHINGLE_WORDS = 5
_NUM_HASHES = 64
# MinHash estimates this far below the threshold are still checked with the exact Jaccard
# similarity. The estimate's standard deviation is at most 0.5 / sqrt(64) = 0.0625, so a true
# near duplicate is missed with probability about 1e-4 per pair.
_CANDIDATE_MARGIN = 0.25
_MINHASH_CHUNK = 1 << 14


def _shingles(text: str) -> np.ndarray:
  """Sorted unique 64-bit hashes of the lowercased word 5-grams of `text` (uint64 [n]).

  A text shorter than five words is a single shingle of all its words.
  """
  words = text.lower().split()
  word_hashes = {w: int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                 for w in set(words)}
  ids = np.array([word_hashes[w] for w in words], dtype=np.uint64)
  width = min(_SHINGLE_WORDS, len(ids))
  count = len(ids) - width + 1
  hashes = np.zeros(count, dtype=np.uint64)
  with np.errstate(over="ignore"):  # Wrapping uint64 arithmetic is intended in hashes.
    for offset in range(width):
      hashes = (hashes * np.uint64(0x100000001B3)) ^ ids[offset:offset + count]
  return np.unique(hashes)


@functools.cache
def _hash_family() -> tuple[np.ndarray, np.ndarray]:
  """Fixed (seed 0) odd multipliers and offsets of the MinHash functions, uint64 [64, 1] each."""
  raw = np.random.default_rng(0).bit_generator.random_raw((2, _NUM_HASHES, 1))
  return raw[0] | np.uint64(1), raw[1]


def _minhash(shingles: np.ndarray) -> np.ndarray:
  """MinHash signature (uint64 [64]); the share of equal entries estimates Jaccard similarity.

  Each function is x -> a * x + b (mod 2^64, a odd) followed by an xorshift, a bijection of
  64-bit values that mixes every input bit into the high bits that decide the minimum.
  Shingles go in chunks so that a book-sized document needs no [64, n] array.
  """
  multipliers, offsets = _hash_family()
  signature = np.full(_NUM_HASHES, np.iinfo(np.uint64).max, dtype=np.uint64)
  for start in range(0, len(shingles), _MINHASH_CHUNK):
    with np.errstate(over="ignore"):
      mixed = multipliers * shingles[None, start:start + _MINHASH_CHUNK] + offsets
    signature = np.minimum(signature, (mixed ^ (mixed >> np.uint64(32))).min(axis=1))
  return signature


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
  """Jaccard similarity of two sorted unique hash arrays (exact up to 64-bit collisions)."""
  shared = len(np.intersect1d(a, b, assume_unique=True))
  return shared / (len(a) + len(b) - shared)


class _NearDuplicateIndex:
  """Kept documents' shingles; flags a new text whose shingle Jaccard with one reaches threshold.

  MinHash signatures pick candidates in one vectorised comparison against every kept document,
  and candidates are confirmed with the exact Jaccard similarity, so a decision never rests on
  the estimate alone. Quadratic in the number of documents: fine up to about 10^4.
  """

  def __init__(self, threshold: float, capacity: int):
    self.threshold = threshold
    self.shingles: list[np.ndarray] = []
    self.signatures = np.zeros((capacity, _NUM_HASHES), dtype=np.uint64)

  def is_near_duplicate(self, text: str) -> bool:
    """Whether `text` nearly duplicates a kept document; if not, it is kept."""
    shingles = _shingles(text)
    signature = _minhash(shingles)
    kept = len(self.shingles)
    estimates = (self.signatures[:kept] == signature).mean(axis=1)
    for index in np.flatnonzero(estimates >= self.threshold - _CANDIDATE_MARGIN):
      if _jaccard(shingles, self.shingles[index]) >= self.threshold:
        return True
    self.signatures[kept] = signature
    self.shingles.append(shingles)
    return False


def clean_documents(documents: Sequence[Document], min_chars: int = 200,
                    near_dup_threshold: float = 0.8, min_ascii_letters: float = 0.9,
                    min_stopwords: float = 0.15) -> tuple[list[Document], dict[str, int]]:
  """Normalises documents and drops the unusable ones, counting why each was dropped.

  Steps, in order (a document is counted by the first it fails): `normalise_text`; empty; under
  `min_chars` characters; not English (`looks_english`); exact duplicate (same lowercased text);
  near duplicate (Jaccard similarity of word 5-gram sets >= `near_dup_threshold`). The language
  filter runs before deduplication so that a garbled copy can never be kept in place of the
  clean one. The first of a set of duplicates, in input order, is kept.
  Returns the kept documents (new dicts with normalised text) and the counts.
  """
  counts = dict.fromkeys(("input", "empty_after_normalisation", "too_short",
                          "not_english_or_garbled", "exact_duplicate", "near_duplicate",
                          "kept"), 0)
  counts["input"] = len(documents)
  seen: set[bytes] = set()
  near_duplicates = _NearDuplicateIndex(near_dup_threshold, capacity=len(documents))
  kept = []
  for document in documents:
    text = normalise_text(document["text"])
    if not text:
      reason = "empty_after_normalisation"
    elif len(text) < min_chars:
      reason = "too_short"
    elif not looks_english(text, min_ascii_letters, min_stopwords):
      reason = "not_english_or_garbled"
    elif (digest := hashlib.blake2b(text.lower().encode()).digest()) in seen:
      reason = "exact_duplicate"
    else:
      seen.add(digest)
      reason = "near_duplicate" if near_duplicates.is_near_duplicate(text) else "kept"
    counts[reason] += 1
    if reason == "kept":
      kept.append({**document, "text": text})
  logging.info("Text cleaning: %s.", ", ".join(f"{k}={v}" for k, v in counts.items()))
  return kept, counts


# --- Splits and sentences -------------------------------------------------------------------


def split_documents(documents: Sequence[Document], heldout_fraction: float,
                    seed: int = 0) -> tuple[list[Document], list[Document]]:
  """Splits whole documents into (train, heldout), each sorted by id.

  The held-out side is the first round(heldout_fraction * n) ids (at least one when the
  fraction is positive) of a seeded permutation of the sorted ids, so it depends only on the
  set of ids and the seed, never on the input order.
  """
  if not 0 <= heldout_fraction < 1:
    raise ValueError(f"heldout_fraction={heldout_fraction} must be in [0, 1).")
  ids = sorted(document["id"] for document in documents)
  if len(set(ids)) != len(ids):
    raise ValueError("Document ids must be unique to split by document: give each one its own "
                     "\"id\".")
  num_heldout = max(round(heldout_fraction * len(ids)), int(heldout_fraction > 0))
  if num_heldout >= len(ids):
    raise ValueError(f"Holding out {num_heldout} of {len(ids)} documents leaves none to train "
                     "on: lower heldout_fraction or add documents.")
  order = np.random.default_rng(seed).permutation(len(ids))
  heldout_ids = {ids[i] for i in order[:num_heldout]}
  by_id = sorted(documents, key=lambda document: document["id"])
  return ([d for d in by_id if d["id"] not in heldout_ids],
          [d for d in by_id if d["id"] in heldout_ids])


# Words whose trailing period is not a sentence end (compared lowercased, without the period).
_ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st mt jr sr rev gen col capt lt sgt gov sen rep hon fr vs cf al approx ca c
e.g i.e no nos vol fig p pp ed eds jan feb mar apr jun jul aug sep sept oct nov dec
""".split())
# Sentence-final punctuation with optional closing quotes or brackets, then whitespace, then
# (after optional opening quotes or brackets) a capital letter or a digit.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_INITIAL = re.compile(r"[A-Z]")


def _ends_with_abbreviation(text: str) -> bool:
  """Whether `text`, which ends just before a period, ends with an abbreviation or an initial."""
  words = text.split()
  word = words[-1].lstrip("\"'([") if words else ""
  return word.lower() in _ABBREVIATIONS or bool(_INITIAL.fullmatch(word))


def split_sentences(text: str) -> list[str]:
  """Splits text into sentences at paragraph breaks and at . ! ? before a capital or digit.

  A period after a common abbreviation ("Dr.", "e.g.", "St.") or a capital initial ("J.") does
  not end a sentence. Rule-based, so "the U.S. The" stays one sentence: good enough for NSP.
  """
  sentences = []
  for paragraph in text.split("\n"):
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
      if match.group().startswith(".") and _ends_with_abbreviation(paragraph[start:match.start()]):
        continue
      sentences.append(paragraph[start:match.end()].strip())
      start = match.end()
    sentences.append(paragraph[start:].strip())
  return [sentence for sentence in sentences if sentence]
