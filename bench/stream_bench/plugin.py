"""``stream bench``: the benchmark, a command added by this plugin (it has no processor).

It lives outside the core because it measures the built-in plugins' internals (the alert
matcher, the dedup index) next to the framework; the core never imports a plugin.
"""

from __future__ import annotations

import click

from stream import Settings, hookimpl, load_settings

__version__ = "0.1.0"
#: The stream plugin API this plugin is written for.
STREAM_PLUGIN_API = "1.0"


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"] if ctx.obj and "settings" in ctx.obj else load_settings()
    return settings


@hookimpl
def stream_register_commands(cli: click.Group) -> None:
    @cli.command()
    @click.option("--articles", "count", type=int, default=5000, show_default=True,
                  help="Articles in the generated corpus (framework and CPU arms).")
    @click.option("--ner-articles", "ner_count", type=int, default=200, show_default=True,
                  help="Articles of the corpus in the arms that run NER in a worker.")
    @click.option("--rounds", type=int, default=3, show_default=True, help="A/B alternations.")
    @click.option("--dedup-sizes", default="10000,1000000", show_default=True,
                  help="Signatures in the dedup index, small,big (R7).")
    @click.option("--samples", type=click.Path(exists=True, file_okay=False), default="examples/articles",
                  show_default=True, help="Directory of sample .txt articles to build the corpus from.")
    @click.option("--out-dir", type=click.Path(file_okay=False), default="bench/results", show_default=True,
                  help="Where DATE.json and DATE.png go.")
    @click.option("--docs", type=click.Path(dir_okay=False), default="docs/performance.md", show_default=True,
                  help="The page whose generated table is replaced ('' to leave it).")
    @click.option("--sizing-docs", type=click.Path(dir_okay=False), default="docs/operations.md", show_default=True,
                  help="The page whose generated sizing table is replaced ('' to leave it).")
    @click.option("--soak", type=int, default=50_000, show_default=True,
                  help="Articles through a worker for the memory soak.")
    @click.option("--smoke", is_flag=True, help="A tiny run that checks the harness (figures meaningless).")
    @click.pass_context
    def bench(ctx: click.Context, count: int, ner_count: int, rounds: int, dedup_sizes: str, samples: str,
              out_dir: str, docs: str, sizing_docs: str, soak: int, smoke: bool) -> None:
        """Measure R1-R16 of the benchmark plan, each a ratio of two arms alternated in one run
        on the real broker; write the figures, the table of docs/performance.md and a plot."""
        import datetime
        import json
        from pathlib import Path

        from stream_bench.report import plot, table, write_results, write_sizing, write_table
        from stream_bench.run import run_benchmark

        settings = _settings(ctx)
        small, big = (int(x) for x in dedup_sizes.split(","))
        if smoke:
            count, ner_count, rounds, small, big = min(count, 60), min(ner_count, 12), 1, 1000, 5000
            soak = min(soak, 2000)
            restore, open_stories = 2000, 2000
        else:
            restore, open_stories = 200_000, 100_000
        files = sorted(Path(samples).glob("*.txt"))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        logdir = out / "logs"
        logdir.mkdir(exist_ok=True)
        results = run_benchmark(settings, files, count=count, ner_count=ner_count, rounds=rounds,
                                dedup_sizes=(small, big), logdir=logdir, soak=soak, restore=restore,
                                open_stories=open_stories)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d") + ("-smoke" if smoke else "")
        json_path, png_path = out / f"{stamp}.json", out / f"{stamp}.png"
        write_results(results, json_path)
        results = json.loads(json_path.read_text())  # as saved, with the machine: what the docs test reads
        plot(results, png_path)
        click.echo(table(results, str(json_path)))
        if docs and not smoke:
            write_table(results, Path(docs), str(json_path))
            click.echo(f"table written to {docs}")
        if sizing_docs and not smoke:
            write_sizing(results, Path(sizing_docs), str(json_path))
            click.echo(f"sizing table written to {sizing_docs}")
        click.echo(f"figures: {json_path}; plot: {png_path}")
