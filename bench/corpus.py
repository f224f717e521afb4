"""The benchmarks' seeded corpus: English-looking prose with numbers, names and places, documents
chunked exactly as the server chunks them, and query texts. Nothing here times anything."""

from __future__ import annotations

import math
import random
import re
import sys
from collections.abc import Callable

CHUNK_SIZE, CHUNK_OVERLAP = 200, 20  # the server's defaults (application/workspaces.py chunk_settings)
INGEST_DOCS = 100
SEARCH_CHUNKS_PER_DOC = 500  # ~370 KB of text per document, well under MAX_BODY_BYTES (1 MiB)


# --- corpus -----------------------------------------------------------------------------------
# Sentences assembled from a vocabulary and templates: plain English-looking prose with numbers,
# names and places. The number of possible sentences is astronomically large, so no two 200-token
# chunks are equal (checked anyway: an equal chunk would be served from the embedding cache).
NOUNS = """system network protocol river valley harvest engine factory market budget policy council
village library archive manuscript theory experiment sample measurement signal sensor bridge tunnel
railway harbor vessel crew garden forest glacier mountain island coastline climate season drought
reservoir pipeline compiler database server cluster request response cache index schema migration
ledger account invoice contract supplier customer worker union strike treaty border province empire
dynasty monastery cathedral festival tradition language dialect grammar verse novel chapter author
editor painter sculpture gallery museum collection fossil species enzyme protein membrane cell tissue
organ patient clinic vaccine outbreak hospital nurse surgeon laboratory telescope orbit satellite comet
planet galaxy spectrum particle detector magnet circuit battery turbine furnace alloy mineral quarry
canal irrigation orchard vineyard merchant caravan voyage expedition map compass survey census
election parliament minister committee report audit forecast model algorithm dataset benchmark
processor memory kernel thread scheduler interface library framework release patch""".split()
PLURALS = """systems networks rivers harvests engines factories markets policies villages manuscripts
experiments samples measurements signals sensors bridges railways harbors vessels gardens forests
glaciers islands seasons reservoirs pipelines servers clusters requests databases ledgers accounts
contracts suppliers customers workers treaties provinces monasteries festivals traditions languages
novels authors painters museums fossils species enzymes proteins cells patients clinics hospitals
surgeons telescopes satellites planets particles circuits batteries turbines minerals canals orchards
merchants voyages maps surveys elections ministers committees reports models algorithms datasets
processors threads interfaces releases""".split()
ADJECTIVES = """ancient modern careful rapid gradual narrow broad quiet noisy remote local regional
northern southern eastern western coastal rural urban early late primary secondary reliable fragile
durable efficient expensive modest generous strict flexible complex simple detailed rough accurate
uncertain stable volatile dense sparse hidden visible public private formal informal annual seasonal
chemical physical biological digital mechanical electrical medieval colonial industrial agricultural
commercial scientific political cultural historical technical experimental theoretical practical
ordinary unusual significant minor major distant familiar""".split()
VERBS_PAST = """described measured recorded replaced improved reduced doubled expanded delayed repaired
surveyed estimated observed confirmed rejected approved funded designed tested deployed abandoned
restored mapped studied compared explained predicted transported produced exported imported
negotiated published translated reviewed challenged supported organized connected separated
protected damaged reshaped questioned simplified documented calibrated analyzed""".split()
VERBS_PRESENT = """describes measures records replaces improves reduces expands delays requires
supports explains predicts produces connects separates protects reshapes limits shapes follows
controls affects reflects contains combines maintains extends reveals""".split()
VERBS_BASE = """describe measure record replace improve reduce expand delay require support explain
predict produce connect separate protect reshape limit follow control affect reflect contain
combine maintain extend reveal""".split()
ADVERBS = """quickly slowly carefully rarely often usually gradually suddenly largely partly
steadily frequently occasionally reliably barely clearly roughly nearly typically mostly""".split()
PREPOSITIONS = """in near across along beyond within around behind beneath through toward""".split()
NAMES = """Alvarez Brennan Chen Dubois Eriksen Fischer Gupta Haddad Ibarra Jensen Kowalski Larsen
Moreau Nakamura Okafor Petrov Quinn Rossi Sato Tanaka Underwood Varga Weber Xu Yilmaz Zhang
Abara Novak Lindqvist Mensah Ortega Hoffmann""".split()
PLACES = """Lisbon Kraków Valparaíso Tromsø Nairobi Hobart Quito Tallinn Osaka Marseille Dundee
Bergen Cusco Antwerp Halifax Tbilisi Zanzibar Galway Porto Trieste Uppsala Mombasa Leipzig Perth
Seville Hanoi Ghent Riga Kyoto Bremen""".split()
CONNECTIVES = ["However,", "Moreover,", "In practice,", "As a result,", "By contrast,", "Later,", "Meanwhile,",
               "For this reason,", "In most cases,", "At first,", "Eventually,", "Nevertheless,", "Consequently,",
               "In the meantime,", "Even so,"]


