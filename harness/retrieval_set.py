"""A labelled retrieval set made from a seed: chunks of made-up facts and questions whose one
answer chunk is known, to measure an embedding backend's recall@k against torch fp32's.

Each institution (a kind of place in a town) has two chunks: its history (founded when and by
whom, known for what) and today (staff, visitors, a neighbouring institution of another kind).
Every kind occurs in many towns and every town has many kinds, so a question ("Who started the
observatory in Tromsø?") must match the kind, the town and the sort of fact, in other words.
Used by tests/integration/test_embedding_quality.py and bench/ingest_and_search.py."""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = """observatory library brewery shipyard hospital museum bakery foundry orchard monastery
printing-house tannery lighthouse conservatory school mill theatre pharmacy vineyard archive
glassworks harbour-office botanical-garden railway-workshop weaving-mill""".split()
TOWNS = """Tromsø Valparaíso Tbilisi Hobart Dundee Ghent Riga Cusco Bergen Trieste Uppsala Mombasa
Leipzig Kyoto Bremen Galway Porto Quito Tallinn Osaka Halifax Antwerp Seville Hanoi Perth Zanzibar
Lisbon Kraków Nairobi Marseille""".split()
FIRST = "Ada Bruno Clara Dmitri Elena Farid Greta Hugo Ines Jonas Kaito Lena Mateo Nadia Oskar Priya".split()
LAST = "Alvarez Brennan Chen Dubois Eriksen Fischer Gupta Haddad Ibarra Jensen Kowalski Larsen Moreau".split()
KNOWN_FOR = ["its copper roof", "a collection of old maps", "winter concerts", "training apprentices",
             "a rare clock", "its rose garden", "surviving two floods", "a famous recipe", "night tours",
             "its spiral staircase", "a stained-glass window", "exporting to twelve countries",
             "a library of sea charts", "its long strike of 1921", "a tower with a bell"]
SEASONS = ["spring", "summer", "autumn", "winter"]
# (which chunk answers it, the question): 0 = the history chunk, 1 = the one about today.
QUESTIONS = [
    (0, "Who started the {kind} in {town}?"),
    (0, "In which year did {town}'s {kind} open?"),
    (0, "What made the {kind} of {town} well known?"),
    (1, "How large is the workforce of the {town} {kind}?"),
    (1, "Which season brings visitors to the {kind} in {town}?"),
    (1, "What stands next to the {kind} of {town}?"),
]


@dataclass(frozen=True)
class RetrievalSet:
    chunks: list[str]
    questions: list[str]
    answers: list[int]  # index into chunks of each question's answer


def make(n_chunks: int = 300, n_questions: int = 300, seed: int = 1) -> RetrievalSet:
    """Two chunks per institution (its history; the place today, naming a neighbour in the same
    town), so a question must also match the kind of fact it asks for."""
    rng = random.Random(seed)
    pairs = [(k.replace("-", " "), t) for k in KINDS for t in TOWNS]
    rng.shuffle(pairs)
    if n_chunks > 2 * len(pairs):
        raise ValueError(f"at most {2 * len(pairs)} chunks")
    institutions = pairs[:(n_chunks + 1) // 2]
    chunks: list[str] = []
    for kind, town in institutions:
        chunks += _chunks(rng, kind, town)
    chunks = chunks[:n_chunks]
    questions, answers = [], []
    while len(questions) < n_questions:
        target = rng.randrange(len(institutions))
        which, question = rng.choice(QUESTIONS)
        if 2 * target + which >= n_chunks:
            continue
        kind, town = institutions[target]
        questions.append(question.format(kind=kind, town=town))
        answers.append(2 * target + which)
    return RetrievalSet(chunks, questions, answers)


def _chunks(rng: random.Random, kind: str, town: str) -> list[str]:
    founder = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    neighbour = rng.choice([k for k in KINDS if k.replace("-", " ") != kind]).replace("-", " ")
    history = (f"The {kind} of {town} was founded in {rng.randint(1450, 1990)} by {founder}. "
               f"It became known for {rng.choice(KNOWN_FOR)}, and {founder.split()[1]}'s family ran it for "
               f"{rng.randint(2, 9)} generations.")
    today = (f"Today around {rng.randint(3, 400)} people work at the {kind}, most of them from {town}. "
             f"Visitors come mainly in {rng.choice(SEASONS)}, and many also see the {neighbour} next door.")
    return [history, today]


def recall_at(ranked: list[list[int]], answers: list[int], k: int) -> float:
    """Share of questions whose answer is among the first k of their ranking."""
    return sum(a in r[:k] for r, a in zip(ranked, answers)) / len(answers)
