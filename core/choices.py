"""The vote vocabulary, defined once: the side as displayed, or tie, or both bad (pure: no Django).

Every layer spells a choice with these names: the `Vote.choice` column (arena.models.VoteChoice),
quality control, the vote log that `rank_battles` reads, the export rows and the API's error text.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args

Choice: TypeAlias = Literal["left", "right", "tie", "both_bad"]
Side: TypeAlias = Literal["left", "right"]

LEFT: Final = "left"
RIGHT: Final = "right"
TIE: Final = "tie"
BOTH_BAD: Final = "both_bad"

CHOICES: Final[tuple[Choice, ...]] = get_args(Choice)
SIDES: Final[tuple[Side, ...]] = get_args(Side)
# How each choice reads in a sentence ("both bad"); the stored value is the key.
LABELS: Final[dict[Choice, str]] = {LEFT: "left", RIGHT: "right", TIE: "tie", BOTH_BAD: "both bad"}
# The same judgement seen with the sides swapped.
MIRROR: Final[dict[Choice, Choice]] = {LEFT: RIGHT, RIGHT: LEFT, TIE: TIE, BOTH_BAD: BOTH_BAD}


def spoken(values: tuple[str, ...] = CHOICES) -> str:
    """The values as an error message lists them: "left, right, tie or both_bad"."""
    return f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else "".join(values)


def parse_choice(value: str) -> Choice:
    """A database string as a `Choice`; raises ValueError for anything else."""
    for choice in CHOICES:
        if value == choice:
            return choice
    raise ValueError(f"unknown choice {value!r}; expected one of {', '.join(CHOICES)}")


def parse_side(value: str) -> Side:
    """A database string as a `Side` ("left" or "right"); raises ValueError for anything else."""
    for side in SIDES:
        if value == side:
            return side
    raise ValueError(f"unknown side {value!r}; expected 'left' or 'right'")


def mirror_choice(choice: Choice) -> Choice:
    """The same judgement seen with the sides swapped."""
    return MIRROR[choice]


# A pair's running counts, as PairTally keeps them: the pair in id order (a < b) and what answers add.


def tally_counts(left: int, right: int, choice: str, n: int = 1) -> tuple[int, int, tuple[int, int, int, int]]:
    """(a, b, (a_wins, b_wins, ties, both_bad)): `n` answers `choice` on a comparison that showed `left` on the left,
    added to the pair's counts kept in id order (a < b), whichever side each was shown on."""
    a, b = sorted((left, right))
    if choice in SIDES:
        winner = left if choice == LEFT else right
        return a, b, (n, 0, 0, 0) if winner == a else (0, n, 0, 0)
    return a, b, (0, 0, n, 0) if choice == TIE else (0, 0, 0, n)
