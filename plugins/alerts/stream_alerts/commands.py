"""``stream rules check`` and ``stream rules test``."""

from __future__ import annotations

import copy
import sys

import click

from stream.errors import ConfigError

from .rules import load_rules


@click.group()
def rules() -> None:
    """Check alert rules, and try a rule change on a corpus before deploying it."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check(file: str) -> None:
    """Validate a rules FILE: exit 0 and a summary; exit 78 (a configuration error) with the line and the problem
    when it is invalid; exit 1 with each rule that can never match (a none term found
    wherever an all term is, sources that are all excluded) and its line."""
    try:
        loaded = load_rules(file)
    except ConfigError as exc:
        click.echo(f"stream: invalid rules: {exc}", err=True)
        sys.exit(exc.exit_status)
    from .matcher import Matcher
    from .rules import never_matches

    problems = [(rule, problem) for rule in loaded for problem in never_matches(rule)]
    for rule, problem in problems:
        click.echo(f"{file}:{rule.line or '?'}: rule {rule.id!r} can never match: {problem}", err=True)
    if problems:
        click.echo(f"stream: {len({r.id for r, _p in problems})} of {len(loaded)} rule(s) can never match; "
                   f"fix them or remove them", err=True)
        sys.exit(1)
    matcher = Matcher(loaded)
    stories = sum(1 for rule in loaded if rule.kind == "story")
    note = f"; {stories} story rule(s): they need the stories plugin (stream-stories)" if stories else ""
    click.echo(f"{file}: {len(loaded)} rule(s) OK ({matcher.patterns} patterns){note}")


@rules.command("test")
@click.option("--rules", "new", type=click.Path(dir_okay=False), required=True, help="The rules to try.")
@click.option("--against", "old", type=click.Path(dir_okay=False), default=None,
              help="The rules in use now, to compare with.")
@click.argument("files", nargs=-1, required=True)
@click.pass_context
def test(ctx: click.Context, new: str, old: str | None, files: tuple[str, ...]) -> None:
    """Run rules over FILES (the same inputs as `stream process`) and print which articles
    would alert; with --against, the difference between the two rule files."""
    from stream.plugins import get_plugin_manager
    from stream.records import decode_article
    from stream.runtime.inputs import read_inputs
    from stream.testing import run_chain

    from . import AlertsProcessor

    settings = ctx.find_root().obj["settings"]
    try:
        processors = {label: AlertsProcessor(path) for label, path in (("new", new), ("old", old)) if path}
        for proc in processors.values():
            proc._load()
    except ConfigError as exc:
        click.echo(f"stream: invalid rules: {exc}", err=True)
        sys.exit(exc.exit_status)
    installed = [p.name for p in get_plugin_manager(settings).loaded if p.name != "alerts"]
    articles = [decode_article(r.value, max_bytes=settings.max_article_bytes) for r in read_inputs(files)]
    result = run_chain(articles, plugins=installed, settings=settings)
    fired: dict[str, set[tuple[str, str]]] = {}
    for label, proc in processors.items():
        batch = [copy.deepcopy(a) for a in result.articles]
        proc.process(batch)
        fired[label] = {(a.id, alert["rule_id"]) for a in batch for alert in a.alerts}
        click.echo(f"== {label} rules ({proc.path}): {len(fired[label])} alert(s) on "
                   f"{len({aid for aid, _r in fired[label]})} of {len(batch)} article(s)")
        for article in batch:
            for alert in article.alerts:
                click.echo(f"  {article.id}  {alert['rule_id']} [{alert['severity']}]  {alert['snippet'][:100]}")
    if old:
        added, removed = fired["new"] - fired["old"], fired["old"] - fired["new"]
        click.echo(f"== difference: {len(added)} new alert(s), {len(removed)} no longer raised")
        for aid, rid in sorted(added):
            click.echo(f"  + {aid}  {rid}")
        for aid, rid in sorted(removed):
            click.echo(f"  - {aid}  {rid}")
