"""What `seed_demo` creates: the `demo` campaign on the offline shapes generators."""

from __future__ import annotations

from generation import shapes
from generation.prompt_files import PromptRow

DEMO_SLUG = "demo"
DEMO_TITLE = "Demo: which set of shapes is better?"
DEMO_INSTRUCTIONS = (
    "Each side shows a set of images made for the same prompt by one anonymous generator. "
    "These generators are small offline stand-ins trained on pictures of coloured shapes, "
    "not real text-to-image models. Judge each set as a whole: when the prompt leaves "
    "something open (a colour, a background), a good set shows the range it could mean."
)
DEMO_CRITERIA = (
    ("diversity", "Which set better shows the range of people or things this prompt could describe?"),
    ("quality", "Which set has better image quality and follows the prompt better?"),
)

# Most prompts leave an attribute out, so a skewed generator shows its skew across the set.
DEMO_PROMPTS = (
    PromptRow("a circle", "shape only"),
    PromptRow("a square", "shape only"),
    PromptRow("a triangle", "shape only"),
    PromptRow("a shape", "nothing specified"),
    PromptRow("a red shape", "colour only"),
    PromptRow("a blue shape", "colour only"),
    PromptRow("a shape on a green background", "background only"),
    PromptRow("a shape on a black background", "background only"),
    PromptRow("a circle on a white background", "shape and background"),
    PromptRow("a square on a blue background", "shape and background"),
    PromptRow("a triangle on a yellow background", "shape and background"),
    PromptRow("a yellow triangle", "shape and colour"),
    PromptRow("a green circle", "shape and colour"),
    PromptRow("a red circle on a blue background", "fully specified"),
)

# What the demo measures per population: the shapes backend reads colour and background from pixels,
# so "base: red 70%" shows beside the crowd's ranking. Uniform targets: a set that leaves the colour
# open should show all of them.
DEMO_METRICS = {
    "colour": {"backend": "shapes", "classes": list(shapes.COLOURS)},
    "background": {"backend": "shapes", "classes": list(shapes.BACKGROUNDS)},
}
