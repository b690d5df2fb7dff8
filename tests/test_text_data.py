"""Tests for sslax.data.text: the Wikipedia sample, local files, cleaning, splits, sentences."""
import json
import random
import sys

import numpy as np
import pytest

from sslax.data import text

# Hand-written documents for the cleaning tests, each over the default 200-character minimum.
HARBOUR = (
    "The old harbour town grew up around a narrow bridge that carried the main road over the "
    "river. For most of the nineteenth century its quays were crowded with barges that brought "
    "coal and timber from the hills, and the warehouses along the water were among the largest "
    "in the county. When the railway arrived in 1862 the barge trade declined, and many of the "
    "warehouses were turned into workshops, schools and, later, flats. Today the town is known "
    "for its weekly market, which has been held in the square by the church since the thirteenth "
    "century, and for a small museum that tells the story of the river.")
BEES = (
    "Honey bees live in colonies that may contain tens of thousands of workers, a few hundred "
    "males and a single queen. The workers build the comb from wax that they produce in glands "
    "on their abdomen, and they share out the tasks of the hive according to their age: young "
    "bees clean cells and feed larvae, while older ones guard the entrance and forage for nectar.")
COMPILER = (
    "A compiler translates a program written in a high-level language into instructions that a "
    "processor can execute. It usually works in several passes: the source text is first split "
    "into tokens, the tokens are parsed into a tree, the tree is checked for errors and "
    "optimised, and finally machine code is generated for the target architecture.")
GERMAN = (
    "Die kleine Stadt liegt an einem breiten Fluss und ist seit dem Mittelalter für ihren "
    "Wochenmarkt bekannt. Jeden Samstag kommen Bauern aus den umliegenden Dörfern, um Gemüse, "
    "Käse und Brot zu verkaufen, und im Sommer finden auf dem Platz vor der Kirche Konzerte "
    "statt, die viele Besucher anziehen.")
FRENCH = (
    "Le village se trouve au pied d'une colline couverte de vignes. Chaque automne, les "
    "habitants se réunissent pour la récolte du raisin, puis ils organisent une grande fête sur "
    "la place du marché, où l'on partage le vin nouveau avec les visiteurs venus des villes "
    "voisines.")
GARBLED = "".join(np.random.default_rng(0).choice(list("#$%&*+/<=>@^~|{}[]0123456789qxzjk "),
                                                  400))


def _doc(doc_id: str, body: str) -> dict[str, str]:
  return {"id": doc_id, "title": doc_id.title(), "text": body}


# --- Embedded Wikipedia sample --------------------------------------------------------------


@pytest.fixture(scope="module")
def articles():
  return text.wikipedia_sample()


def test_wikipedia_sample_has_every_article_and_no_redirect(articles):
  # 206 namespace-0 pages, 100 of them redirects; the sample has no other namespace-0 pages.
  print(f"{len(articles)} articles, {sum(len(a['text']) for a in articles)} characters")
  assert len(articles) == 106
  titles = [a["title"] for a in articles]
  assert all(titles) and len(set(titles)) == len(titles)
  assert len({a["id"] for a in articles}) == 106 and all(a["id"].isdigit() for a in articles)
  assert "AccessibleComputing" not in titles  # The first page of the dump is a redirect.
  assert titles[:3] == ["Anarchism", "Autism", "Albedo"]


def test_wikipedia_sample_size(articles):
  # 2,836,000 characters of plain text (the XML holds 6.1 MB, filter_wiki leaves 3.1 MB).
  assert 2_700_000 < sum(len(a["text"]) for a in articles) < 3_000_000
  # The shortest is "Asia Minor (disambiguation)" (338), still over clean_documents' 200.
  assert min(len(a["text"]) for a in articles) > 300


@pytest.mark.parametrize("markup", ["[[", "]]", "{{", "}}", "''", "<ref", "</", "==", "&nbsp;",
                                    "|alt=", "thumb|", "File:", "px|"])
def test_wikipedia_sample_has_no_markup(articles, markup):
  assert [a["title"] for a in articles if markup in a["text"]] == []


def test_wikipedia_sample_is_one_clean_paragraph_per_line(articles):
  for article in articles:
    for line in article["text"].split("\n"):
      assert line == line.strip() and len(line.split()) >= 3, (article["title"], line)
      assert not line.startswith(("*", "#", ":", ";")), (article["title"], line)
  # Back matter is cut: no reference-list heading survives as text.
  anarchism = articles[0]["text"]
  assert anarchism.startswith("Anarchism is a political philosophy that advocates")
  assert "\nReferences\n" not in anarchism and "\nExternal links" not in anarchism


def test_wikipedia_sample_returns_fresh_documents(articles):
  mine = text.wikipedia_sample()
  mine[0]["text"] = "edited"
  assert text.wikipedia_sample()[0]["text"] == articles[0]["text"] != "edited"


