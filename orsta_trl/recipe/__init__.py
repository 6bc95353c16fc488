"""Recipes: flat YAML whose keys are fields of TRL's ``GRPOConfig`` and ``ModelConfig`` or of our
:class:`OrstaConfig`.

* :mod:`~orsta_trl.recipe.settings`: our settings in sections (the reward section declared once, in
  :class:`orsta_trl.verifiers.base.RewardSettings`), and the :class:`Recipe` that holds all three configs;
* :mod:`~orsta_trl.recipe.checks`: every value check, each returning the problems it finds;
* :mod:`~orsta_trl.recipe.loading`: YAML, command-line overrides, keys routed to their configs, every problem
  reported together.
"""

from orsta_trl.errors import RecipeError
from orsta_trl.recipe.checks import CHOICES, RANGES, RecipeProblems
from orsta_trl.recipe.loading import (
    build_recipe,
    load_recipe,
    orsta_config_from,
    parse_overrides,
    read_recipe_file,
    read_yaml,
    recipe_fields,
)
from orsta_trl.recipe.settings import SECTIONS, OrstaConfig, Recipe, section_of

__all__ = [
    "CHOICES",
    "RANGES",
    "SECTIONS",
    "OrstaConfig",
    "Recipe",
    "RecipeError",
    "RecipeProblems",
    "build_recipe",
    "load_recipe",
    "orsta_config_from",
    "parse_overrides",
    "read_recipe_file",
    "read_yaml",
    "recipe_fields",
    "section_of",
]
