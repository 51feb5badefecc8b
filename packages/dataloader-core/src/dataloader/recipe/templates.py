"""Template rendering of recipe values in a sandboxed Jinja2 environment.

Available in every string value: `env_var('X')`, `env_var('X', 'default')`, `env.X`,
`secret('X')`, `secret('X', 'default')`, `var('x')`, `var('x', 'default')`, `var.x`, and
`recipe.name` / `recipe.file`. A value read with `secret` is remembered as a secret, and the
key it lands in is masked in output; one read with `env_var` is shown like any other value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataloader.errors import Problem
from dataloader.recipe.merger import origin_of
from dataloader.secrets import register_secret

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

_MISSING: Any = object()


class MissingTemplateValue(Exception):
    """A template asked for an environment variable or `var` that has no value."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"{what} {name!r} is not set")
        self.what = what
        self.name = name


class _Lookup:
    """`env`, `secret` or `var` inside templates: callable with a default, or read as
    attributes. `on_read` sees every value returned (a default too, when `defaults_too`)."""

    def __init__(
        self, what: str, values: Mapping[str, str], on_read: Any, *, defaults_too: bool = False
    ) -> None:
        self._what = what
        self._values = values
        self._on_read = on_read
        self._defaults_too = defaults_too

    def __call__(self, name: str, default: Any = _MISSING) -> Any:
        if name in self._values:
            value = self._values[name]
            self._on_read(value)
            return value
        if default is _MISSING:
            raise MissingTemplateValue(self._what, name)
        if self._defaults_too:
            self._on_read(default)
        return default

    def __getitem__(self, name: str) -> Any:
        # `env.X` reaches here too: Jinja falls back to `obj['X']` when attribute access fails.
        # Attribute access itself is never a lookup, because Jinja probes callables with
        # `hasattr`/`getattr` (`jinja_pass_arg`, `unsafe_callable`, `alters_data`).
        return self(name)


@dataclass
class RenderResult:
    tree: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    secret_paths: set[str] = field(default_factory=set)


class TemplateRenderer:
    """Renders every templated string in a recipe dict."""

    def __init__(
        self, variables: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.variables = {key: value for key, value in (variables or {}).items()}
        self.environ = environ if environ is not None else os.environ
        self._environment: SandboxedEnvironment | None = None
        self._read_secret = False

    @property
    def _jinja(self) -> SandboxedEnvironment:
        """The sandbox, made (and jinja2 imported) for the first value that holds a template:
        a recipe without one never imports jinja2."""
        if self._environment is None:
            import jinja2
            from jinja2.sandbox import SandboxedEnvironment

            self._environment = SandboxedEnvironment(
                undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
            )
        return self._environment

    def _mark_secret(self, value: Any) -> None:
        self._read_secret = True
        register_secret(value)

    def render_tree(
        self, tree: dict[str, Any], *, file: str | None, origins: Mapping[str, str]
    ) -> RenderResult:
        result = RenderResult(tree={})
        name = tree.get("name")
        if isinstance(name, str) and _is_template(name):
            name = self._render_one(
                name, {"name": None, "file": file}, "name", file, origins, result
            )
            tree = {**tree, "name": name}
        recipe_info = {"name": tree.get("name"), "file": file}
        result.tree = self._walk(tree, recipe_info, "", file, origins, result)
        return result

    def _walk(
        self,
        node: Any,
        recipe: dict[str, Any],
        path: str,
        file: str | None,
        origins: Mapping[str, str],
        result: RenderResult,
    ) -> Any:
        if isinstance(node, dict):
            return {
                k: self._walk(v, recipe, f"{path}.{k}" if path else str(k), file, origins, result)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [
                self._walk(v, recipe, f"{path}[{i}]", file, origins, result)
                for i, v in enumerate(node)
            ]
        if isinstance(node, str) and _is_template(node):
            return self._render_one(node, recipe, path, file, origins, result)
        return node

    def _render_one(
        self,
        text: str,
        recipe: dict[str, Any],
        path: str,
        file: str | None,
        origins: Mapping[str, str],
        result: RenderResult,
    ) -> Any:
        import jinja2

        where = origin_of(origins, path) or file
        self._read_secret = False
        env = _Lookup("environment variable", self.environ, lambda value: None)
        secret = _Lookup("environment variable", self.environ, self._mark_secret, defaults_too=True)
        var = _Lookup("variable", self.variables, lambda value: None)
        try:
            rendered = self._jinja.from_string(text).render(
                env=env, env_var=env, secret=secret, var=var, recipe=recipe
            )
        except MissingTemplateValue as exc:
            hint = (  # read after "expected"
                f"a value for it (export {exc.name}=…, or a default: env_var('{exc.name}', '…'))"
                if exc.what.startswith("environment")
                else f"a value for it (--var {exc.name}=…, or a default: var('{exc.name}', '…'))"
            )
            result.problems.append(
                Problem(f"{exc} (used in a template)", file=where, key=path, expected=hint)
            )
            return text
        except jinja2.UndefinedError as exc:
            result.problems.append(
                Problem(
                    f"template refers to something undefined: {exc.message}",
                    file=where,
                    key=path,
                    expected="env_var('X'), secret('X'), var('x'), env.X or recipe.name",
                )
            )
            return text
        except jinja2.TemplateError as exc:
            result.problems.append(Problem(f"invalid template: {exc}", file=where, key=path))
            return text
        if self._read_secret:
            result.secret_paths.add(path)
        return rendered


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text
