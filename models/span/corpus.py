"""A generated training text in which a few heads need long context and the others don't.

Every line is a phrase of random four-letter words, a bar, and the same phrase again:

    amber raven delta stone | amber raven delta stone

Spelling a word needs the last few characters (short spans); the second half can only be
predicted by looking back exactly one phrase and the bar (a long span, `copy_distance`).
"""
import random

WORDS = (
    "amber", "bison", "cedar", "delta", "ember", "fjord", "grape", "heron", "ivory", "jolly",
    "koala", "lemon", "maple", "noble", "ocean", "pearl", "quilt", "raven", "stone", "tiger",
    "umbra", "vivid", "whale", "xenon", "yacht", "zebra",
)
SEPARATOR = " | "
WORDS_PER_PHRASE = 4
SOURCE_NAME = "generated corpus"  # how runs trained on it name their text


def phrase_chars(words_per_phrase: int = WORDS_PER_PHRASE) -> int:
    return words_per_phrase * (len(WORDS[0]) + 1) - 1


def copy_distance(words_per_phrase: int = WORDS_PER_PHRASE) -> int:
    """How far back (in characters) the second phrase finds its copy."""
    return phrase_chars(words_per_phrase) + len(SEPARATOR)


def generate_corpus(n_lines: int = 3000, words_per_phrase: int = WORDS_PER_PHRASE, seed: int = 0) -> str:
    """n_lines lines of "phrase | phrase" with random words (the same text for the same seed)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        phrase = " ".join(rng.choice(WORDS) for _ in range(words_per_phrase))
        lines.append(f"{phrase}{SEPARATOR}{phrase}\n")
    return "".join(lines)
