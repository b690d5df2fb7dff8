"""Text sources of the language methods (files, TFDS without TensorFlow) and their records."""
import json

import numpy as np
import pytest

from sslax.data import text_corpus, tokenizer

DOCS = [("Alpha", "The first article is about alpha. It has two sentences."),
        ("Beta", "The second article is about beta.")]


@pytest.fixture(scope="module")
def tiny_text_tfds(tmp_path_factory):
  """A two-article TFDS text dataset prepared as array_record; returns its data_dir."""
  import tensorflow_datasets as tfds

  with tfds.core.registered.skip_registration():

    class TinyArticles(tfds.core.GeneratorBasedBuilder):
      VERSION = tfds.core.Version("1.0.0")

      def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "title": tfds.features.Text(), "body": tfds.features.Text()}))

      def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

      def _generate_examples(self):
        for key, (title, body) in enumerate(DOCS):
          yield key, {"title": title, "body": body}

  data_dir = tmp_path_factory.mktemp("tfds_text")
  TinyArticles(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return str(data_dir)


def test_tfds_text_documents_are_read_without_tensorflow(tiny_text_tfds):
  docs = text_corpus.load_documents({"source": "tfds", "name": "tiny_articles",
                                     "data_dir": tiny_text_tfds, "text_key": "body"})
  assert sorted((d["title"], d["text"]) for d in docs) == sorted(DOCS)
  assert len({d["id"] for d in docs}) == 2
  with pytest.raises(ValueError, match="no feature 'text'"):
    text_corpus.load_documents({"source": "tfds", "name": "tiny_articles",
                                "data_dir": tiny_text_tfds})


def test_text_files_and_errors(tmp_path):
  path = tmp_path / "corpus.jsonl"
  path.write_text("\n".join(json.dumps({"title": t, "text": x}) for t, x in DOCS))
  docs = text_corpus.load_documents({"source": "text_files", "path": str(path)})
  assert [d["text"] for d in docs] == [x for _, x in DOCS]
  with pytest.raises(ValueError, match="data.path"):
    text_corpus.load_documents({"source": "text_files"})
  with pytest.raises(ValueError, match="unknown text data source"):
    text_corpus.load_documents({"source": "wiki"})
  with pytest.raises(ValueError, match="data.name"):
    text_corpus.load_documents({"source": "tfds"})


def test_nsp_records_follow_document_length_and_packing_is_exact():
  short = [np.arange(5, 10, dtype=np.int32)]  # 5 tokens: one record.
  long = [np.arange(5, 45, dtype=np.int32), np.arange(45, 70, dtype=np.int32)]  # 65 tokens.
  records = text_corpus.nsp_records([short, long], max_len=16)
  assert [int(r["doc"]) for r in records] == [0] + [1] * 4
  chunks = text_corpus.packed_records([short, long], seq_len=8)
  stream = np.concatenate([chunk["tokens"] for chunk in chunks])
  expected = np.concatenate([short[0], [tokenizer.SEP_ID], *long, [tokenizer.SEP_ID]])
  np.testing.assert_array_equal(stream, expected[:len(stream)])
  assert len(stream) == 9 * (len(expected) // 9)
  example = text_corpus.NextTokenExample().random_map(chunks[0], np.random.default_rng(0))
  np.testing.assert_array_equal(example["targets"][:-1], example["input_ids"][1:])
  with pytest.raises(ValueError, match="seq_len"):
    text_corpus.packed_records([short], seq_len=64)
