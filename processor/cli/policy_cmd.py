"""`pseudostream policy show`: the effective policy, checked exactly as at start-up, and the
code compiled from it. A policy file that does not load or check ends the command with one
line naming the problem and exit code 2."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from processor.cli import main
from processor.pipeline.explain import generated_code, policy_table
from processor.pipeline.policy import compile_policy


@main.group()
def policy() -> None:
    """Inspect the policy: routes, fields, consent conditions, generated code."""


@policy.command("show")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy file (JSON); default: the shipped default/1 policy.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@click.option(
    "--generated",
    is_flag=True,
    help="Also print the Python source of every function generated from the policy and "
    "the contracts, each under a header naming it.",
)
def show(policy_path: Path | None, as_json: bool, generated: bool) -> None:
    """Print the effective policy after validation (the shipped default or --policy FILE)."""
    compiled = compile_policy(policy_path)
    if as_json:
        out = compiled.summary()
        if generated:
            out["generated"] = dict(generated_code(compiled))
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(policy_table(compiled))
    if generated:
        for what, source in generated_code(compiled):
            click.echo(f"\n# -- {what} --\n{source}", nl=False)
