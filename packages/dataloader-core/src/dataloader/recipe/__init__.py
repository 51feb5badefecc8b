"""The recipe layer: models, loading with inheritance, merging, templates and plugin binding."""

from dataloader.recipe.binding import BoundRecipe, bind_recipe
from dataloader.recipe.loader import RecipeLoader, from_yaml
from dataloader.recipe.merger import RecipeMerger
from dataloader.recipe.models import (
    DestinationConfig,
    IncrementalConfig,
    Recipe,
    RetryConfig,
    RuntimeConfig,
    SourceConfig,
    StateConfig,
    TransformConfig,
    TransformStep,
)
from dataloader.recipe.templates import TemplateRenderer

__all__ = [
    "BoundRecipe",
    "DestinationConfig",
    "IncrementalConfig",
    "Recipe",
    "RecipeLoader",
    "RecipeMerger",
    "RetryConfig",
    "RuntimeConfig",
    "SourceConfig",
    "StateConfig",
    "TemplateRenderer",
    "TransformConfig",
    "TransformStep",
    "bind_recipe",
    "from_yaml",
]