_AN = re.compile(r"\b([Aa]) ([aeiouAEIOU])")


class Prose:
    """A seeded generator of English-looking sentences and paragraphs."""

    def __init__(self, seed: str) -> None:
        self.r = random.Random(seed)

    def _n(self) -> str:
        return self.r.choice(NOUNS)

    def _a(self) -> str:
        return self.r.choice(ADJECTIVES)

    def sentence(self) -> str:
        r = self.r
        c = r.choice
        t = r.randrange(10)
        if t == 0:
            s = (f"In {r.randint(1450, 2024)}, the {self._n()} of {c(PLACES)} {c(VERBS_PAST)} a {self._a()} "
                 f"{self._n()}, which {c(VERBS_PAST)} the {self._n()} {c(ADVERBS)}.")
        elif t == 1:
            s = (f"According to {c(NAMES)}, about {r.randint(2, 98)} percent of the {c(PLURALS)} "
                 f"{c(VERBS_PAST)} the {self._n()} {c(PREPOSITIONS)} {c(PLACES)}.")
        elif t == 2:
            s = (f"{c(NAMES)} argued that the {self._a()} {self._n()} would {c(VERBS_BASE)} the "
                 f"{self._n()} {c(PREPOSITIONS)} the {self._a()} {self._n()}.")
        elif t == 3:
            s = (f"The {self._n()} is {c(ADVERBS)} {self._a()}, but its {self._n()} {c(VERBS_PRESENT)} "
                 f"every {self._n()} {c(PREPOSITIONS)} the {self._n()}.")
        elif t == 4:
            s = (f"{c(CONNECTIVES)} the {self._a()} {c(PLURALS)} {c(VERBS_PAST)} "
                 f"{r.randint(3, 900)} {c(PLURALS)} within {r.randint(2, 60)} days.")
        elif t == 5:
            s = (f"Why does the {self._n()} {c(VERBS_BASE)} the {self._a()} {self._n()} when the "
                 f"{self._n()} is {self._a()}?")
        elif t == 6:
            s = (f"A {self._a()} {self._n()} {c(VERBS_PRESENT)} the {self._n()}, and the {self._n()} "
                 f"{c(VERBS_PRESENT)} a {self._a()} {self._n()} {c(PREPOSITIONS)} {c(PLACES)}.")
        elif t == 7:
            s = (f"{c(CONNECTIVES)} the {self._n()} {c(VERBS_PAST)} {r.randint(2, 40)} {c(PLURALS)} and "
                 f"{c(VERBS_PAST)} the {self._a()} {self._n()}.")
        elif t == 8:
            s = (f"The report by {c(NAMES)} and {c(NAMES)} {c(VERBS_PAST)} how the {self._n()} "
                 f"{c(VERBS_PRESENT)} the {self._n()} of {c(PLACES)}.")
        else:
            s = (f"Each {self._n()} {c(VERBS_PRESENT)} {r.randint(2, 12)} {self._a()} {c(PLURALS)}, "
                 f"{c(ADVERBS)} {c(PREPOSITIONS)} the {self._n()}.")
        s = _AN.sub(r"\1n \2", s)
        return s[0].upper() + s[1:]

    def sentences(self, n: int) -> list[str]:
        """n sentences, each ending its paragraph or not (paragraphs of 2-7 sentences)."""
        out = []
        left = self.r.randint(2, 7)
        for _ in range(n):
            left -= 1
            end = "\n\n" if left == 0 else " "
            if left == 0:
                left = self.r.randint(2, 7)
            out.append(self.sentence() + end)
        return out

    def query(self) -> str:
        c = self.r.choice
        q = c([
            lambda: f"how did the {self._n()} of {c(PLACES)} {c(VERBS_BASE)} the {self._a()} {self._n()}",
            lambda: f"what {c(VERBS_PAST)} the {self._a()} {c(PLURALS)} {c(PREPOSITIONS)} {c(PLACES)}?",
            lambda: f"{c(NAMES)} on the {self._n()} and the {self._a()} {self._n()}",
            lambda: f"why would a {self._a()} {self._n()} {c(VERBS_BASE)} {c(PLURALS)}",
        ])()
        return _AN.sub(r"\1n \2", q)


