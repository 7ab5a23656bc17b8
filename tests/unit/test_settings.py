from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.settings import Settings, load_settings


def test_defaults_need_no_file_and_no_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.broker == "127.0.0.1:9092"
    assert (s.topic_raw, s.topic_enriched, s.topic_alerts, s.topic_dlq) == (
        "articles.raw", "articles.enriched", "alerts", "articles.dlq")
    assert s.partitions >= 3


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "stream.toml"
    cfg.write_text('broker = "10.0.0.1:9092"\npartitions = 4\n[plugins.ner]\nmodel = "x"\n')
    s = load_settings(cfg, environ={"STREAM_PARTITIONS": "12", "STREAM_PLUGIN_NER_BATCH_SIZE": "8"})
    assert s.broker == "10.0.0.1:9092"
    assert s.partitions == 12
    assert s.plugin_config("ner") == {"model": "x", "batch_size": "8"}
    assert s.source == str(cfg)


def test_plugin_variables_with_a_double_underscore_allow_names_with_underscores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./stream.toml
    s = load_settings(environ={
        "STREAM_PLUGIN_WORD_COUNT__MIN": "3",  # plugin word_count, key min
        "STREAM_PLUGIN_NER__BATCH_SIZE": "8",  # the new form of an old name
        "STREAM_PLUGIN_DEDUP_JACCARD": "0.6",  # the old form still works
    })
    assert s.plugin_config("word_count") == {"min": "3"}
    assert s.plugin_config("ner") == {"batch_size": "8"}
    assert s.plugin_config("dedup") == {"jaccard": "0.6"}
    assert s.plugin_config("word") == {}  # not read the old way (plugin "word", key "count__min")


def test_an_unknown_key_names_the_file_the_line_and_the_known_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "stream.toml"
    cfg.write_text('broker = "h:1"\n\nbatchsize = 5\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(info.value).startswith(f"{cfg}:3: unknown setting 'batchsize'")
    assert "batch_size" in str(info.value)


def test_a_wrong_type_names_the_line_and_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "stream.toml"
    cfg.write_text('partitions = "many"\n')
    with pytest.raises(ConfigError, match=r":1: setting 'partitions' must be a whole number, such as 6"):
        load_settings(cfg, environ={})


def test_a_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "stream.toml"
    cfg.write_text('broker = "a"\nbatch_size = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert info.value.line == 2


def test_a_bad_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="environment variable STREAM_BATCH_SIZE must be a whole number"):
        load_settings(None, environ={"STREAM_BATCH_SIZE": "lots"})


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(("given", "kept"), [
    ("127.0.0.1:9092", "127.0.0.1:9092"),
    ("kafka://127.0.0.1:9092", "127.0.0.1:9092"),
    ("KAFKA://broker-1.example.com:9093/", "broker-1.example.com:9093"),
    ("kafka://a:9092, b:9093,kafka://c:9094", "a:9092,b:9093,c:9094"),
    ("[::1]:9092", "[::1]:9092"),
])
def test_the_broker_setting_takes_host_port_and_kafka_urls_and_lists_of_them(given: str, kept: str) -> None:
    assert load_settings(environ={"STREAM_BROKER": given}).broker == kept


@pytest.mark.parametrize("given", ["localhost", "kafka://", "http://h:9092", "h:0", "h:99999", "h:9092,", "a b:1"])
def test_a_malformed_broker_setting_is_refused_with_the_accepted_forms(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"STREAM_BROKER": given})
    assert "STREAM_BROKER" in str(caught.value) and "kafka://host:port" in str(caught.value)


def test_without_config_the_search_path_is_local_then_xdg_then_etc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream.settings import config_search_path

    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    (xdg / "stream").mkdir(parents=True)
    (xdg / "stream" / "stream.toml").write_text("partitions = 7\n")
    assert config_search_path({"XDG_CONFIG_HOME": str(xdg)}) == [
        Path("stream.toml"), xdg / "stream" / "stream.toml", Path("/etc/stream/stream.toml")]
    assert config_search_path({"HOME": "/home/ops"})[1] == Path("/home/ops/.config/stream/stream.toml")
    s = load_settings(environ={"XDG_CONFIG_HOME": str(xdg)})
    assert s.partitions == 7 and s.source == str(xdg / "stream" / "stream.toml")
    assert s.origins["partitions"] == f"{xdg / 'stream' / 'stream.toml'}:1"
    (tmp_path / "stream.toml").write_text("partitions = 5\n")  # the working directory's comes first
    assert load_settings(environ={"XDG_CONFIG_HOME": str(xdg)}).partitions == 5


def test_config_show_prints_each_origin_and_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from stream.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "stream.toml"
    cfg.write_text('partitions = 4\nweb_token = "s3cret-token"\n[plugins.ner]\nprocesses = 2\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "show"], env={
        "STREAM_BROKER": "10.0.0.1:9092", "STREAM_PLUGIN_HOOKS__API_KEY": "k-123", "STREAM_PLUGINS": "",
        "STREAM_PLUGIN_NER_PROCESSES": None})  # the test session sets it
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"# settings file: {cfg}" in out
    assert 'broker = "10.0.0.1:9092"  # environment variable STREAM_BROKER' in out
    assert f"partitions = 4  # {cfg}:1" in out and 'log_format = "text"  # default' in out
    assert f'web_token = "***"  # {cfg}:2' in out and "s3cret-token" not in out
    assert f"[plugins.ner]\nprocesses = 2  # {cfg}:4" in out
    assert 'api_key = "***"  # environment variable STREAM_PLUGIN_HOOKS__API_KEY' in out and "k-123" not in out


def test_config_is_accepted_after_any_command_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from stream.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("partitions = 9\n")
    after = CliRunner().invoke(main, ["config", "show", "--config", str(cfg)], env={"STREAM_PLUGINS": ""})
    assert after.exit_code == 0 and f"partitions = 9  # {cfg}:1" in after.output, after.output
    missing = CliRunner().invoke(main, ["rules", "check", "--config", str(tmp_path / "no.toml"), "x.toml"],
                                 env={"STREAM_PLUGINS": "alerts"})  # a plugin's command
    assert missing.exit_code == 78 and "the settings file does not exist" in missing.output
    for command in (["worker"], ["process"], ["ingest"], ["broker", "start"]):
        shown = CliRunner().invoke(main, [*command, "--help"], env={"STREAM_PLUGINS": ""})
        assert "--config FILE" in shown.output, command


def test_the_dashboard_token_can_come_from_a_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("dash-123\nignored\n")
    assert Settings(web_token_file=str(token)).dashboard_token == "dash-123"
    assert Settings(web_token="inline").dashboard_token == "inline"
    with pytest.raises(ConfigError, match="both web_token and web_token_file are set"):
        _ = Settings(web_token="a", web_token_file=str(token)).dashboard_token
    with pytest.raises(ConfigError, match="cannot read web_token_file"):
        _ = Settings(web_token_file=str(tmp_path / "missing")).dashboard_token