def test_wikipedia_sample_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "gensim", None)
  with pytest.raises(ModuleNotFoundError, match="pip install gensim"):
    text._wikipedia_articles.__wrapped__()


def test_cleaning_keeps_every_prose_article(articles):
  kept, counts = text.clean_documents(articles)
  print(counts)
  # Only "List of anthropologists" goes: it is a list of names (7% function words) with no prose.
  assert counts == {"input": 106, "empty_after_normalisation": 0, "too_short": 0,
                    "not_english_or_garbled": 1, "exact_duplicate": 0, "near_duplicate": 0,
                    "kept": 105}
  assert "List of anthropologists" not in {d["title"] for d in kept}


def test_real_sentences_look_like_sentences(articles):
  sentences = text.split_sentences(articles[0]["text"])
  assert sentences[0] == ("Anarchism is a political philosophy that advocates self-governed "
                          "societies based on voluntary institutions.")
  lengths = np.array([len(sentence.split()) for article in articles[:20]
                      for sentence in text.split_sentences(article["text"])])
  # Wikipedia averages about 20 words a sentence; splitting after every abbreviation would not.
  assert 15 < lengths.mean() < 25 and (lengths < 3).mean() < 0.02


# --- Local files ----------------------------------------------------------------------------


def test_txt_blank_lines_separate_documents(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("First document,\nsecond line.\n\n\n  \nSecond document.\n \nThird.\n")
  documents = text.read_text_files(path)
  assert [d["text"] for d in documents] == ["First document,\nsecond line.", "Second document.",
                                            "Third.\n"]
  assert [d["id"] for d in documents] == ["notes.txt:0", "notes.txt:1", "notes.txt:2"]
  assert documents[0]["title"] == "notes"


def test_txt_without_blank_lines_is_one_document(tmp_path):
  path = tmp_path / "book.txt"
  path.write_text("Line one.\nLine two.\r\nLine three.\n")
  assert [d["text"] for d in text.read_text_files(path)] == ["Line one.\nLine two.\nLine three.\n"]


def test_jsonl_skips_and_counts_malformed_lines(tmp_path, caplog):
  path = tmp_path / "corpus.jsonl"
  lines = [json.dumps({"text": "Plain record."}), "{not json", json.dumps([1, 2]),
           json.dumps({"title": "no text"}), "", json.dumps({"text": 7}),
           json.dumps({"id": 42, "title": "Given", "text": "Record with an id."})]
  path.write_text("\n".join(lines) + "\n")
  documents = text.read_text_files(path)
  assert documents == [{"id": "corpus.jsonl:1", "title": "", "text": "Plain record."},
                       {"id": "42", "title": "Given", "text": "Record with an id."}]
  assert "Skipped 4 malformed lines" in caplog.text


def test_folder_reads_txt_and_jsonl_recursively_in_sorted_order(tmp_path):
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "b.txt").write_text("From text.\n\nAnother.")
  (tmp_path / "a.jsonl").write_text(json.dumps({"text": "From jsonl."}) + "\n")
  (tmp_path / "readme.md").write_text("Not a corpus file.")
  documents = text.read_text_files(tmp_path)
  assert [(d["id"], d["text"]) for d in documents] == [
      ("a.jsonl:1", "From jsonl."), ("sub/b.txt:0", "From text."), ("sub/b.txt:1", "Another.")]


