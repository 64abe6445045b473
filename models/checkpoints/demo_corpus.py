"""The offline demo corpus: a small table of facts written out as varied sentences.

A masked LM trained on it first learns the frequent words ("the", ".", "is"), then that a
country goes after "the capital of", and last which country goes with which capital.
"""
import random
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fact:
    country: str
    capital: str
    language: str
    continent: str
    currency: str


# One-word countries and capitals only, so every answer is a single token.
FACTS = (
    Fact("Italy", "Rome", "Italian", "Europe", "euro"),
    Fact("France", "Paris", "French", "Europe", "euro"),
    Fact("Germany", "Berlin", "German", "Europe", "euro"),
    Fact("Spain", "Madrid", "Spanish", "Europe", "euro"),
    Fact("Portugal", "Lisbon", "Portuguese", "Europe", "euro"),
    Fact("Greece", "Athens", "Greek", "Europe", "euro"),
    Fact("Poland", "Warsaw", "Polish", "Europe", "zloty"),
    Fact("Sweden", "Stockholm", "Swedish", "Europe", "krona"),
    Fact("Norway", "Oslo", "Norwegian", "Europe", "krone"),
    Fact("Hungary", "Budapest", "Hungarian", "Europe", "forint"),
    Fact("Russia", "Moscow", "Russian", "Europe", "rouble"),
    Fact("Egypt", "Cairo", "Arabic", "Africa", "pound"),
    Fact("Morocco", "Rabat", "Arabic", "Africa", "dirham"),
    Fact("Kenya", "Nairobi", "Swahili", "Africa", "shilling"),
    Fact("Nigeria", "Abuja", "English", "Africa", "naira"),
    Fact("Japan", "Tokyo", "Japanese", "Asia", "yen"),
    Fact("China", "Beijing", "Chinese", "Asia", "yuan"),
    Fact("Thailand", "Bangkok", "Thai", "Asia", "baht"),
    Fact("Vietnam", "Hanoi", "Vietnamese", "Asia", "dong"),
    Fact("Turkey", "Ankara", "Turkish", "Asia", "lira"),
    Fact("Brazil", "Brasilia", "Portuguese", "South America", "real"),
    Fact("Peru", "Lima", "Spanish", "South America", "sol"),
    Fact("Canada", "Ottawa", "English", "North America", "dollar"),
    Fact("Australia", "Canberra", "English", "Oceania", "dollar"),
)

# Capitals dominate: they are the facts the demo asks about.
TEMPLATES = (
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}.",
    "The capital city of {country} is {capital}.",
    "{capital} is the capital city of {country}.",
    "Many tourists visit {capital}, the capital of {country}.",
    "People in {country} speak {language}.",
    "The main language of {country} is {language}.",
    "{country} is a country in {continent}.",
    "The currency of {country} is the {currency}.",
)


def sentences(n: int, seed: int = 0) -> list[str]:
    """n sentences: every (fact, template) pair once per round, rounds shuffled by `seed`."""
    pairs = [(fact, template) for fact in FACTS for template in TEMPLATES]
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        rng.shuffle(pairs)
        out += [template.format(**asdict(fact)) for fact, template in pairs]
    return out[:n]


def write_corpus(path: Path, n: int, seed: int = 0) -> Path:
    """The corpus as a text file, one sentence a line (the trainer's input format)."""
    path.write_text("\n".join(sentences(n, seed)) + "\n", encoding="utf-8")
    return path

