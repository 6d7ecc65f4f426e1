"""The sample a run shows and keeps at every evaluation, and how much of it is copied.

    preview = Preview(model, train_ids)              # one stream of text
    preview = Preview(model, None, known, median)    # documents (--docs)
    text, fields, said = preview.make(step)          # fields go into metrics and samples

One stream of text: 200 characters at temperature 0.8 (seeded by the step), and the
longest piece of them found verbatim in the training text (charrnn.inspect.verbatim):
fields {"copied": characters}. Documents: a few whole items (charrnn.generate.items),
as many as about 400 characters hold (2 to 8, from the median document), each capped
at 400 characters, and how many of them are found verbatim among the run's documents
(charrnn.data.documents.Known, what `charrnn sample --items --novel` drops): fields
{"items": drawn, "copied_items": the share found}.
"""
from charrnn.data.documents import Known
from charrnn.errors import RunDirError
from charrnn.generate.items import as_text
from charrnn.inspect.verbatim import copied
from charrnn.io.rundir import DOCUMENTS_FILE

TEMPERATURE = 0.8
LENGTH = 200          # characters of a one-stream sample
ITEM_CHARS = 400      # documents: characters shown in all, about, and cap of each item


class Preview:
    def __init__(self, model, train_ids, known=None, median_length=None):
        self.model, self.train_ids, self.known = model, train_ids, known
        self.count = max(2, min(8, ITEM_CHARS // max(1, median_length or 1)))

    @classmethod
    def for_run(cls, model, corpus, docs, val_chars, run_dir):
        """The preview of a run: of its training text, or of its documents (Documents),
        whose fingerprints are first written to documents.npy (`sample --novel`)."""
        if docs is None:
            return cls(model, corpus.ids[:len(corpus.ids) - val_chars])
        known = Known(docs.hashes())
        try:
            known.save(run_dir / DOCUMENTS_FILE)
        except OSError as e:
            raise RunDirError(f"cannot write {run_dir / DOCUMENTS_FILE}: {e.strerror}; check "
                              "that the directory is writable and has free space") from None
        return cls(model, None, known, docs.median_length)

    def make(self, step):
        """(text, fields for the metrics and samples lines, the line that reports them)."""
        if self.known is None:
            text = self.model.generate(prime="", length=LENGTH, temperature=TEMPERATURE,
                                       seed=step)
            n = self.copied(text)
            return text, {"copied": n}, ("longest piece of this sample found verbatim in "
                                         f"the training text: {n} of {len(text)} characters")
        items = self.model.items(self.count, length=ITEM_CHARS, temperature=TEMPERATURE,
                                 seed=step, known=self.known)
        cut = f" ({items.cut} cut at {ITEM_CHARS} characters)" if items.cut else ""
        return (as_text(items.texts)[:-1],   # without the last line break
                {"items": items.draws, "copied_items": round(items.copies / items.draws, 4)},
                f"items of this sample found verbatim among the training documents: "
                f"{items.copies} of {items.draws}{cut}")

    def copied(self, text):
        index = {c: i for i, c in enumerate(self.model.vocab)}
        ids = [index[c] for c in text if c in index]
        return copied(ids, self.train_ids, len(index))