def test_missing_empty_or_unknown_paths_say_what_to_change(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist: pass a .txt or .jsonl file"):
    text.read_text_files(tmp_path / "nowhere")
  (tmp_path / "empty.txt").write_text("\n  \n")
  with pytest.raises(ValueError, match="No documents in"):
    text.read_text_files(tmp_path)
  (tmp_path / "data.csv").write_text("a,b")
  with pytest.raises(ValueError, match="neither .txt nor .jsonl"):
    text.read_text_files(tmp_path / "data.csv")


# --- Cleaning -------------------------------------------------------------------------------


def test_normalise_text():
  raw = "  ﬁne\u00a0\u00a0text\u200b\there\r\n\n\n  next  line ¹ \x07\n"
  assert text.normalise_text(raw) == "fine text here\nnext line 1"


@pytest.mark.parametrize("body, english", [
    (HARBOUR, True), (BEES, True), (COMPILER, True), (GERMAN, False), (FRENCH, False),
    (GARBLED, False), ("", False),
    ("Москва является столицей России и крупнейшим городом страны, а также центром.", False)])
def test_looks_english(body, english):
  assert text.looks_english(body) == english


def test_each_document_lands_in_its_counter(caplog):
  caplog.set_level("INFO")
  documents = [
      _doc("harbour", HARBOUR), _doc("bees", BEES), _doc("compiler", COMPILER),
      _doc("bees-copy", "\n  " + BEES.upper().replace(" ", " \t ") + "  "),
      _doc("harbour-edit", HARBOUR.replace("weekly", "monthly")),
      _doc("short", "Too short to train on."), _doc("german", GERMAN), _doc("french", FRENCH),
      _doc("garbled", GARBLED), _doc("blank", " \u200b\n\t \n")]
  kept, counts = text.clean_documents(documents)
  assert counts == {"input": 10, "empty_after_normalisation": 1, "too_short": 1,
                    "not_english_or_garbled": 3, "exact_duplicate": 1, "near_duplicate": 1,
                    "kept": 3}
  assert sum(counts.values()) == 2 * counts["input"]
  assert [d["id"] for d in kept] == ["harbour", "bees", "compiler"]
  assert kept[0] == {"id": "harbour", "title": "Harbour", "text": HARBOUR}
  assert "Text cleaning: input=10," in caplog.text and "kept=3" in caplog.text


def test_near_duplicate_threshold_is_exact_jaccard():
  # One word changed in 109 replaces 5 of the 105 shingles: Jaccard 100 / 110 = 0.909.
  pair = [_doc("a", HARBOUR), _doc("b", HARBOUR.replace("weekly", "monthly"))]
  assert text.clean_documents(pair, near_dup_threshold=0.9)[1]["near_duplicate"] == 1
  assert text.clean_documents(pair, near_dup_threshold=0.91)[1]["near_duplicate"] == 0
  # Sharing one of two paragraphs (Jaccard 0.46) is not a near duplicate.
  halves = [_doc("c", HARBOUR + "\n" + BEES), _doc("d", HARBOUR + "\n" + COMPILER)]
  assert text.clean_documents(halves)[1]["kept"] == 2


def test_cleaning_thresholds_are_parameters():
  documents = [_doc("bees", BEES)]
  assert text.clean_documents(documents, min_chars=len(BEES) + 1)[1]["too_short"] == 1
  assert text.clean_documents(documents, min_stopwords=0.9)[1]["not_english_or_garbled"] == 1


# --- Splits ---------------------------------------------------------------------------------


def _numbered(count: int) -> list[dict[str, str]]:
  return [_doc(f"doc{i:03d}", f"Body {i}.") for i in range(count)]


def test_split_is_disjoint_complete_and_sized():
  documents = _numbered(50)
  train, heldout = text.split_documents(documents, heldout_fraction=0.2, seed=3)
  assert len(heldout) == 10 and len(train) == 40
  train_ids, heldout_ids = {d["id"] for d in train}, {d["id"] for d in heldout}
  assert not train_ids & heldout_ids and train_ids | heldout_ids == {d["id"] for d in documents}
  assert [d["id"] for d in train] == sorted(train_ids)


def test_split_depends_only_on_ids_and_seed():
  documents = _numbered(50)
  shuffled = random.Random(1).sample(documents, len(documents))
  first = text.split_documents(documents, 0.2, seed=3)
  assert text.split_documents(shuffled, 0.2, seed=3) == first
  assert text.split_documents(documents, 0.2, seed=4)[1] != first[1]


def test_split_edge_cases():
  documents = _numbered(10)
  assert text.split_documents(documents, 0.0) == (documents, [])
  assert len(text.split_documents(documents, 0.01)[1]) == 1
  with pytest.raises(ValueError, match="must be in"):
    text.split_documents(documents, 1.0)
  with pytest.raises(ValueError, match="leaves none to train"):
    text.split_documents(documents[:1], 0.5)
  with pytest.raises(ValueError, match="ids must be unique"):
    text.split_documents(documents + documents[:1], 0.2)


# --- Sentences ------------------------------------------------------------------------------


def test_split_sentences_respects_abbreviations_and_paragraphs():
  passage = ("Dr. Smith met J. R. R. Tolkien at St. Mary's, e.g. on Sundays, i.e. weekly. "
             "It rained! Did it stop? \"Yes.\" She left in 1990. 2000 was quiet.\n"
             "A paragraph without a full stop\nMr. Brown paid 3.50 dollars. (Then he left.)")
  assert text.split_sentences(passage) == [
      "Dr. Smith met J. R. R. Tolkien at St. Mary's, e.g. on Sundays, i.e. weekly.",
      "It rained!", "Did it stop?", "\"Yes.\"", "She left in 1990.", "2000 was quiet.",
      "A paragraph without a full stop", "Mr. Brown paid 3.50 dollars.", "(Then he left.)"]


def test_split_sentences_keeps_lowercase_continuations():
  assert text.split_sentences("It costs approx. ten euros. the end is near.  ") == [
      "It costs approx. ten euros. the end is near."]
  assert text.split_sentences(" \n\n ") == []