def chunker() -> Callable[[str], list[str]]:
    from infrastructure.tokenizer import Tokenizer

    tok = Tokenizer()
    return lambda text: tok.chunk(text, CHUNK_SIZE, CHUNK_OVERLAP)


def sentences_per_chunk(seed: str, chunk: Callable[[str], list[str]]) -> float:
    """How many generated sentences one chunk takes on average (calibrated on a sample)."""
    sample = Prose(f"{seed}:calibrate").sentences(2000)
    return len(sample) / len(chunk("".join(sample)))


def exact_doc(prose: Prose, target: int, per_chunk: float, chunk: Callable[[str], list[str]]) -> tuple[str, list[str]]:
    """A document that chunks into exactly `target` chunks: the shortest prefix of a run of
    sentences with that many chunks (binary search; chunk count grows with the text)."""
    pool = prose.sentences(int(target * per_chunk * 1.3) + 20)
    lo, hi = 1, len(pool)
    while True:
        text = "".join(pool[:hi]).strip()
        if len(chunk(text)) >= target:
            break
        pool += prose.sentences(len(pool))
        hi = len(pool)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(chunk("".join(pool[:mid]).strip())) >= target:
            hi = mid
        else:
            lo = mid + 1
    text = "".join(pool[:lo]).strip()
    chunks = chunk(text)
    if len(chunks) != target:
        raise RuntimeError(f"could not make a document of exactly {target} chunks (got {len(chunks)})")
    return text, chunks


def ingest_corpus(n_chunks: int, seed: str) -> list[tuple[str, str, list[str]]]:
    """~INGEST_DOCS documents (title, text, chunks) with at least n_chunks chunks in total."""
    chunk = chunker()
    per_chunk = sentences_per_chunk(seed, chunk)
    docs, total = [], 0
    per_doc = max(1, math.ceil(n_chunks / INGEST_DOCS))
    i = 0
    while total < n_chunks:
        prose = Prose(f"{seed}:ingest:{i}")
        # Vary the document length (0.5x-1.5x the mean) like a real upload would.
        target = max(1, round(per_doc * (0.5 + prose.r.random())))
        text = "".join(prose.sentences(max(1, round(target * per_chunk)))).strip()
        chunks = chunk(text)
        docs.append((f"ingest-{i:04d}", text, chunks))
        total += len(chunks)
        i += 1
    return docs


def search_corpus(n_chunks: int, seed: str) -> list[tuple[str, str, list[str]]]:
    """Documents with exactly n_chunks chunks in total (the last one made to measure)."""
    chunk = chunker()
    per_chunk = sentences_per_chunk(seed, chunk)
    docs, total, i = [], 0, 0
    while total < n_chunks:
        prose = Prose(f"{seed}:search:{i}")
        left = n_chunks - total
        if left <= SEARCH_CHUNKS_PER_DOC * 1.2:
            text, chunks = exact_doc(prose, left, per_chunk, chunk)
        else:
            text = "".join(prose.sentences(round(SEARCH_CHUNKS_PER_DOC * per_chunk))).strip()
            chunks = chunk(text)
        docs.append((f"search-{i:04d}", text, chunks))
        total += len(chunks)
        i += 1
    return docs


def check_unique(docs: list[tuple[str, str, list[str]]]) -> int:
    chunks = [c for _, _, cs in docs for c in cs]
    if len(set(chunks)) != len(chunks):
        sys.exit(f"corpus has {len(chunks) - len(set(chunks))} repeated chunks; the cache would hide their cost")
    return len(chunks)
